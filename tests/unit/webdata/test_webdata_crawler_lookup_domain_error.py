"""A lookup whose domain cannot be worked out (``lookup_domain`` raising: the Public Suffix
List's package missing or its copy unreadable) fails that request with the error and leaves
nothing behind: it stayed registered as running, never answered, so every later request to
the name waited its whole timeout and failed as a name lookup with no answer."""

from __future__ import annotations

import time

import pytest

import aistack.webdata.crawler as crawler


def test_a_lookup_whose_domain_cannot_be_worked_out_is_not_left_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(host: str) -> str:
        raise ImportError("No module named 'publicsuffixlist'")

    monkeypatch.setattr(crawler, "lookup_domain", broken)
    key = ("stuck-psl.invalid", 80)
    for _ in range(2):
        t0 = time.monotonic()
        with pytest.raises(ImportError, match="publicsuffixlist"):
            crawler._getaddrinfo("stuck-psl.invalid", 80, 3.0)
        assert time.monotonic() - t0 < 1.0  # its own error at once, not a wait of 3 s
        assert key not in crawler._lookups
    assert "stuck-psl.invalid" not in str(crawler._domain_slots)


def test_a_fetch_then_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(host: str) -> str:
        raise ImportError("No module named 'publicsuffixlist'")

    monkeypatch.setattr(crawler, "lookup_domain", broken)
    errors = [
        crawler.fetch(
            "http://stuck-psl2.invalid/", user_agent="t", timeout=2.0, max_bytes=100
        ).error
        for _ in range(2)
    ]
    assert errors == ["ImportError: No module named 'publicsuffixlist'"] * 2
