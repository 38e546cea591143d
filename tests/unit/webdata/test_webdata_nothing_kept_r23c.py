"""A run that keeps no document registers no dataset version: a pipeline without a tokenize
step on input with no page at all (WAT metadata, images) exited 0 and registered a version
holding only report.json. Now it fails (exit 2) saying what the records were and what to
give instead, stores nothing new, and the versions stored before stay as they were. Without
a register step, an input of no page at all is an error too (as `webdata extract` with no
HTML file); pages that the filters all dropped are not."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_webdata_no_pages_r22c import _record

from aistack.errors import ValidationError
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

PAGE = (
    b"<html><body><article><p>"
    + b"The quick brown fox jumps over the lazy dog near the river bank today. " * 12
    + b"</p></article></body></html>"
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from aistack.settings import reset_settings_cache

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    reset_settings_cache()
    yield tmp_path / "home"
    reset_settings_cache()


def _pipeline(tmp_path: Path, name: str, files: dict[str, bytes], steps: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    for f, data in files.items():
        (d / f).write_bytes(data)
    p = tmp_path / f"{name}.yaml"
    p.write_text(f"name: {name}\ninput: {{paths: [{name}]}}\noutput: out-{name}\nsteps: {steps}\n")
    return p


def _aistack(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str]:
    """``aistack ARGS`` through the real entry point: (exit code, stderr with its whitespace
    collapsed)."""
    import sys

    from aistack.cli.main import main

    monkeypatch.setenv("COLUMNS", "300")
    monkeypatch.setattr(sys, "argv", ["aistack", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main()
    return int(ended.value.code or 0), " ".join(capsys.readouterr().err.split())


def _versions(name: str) -> list[int]:
    from aistack.storage import Datasets

    ds = Datasets.from_settings()
    try:
        return [v.version for v in ds.log(name)]
    except Exception:  # noqa: BLE001 - no such dataset
        return []


IMAGES = {
    "img.warc.gz": _record("http://a/x.png", "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    + _record("http://a/x.json", "application/json", b'{"a": 1}')
}


def test_register_without_tokenize_of_no_page_fails_and_stores_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = _pipeline(
        tmp_path, "good", {"a.warc.gz": _record("http://a/", "text/html", PAGE)},
        "[extract, {register: {name: wd-corpus}}]",
    )  # fmt: skip
    code, err = _aistack(capsys, monkeypatch, "webdata", "run", str(good), "--json")
    assert code == 0, err
    assert _versions("wd-corpus") == [1]
    empty = _pipeline(tmp_path, "empty", IMAGES, "[extract, {register: {name: wd-corpus}}]")
    code, err = _aistack(capsys, monkeypatch, "webdata", "run", str(empty))
    assert code == 2, err
    assert (
        "error: register: no document was kept, nothing to register: 0 pages read from 1 "
        "file, of 2 records, none is an HTML page or a WET text (skipped: not_html 2)" in err
    )
    assert "give input.paths WARC/ARC files with HTML responses" in err
    assert f"the report is in {tmp_path / 'out-empty' / 'report.txt'}" in err
    assert _versions("wd-corpus") == [1]  # nothing new; v1 as it was
    assert not (tmp_path / "out-empty" / ".tasks" / "register.done").exists()


def test_register_of_pages_all_dropped_names_the_filters(home: Path, tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "input": {"paths": [str(tmp_path / "in")]},
            "output": str(tmp_path / "out"),
            "steps": [
                {"extract": {}},
                {"language": {"languages": ["fr"]}},
                {"register": {"name": "wd-fr"}},
            ],
        }
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.warc.gz").write_bytes(_record("http://a/", "text/html", PAGE))
    with pytest.raises(ValidationError) as ei:
        run_pipeline(spec)
    assert ei.value.message == (
        "register: no document was kept, nothing to register: 1 page read from 1 file, all "
        "dropped (docs per filter/reason: language/other_language 1)"
    )
    assert ei.value.hint.startswith("loosen the filters (report.txt lists the drops per filter)")
    assert _versions("wd-fr") == []


def test_no_page_at_all_without_register_is_an_error(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _pipeline(tmp_path, "imgs", IMAGES, "[extract, dedup]")
    code, err = _aistack(capsys, monkeypatch, "webdata", "run", str(p), "--json")
    assert code == 2, err
    assert "error: input: no document to process: 0 pages read from 1 file, of 2 records" in err
    assert (tmp_path / "out-imgs" / "report.json").is_file()  # (the report is there to read)


def test_pages_all_dropped_without_register_is_not_an_error(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _pipeline(
        tmp_path, "fr", {"a.warc.gz": _record("http://a/", "text/html", PAGE)},
        "[extract, {language: {languages: [fr]}}]",
    )  # fmt: skip
    code, err = _aistack(capsys, monkeypatch, "webdata", "run", str(p), "--json")
    assert code == 0, err
