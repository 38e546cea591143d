"""What `aistack webdata crawl` says on stderr about robots.txt files: one lost in redirects
(more than five, a loop: every URL allowed, RFC 9309) is said, a plain redirect is not."""

from __future__ import annotations

import pytest

from aistack.cli.webdata import _report_crawl_problems


def test_a_robots_txt_lost_in_redirects_is_said_and_a_plain_redirect_is_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    summary = {
        "pages": 3,
        "errors": 0,
        "failed": [],
        "robots_unavailable": {},
        "robots_redirected": {
            "a.test:80": "robots.txt: 1 redirect to https://a.test/robots.txt",
            "b.test:80": "robots.txt unavailable (every URL allowed): more than 5 redirects in "
            "a row, the last to http://b.test/r6 [x]",
        },
    }
    _report_crawl_problems(summary)
    err = " ".join(capsys.readouterr().err.split())
    assert (
        "b.test:80: robots.txt unavailable (every URL allowed): more than 5 redirects in a row, "
        "the last to http://b.test/r6 [x]" in err
    )
    assert "a.test" not in err
