"""`aistack data diff|gc`: the summary lines say what their counts count (files, objects)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from aistack.cli.data import app

runner = CliRunner()


def _ok(*args: str) -> str:
    r = runner.invoke(app, list(args), catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return " ".join(r.stdout.split())


def test_diff_summary_counts_files(home: Path) -> None:
    """It printed '1 added (2 B), 1 removed (2 B), 1 changed (3 B), 0 unchanged': 1 what?"""
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    (src / "b.txt").write_text("b\n")
    _ok("add", "c", str(src))
    (src / "a.txt").unlink()
    (src / "b.txt").write_text("bb\n")
    (src / "c.txt").write_text("c\n")
    (src / "d.txt").write_text("d\n")
    _ok("add", "c", str(src))
    out = _ok("diff", "c@v1", "c@v2")
    assert (
        "2 files added (4 B), 1 file removed (2 B), 1 file changed (3 B), 0 files unchanged" in out
    )


def test_gc_counts_young_objects(home: Path) -> None:
    """It printed 'kept 1 live object and 1 younger than 3,600 s': 1 what?"""
    src = home / "src"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    _ok("add", "c", str(src))
    (src / "a.txt").write_text("aa\n")
    _ok("add", "c", str(src))
    _ok("rm", "c@v1")
    out = _ok("gc", "--dry-run")
    assert "kept 1 live object and 1 object younger than 3,600 s" in out
