"""``aistack data``: versioned datasets on the configured store and metadata DB (no server needed)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from aistack.cli._common import ago, console, err_console, print_json

app = typer.Typer(
    help="Versioned datasets: add, ls, log, diff, get, tag, lineage, gc.",
    no_args_is_help=True,
)

JSON_OPT = typer.Option(False, "--json", help="print JSON instead of a table")


def _datasets() -> Any:
    from aistack.storage import Datasets

    return Datasets.from_settings()


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


@contextlib.contextmanager
def _progress(label: str, enabled: bool) -> Iterator[Any]:
    """A rich progress bar in bytes (on stderr); yields the callback or None."""
    if not enabled:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def cb(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield cb


@app.command()
def add(
    name: str = typer.Argument(..., help="dataset name (letters, digits, . _ -)"),
    path: Path = typer.Argument(..., help="file or directory to store as a new version"),
    message: str | None = typer.Option(None, "--message", "-m", help="what changed"),
    tag: list[str] = typer.Option([], "--tag", "-t", help="tag the new version (repeatable)"),
    as_json: bool = JSON_OPT,
) -> None:
    """Store PATH as a new immutable version of NAME."""
    ds = _datasets()
    t0 = time.perf_counter()
    with _progress(f"add {name}", not as_json) as cb:
        v = ds.add(name, path, message=message, tags=tuple(tag), progress=cb)
    dt_s = time.perf_counter() - t0
    if as_json:
        print_json({**v.to_dict(), "seconds": round(dt_s, 3)})
        return
    console.print(
        f"[green]{v.ref}[/green]: {v.files:,} files, {fmt_bytes(v.bytes)} "
        f"({fmt_bytes(v.bytes_written)} new) in {dt_s:.2f} s"
        + (f", tags {', '.join(v.tags)}" if v.tags else "")
    )


@app.command("ls")
def ls_(as_json: bool = JSON_OPT) -> None:
    """List datasets."""
    ds = _datasets()
    rows = ds.ls()
    if as_json:
        print_json([r.to_dict() for r in rows])
        return
    from rich.table import Table

    t = Table(title="datasets")
    for c in ("name", "versions", "latest", "latest size", "updated"):
        t.add_column(c)
    for r in rows:
        size = "-"
        if r.latest:
            size = fmt_bytes(ds.resolve(f"{r.name}@v{r.latest}").bytes)
        t.add_row(
            r.name,
            str(r.versions),
            f"v{r.latest}" if r.latest else "-",
            size,
            ago(r.updated_at.isoformat() if r.updated_at else None),
        )
    console.print(t if rows else "no datasets yet: `aistack data add NAME PATH`")


@app.command()
def log(name: str = typer.Argument(..., help="dataset name"), as_json: bool = JSON_OPT) -> None:
    """Versions of NAME, newest first."""
    rows = _datasets().log(name)
    if as_json:
        print_json([v.to_dict() for v in rows])
        return
    from rich.table import Table

    t = Table(title=f"{name}: versions")
    for c in ("version", "files", "size", "created", "tags", "message"):
        t.add_column(c)
    for v in rows:
        t.add_row(
            f"v{v.version}",
            f"{v.files:,}",
            fmt_bytes(v.bytes),
            ago(v.created_at.isoformat()),
            ", ".join(v.tags) or "-",
            v.message or "",
        )
    console.print(t)


@app.command()
def diff(
    a: str = typer.Argument(..., help="old version, e.g. corpus@v1"),
    b: str = typer.Argument(..., help="new version, e.g. corpus@v2"),
    as_json: bool = JSON_OPT,
) -> None:
    """Files added, removed and changed between two versions (with bytes)."""
    d = _datasets().diff(a, b)
    if as_json:
        print_json(d.to_dict())
        return
    console.print(f"[bold]{d.a} → {d.b}[/bold]")
    for sign, color, items in (
        ("+", "green", d.added),
        ("-", "red", d.removed),
        ("~", "yellow", d.changed),
    ):
        for c in items:
            size = fmt_bytes(c.new_size if c.new_size is not None else c.old_size)
            if sign == "~":
                size = f"{fmt_bytes(c.old_size)} → {fmt_bytes(c.new_size)}"
            console.print(f"[{color}]{sign} {c.path}[/{color}] ({size})")
    console.print(
        f"{len(d.added)} added ({fmt_bytes(d.bytes_added)}), {len(d.removed)} removed "
        f"({fmt_bytes(d.bytes_removed)}), {len(d.changed)} changed ({fmt_bytes(d.bytes_changed)}), "
        f"{d.unchanged} unchanged"
    )


@app.command()
def get(
    ref: str = typer.Argument(..., help="version to fetch, e.g. corpus@v3 or corpus@latest"),
    dest: Path = typer.Argument(..., help="directory to write the files into"),
    copy: bool = typer.Option(
        False, "--copy", help="always write independent copies (default: links on a local store)"
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Materialize a version under DEST (verified; hard links or reflinks on a local store)."""
    ds = _datasets()
    t0 = time.perf_counter()
    with _progress(f"get {ref}", not as_json) as cb:
        r = ds.get(ref, dest, link="copy" if copy else "auto", progress=cb)
    dt_s = time.perf_counter() - t0
    if as_json:
        print_json({**r.to_dict(), "seconds": round(dt_s, 3)})
        return
    console.print(
        f"[green]{r.version.ref}[/green] → {r.dest}: {r.files:,} files, {fmt_bytes(r.bytes)} "
        f"({r.linked:,} linked, {r.copied:,} copied) in {dt_s:.2f} s"
    )


@app.command()
def tag(
    ref: str = typer.Argument(..., help="version, e.g. corpus@v3"),
    tag_name: str = typer.Argument(..., metavar="TAG", help="tag name (moves if it exists)"),
    as_json: bool = JSON_OPT,
) -> None:
    """Point TAG at a version (then use NAME@TAG anywhere a version is expected)."""
    v = _datasets().tag(ref, tag_name)
    if as_json:
        print_json(v.to_dict())
        return
    console.print(f"{v.name}@{tag_name} → [green]{v.ref}[/green]")


@app.command()
def lineage(
    ref: str = typer.Argument(..., help="version, e.g. corpus@v3"), as_json: bool = JSON_OPT
) -> None:
    """Where a version came from and what was made from it (jobs, datasets, runs, models)."""
    g = _datasets().lineage(ref)
    if as_json:
        print_json(g)
        return
    from rich.tree import Tree

    ups: dict[str, list[str]] = {}
    downs: dict[str, list[str]] = {}
    for e in g["edges"]:
        ups.setdefault(e["dst"], []).append(e["src"])
        downs.setdefault(e["src"], []).append(e["dst"])

    def grow(tree: Any, n: str, links: dict[str, list[str]], seen: set[str]) -> None:
        for m in sorted(links.get(n, [])):
            if m in seen:
                continue
            grow(tree.add(m), m, links, seen | {m})

    root = g["root"]
    up = Tree(f"[bold]{root}[/bold] ← made from")
    grow(up, root, ups, {root})
    down = Tree(f"[bold]{root}[/bold] → used by")
    grow(down, root, downs, {root})
    console.print(up)
    console.print(down)
    if not g["edges"]:
        console.print("no lineage recorded yet (jobs with `inputs:` record it)")


@app.command()
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="only report what would be deleted"),
    grace: float = typer.Option(
        3600.0, "--grace", min=0, help="keep unreferenced objects younger than this (s)"
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Delete stored objects that no live dataset version uses (referenced ones are kept)."""
    r = _datasets().gc(dry_run=dry_run, grace_s=grace)
    if as_json:
        print_json(r.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{verb} {r.objects_deleted:,} objects ({fmt_bytes(r.bytes_deleted)}) and "
        f"{r.manifests_deleted:,} manifests; kept {r.objects_live:,} live objects and "
        f"{r.objects_young:,} younger than {grace:,.0f} s; {r.protected_versions:,} referenced "
        f"versions protected"
    )


@app.command()
def rm(
    ref: str = typer.Argument(..., help="version to delete, e.g. corpus@v2"),
    as_json: bool = JSON_OPT,
) -> None:
    """Delete a version (refused while a job, run or model references it); then `data gc`."""
    v = _datasets().delete(ref)
    if as_json:
        print_json({**v.to_dict(), "deleted": True})
        return
    console.print(f"deleted {v.ref} ({fmt_bytes(v.bytes)}); run `aistack data gc` to free space")
