"""Extraction modes, language ID, and `aistack webdata extract`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aistack.errors import ValidationError
from aistack.webdata.evaluation import generate_page, token_prf
from aistack.webdata.extract import decode_html, detect_language, extract_text


@pytest.mark.parametrize("mode", ["quality", "fast"])
def test_extract_finds_main_text_and_drops_boilerplate(mode: str) -> None:
    scores = []
    for seed in range(5):
        page = generate_page(seed)
        text = extract_text(page.html, mode=mode)  # type: ignore[arg-type]
        scores.append(token_prf(text, page.main_text)[2])
        assert "cookie policy" not in text.lower()
    assert min(scores) > 0.8


def test_quality_mode_is_deterministic() -> None:
    page = generate_page(11)
    assert extract_text(page.html, mode="quality") == extract_text(page.html, mode="quality")


def test_bad_mode() -> None:
    with pytest.raises(ValidationError, match="extract.mode"):
        extract_text("<p>x</p>", mode="slow")  # type: ignore[arg-type]


def test_decode_charset() -> None:
    assert (
        decode_html("<p>café</p>".encode("latin-1"), "text/html; charset=ISO-8859-1")
        == "<p>café</p>"
    )
    assert "café" in decode_html('<meta charset="utf-8"><p>café</p>'.encode())


def test_decode_latin1_label_is_windows_1252() -> None:
    """QA-2 #6: pages labelled iso-8859-1 (or ascii) are windows-1252 (WHATWG); Python's
    latin-1 turned their ’ “ ” — € into C1 control characters."""
    text = "<p>It’s “quoted” — café €5</p>"
    cp1252 = text.encode("cp1252")
    assert decode_html(cp1252, "text/html; charset=ISO-8859-1") == text
    assert decode_html(b'<meta charset="latin1">' + cp1252)[23:] == text
    # UTF-8 under a latin-1/ascii label is UTF-8, as it was for ascii before
    assert decode_html(text.encode(), "text/html; charset=us-ascii") == text
    assert decode_html(text.encode(), "text/html; charset=iso-8859-1") == text
    assert (
        decode_html("<p>똠방각하</p>".encode("cp949"), "text/html; charset=EUC-KR")
        == "<p>똠방각하</p>"
    )


def test_language_id() -> None:
    lang, score = detect_language("This is an English sentence about the weather in the mountains.")
    assert lang == "en" and score > 0.9
    lang, score = detect_language("Dies ist ein deutscher Satz über das Wetter in den Bergen.")
    assert lang == "de" and 0 <= score <= 1
    assert detect_language("   ") == ("und", 0.0)


def test_token_prf() -> None:
    assert token_prf("a b c", "a b c") == (1.0, 1.0, 1.0)
    p, r, f = token_prf("a b", "a b c d")
    assert (p, r) == (1.0, 0.5) and abs(f - 2 / 3) < 1e-9


def test_cli_extract_files_and_directory(tmp_path: Path) -> None:
    from aistack.cli.webdata import app

    d = tmp_path / "pages"
    d.mkdir()
    (d / "a.html").write_text(generate_page(1).html)
    (d / "b.html.gz").write_bytes(gzip.compress(generate_page(2).html.encode()))
    (d / "notes.txt").write_text("ignored")
    out = tmp_path / "out.jsonl"
    res = CliRunner().invoke(
        app, ["extract", str(d), "--mode", "fast", "--out", str(out), "--json"]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["files"] == 2
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [Path(r["path"]).name for r in rows] == ["a.html", "b.html.gz"]
    assert set(rows[0]) == {"path", "text", "lang", "lang_score"}
    assert rows[1]["lang"] == "en" and rows[1]["lang_score"] > 0.9
    assert token_prf(rows[1]["text"], generate_page(2).main_text)[2] > 0.8


def test_cli_extract_errors(tmp_path: Path) -> None:
    from aistack.cli.webdata import app

    res = CliRunner().invoke(app, ["extract", str(tmp_path / "missing.html")])
    assert isinstance(res.exception, ValidationError) and "does not exist" in str(res.exception)
    res = CliRunner().invoke(app, ["extract", str(tmp_path), "--mode", "turbo"])
    assert isinstance(res.exception, ValidationError) and "--mode" in str(res.exception)


def test_cli_extract_says_what_it_ignored_and_where_warc_input_goes(tmp_path: Path) -> None:
    """A folder of WARC files gave 'extracted 0 files (0 characters)', exit 0; a WARC named
    directly was read as HTML (one record with empty text)."""
    from aistack.cli.webdata import app

    d = tmp_path / "crawl"
    d.mkdir()
    warc = b"WARC/1.0\r\nWARC-Type: warcinfo\r\nContent-Length: 0\r\n\r\n\r\n\r\n"
    (d / "a.warc").write_bytes(warc)
    (d / "b.warc.gz").write_bytes(gzip.compress(warc))
    (d / "c.arc").write_bytes(b"filedesc://c.arc 0.0.0.0 20080430204825 text/plain 10\n")
    out = tmp_path / "out.jsonl"
    out.write_text("earlier\n")
    r = CliRunner()
    res = r.invoke(app, ["extract", str(d), "--mode", "fast", "--out", str(out)])
    assert res.exit_code != 0
    assert isinstance(res.exception, ValidationError)
    assert res.exception.message == (
        f"0 HTML files in {d} (3 other files ignored: WARC/ARC/WET input goes through "
        "`aistack webdata run`)"
    )
    assert out.read_text() == "earlier\n"  # left as it was
    # some HTML beside them: extracted, and the others are counted on stderr
    (d / "p.html").write_text(generate_page(1).html)
    res = r.invoke(app, ["extract", str(d), "--mode", "fast", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["files"], summary["ignored_files"]) == (1, 3)
    assert (
        f"1 HTML file in {d} (3 other files ignored: WARC/ARC/WET input goes through "
        "`aistack webdata run`)" in res.stderr
    )
    # named directly: a bad file with the reason, not an empty-text record
    for name, what in [
        ("a.warc", "a WARC"),
        ("b.warc.gz", "a gzip-compressed WARC"),
        ("c.arc", "an ARC"),
    ]:
        res = r.invoke(
            app, ["extract", str(d / name), "--mode", "fast", "--json", "--out", str(out)]
        )
        assert res.exit_code == 1, res.output
        [b] = json.loads(res.stdout)["bad_files"]
        assert (
            b["reason"]
            == f"{what} file, not HTML (WARC/ARC/WET input goes through `aistack webdata run`)"
        )
        assert json.loads(res.stdout)["files"] == 0
        assert out.read_text() == ""
        # no hint that --skip-bad would make this a success: it does not (below)
        assert "--skip-bad" not in res.stderr, res.stderr
        assert "nothing was extracted: the input file was bad" in res.stderr
        # every file bad: not a success even with --skip-bad
        res = r.invoke(app, ["extract", str(d / name), "--mode", "fast", "--skip-bad"])
        assert res.exit_code == 1 and res.stdout == ""
        assert "nothing was extracted: the input file was bad" in res.stderr


@pytest.mark.parametrize(
    ("command", "sentence"),
    [
        (
            "run",
            "A damaged or unreadable input file does not stop the run: it is listed with the "
            'reason (report "bad_files", report.txt, stderr), what could be read from it is kept, '
            "and the exit status is 1 unless --skip-bad.",
        ),
        (
            "extract",
            "A file that cannot be read (e.g. a damaged .gz) does not stop the others: each bad "
            'file is named with the reason (stderr, and "bad_files" in the --json summary), the '
            "rest is written, and the exit status is 1 unless --skip-bad.",
        ),
    ],
)
def test_help_paragraphs_are_not_broken_mid_sentence(command: str, sentence: str) -> None:
    from aistack.cli.webdata import app

    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "400"}, terminal_width=400)
    assert res.exit_code == 0, res.output
    assert sentence in res.output  # on one line in a wide terminal: no hard line breaks
