"""The report's tables hold strings that come from the input (file names, reasons, filter
keys, the run's name): printed by any rich console, with markup on, they show as written.
They were markup: "[/]" raised a MarkupError, "[red]" coloured the rest of the cell and
"[link=...]" made a hyperlink."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from aistack.webdata.report import render_text, tables

HOSTILE = [
    "[red]run[/red]",
    "len/[/]",
    "url/[bold]http://x.example/[b]",
    "/in/[bold]a.warc.gz[/bold]",
    "[/] closing tag with nothing open",
    "/in/[red]b.warc",
    "[link=http://evil.example]click[/link]",
]


def _report() -> dict[str, Any]:
    counts = {
        "files": 2,
        "records": 4,
        "html_documents": 4,
        "documents_out": 1,
        "steps": {"extract": {"in": 4, "out": 3}, "len": {"in": 3, "out": 1}},
        "drops": {HOSTILE[1]: 1, HOSTILE[2]: 1},
        "languages": {"en": 1},
        "pii_masked": {},
        "duplicates": {},
        "tokens": 0,
        "unreadable_records": 1,
        "bad_files": 1,
    }
    return {
        "name": HOSTILE[0],
        "counts": counts,
        "bad_files": [{"file": HOSTILE[3], "records": 0, "reason": HOSTILE[4]}],
        "unreadable": [{"file": HOSTILE[5], "offset": 7, "reason": HOSTILE[6]}],
    }


def _printed(markup: bool) -> str:
    buf = io.StringIO()
    con = Console(file=buf, width=400, color_system=None, force_terminal=False)
    for t in tables(_report()):
        con.print(t, markup=markup)
    return buf.getvalue()


def test_input_strings_print_literally_with_markup_on() -> None:
    out = _printed(markup=True)  # (the old tables: MarkupError on "[/]")
    for s in HOSTILE:
        assert s in out, (s, out)


def test_report_txt_shows_them_too() -> None:
    out = render_text(_report())
    assert "webdata run [red]run[/red]: documents per step" in out
    for s in HOSTILE[1:3]:
        assert s in out


def test_no_cell_is_markup() -> None:
    from rich.text import Text

    for t in tables(_report()):
        assert isinstance(t.title, Text)
        for col in t.columns:
            assert all(isinstance(c, Text) for c in col._cells), col.header
