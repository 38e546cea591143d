"""``aistack data``: versioned datasets on the configured store and metadata DB (no server needed)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from aistack.cli._common import (
    _Command,
    ago,
    console,
    err_console,
    esc,
    print_error,
    print_json,
)
from aistack.errors import AistackError, ConflictError, IntegrityError

app = typer.Typer(
    help="Versioned datasets: add, ls, log, diff, get, tag, rm, unref, verify, lineage, gc.",
    no_args_is_help=True,
)

JSON_OPT = typer.Option(False, "--json", help="print JSON instead of a table")


def _datasets() -> Any:
    from aistack.errors import ValidationError
    from aistack.settings import get_settings
    from aistack.storage import Datasets

    url = get_settings().objects_url
    if url.startswith("memory://"):
        # every CLI command is a new process: what one adds would be gone for the next, while
        # the catalog (a file) would still list it
        raise ValidationError(
            f"AISTACK_STORAGE_URL={url} keeps objects only inside one process, and each "
            "`aistack data` command is a new process: nothing it added would be there for the "
            "next one",
            hint="use a directory, file:///dir or s3://bucket/prefix (memory:// is for tests "
            "and the Python API within one process)",
            field="storage_url",
        )
    return Datasets.from_settings()


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        # the next unit once the rounded figure would read 1,024.0 (1,048,575 B: "1.0 MiB")
        if unit == "TiB" or (abs(n) < 1024 if unit == "B" else round(abs(n), 1) < 1024):
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
        task = bar.add_task(esc(label), total=None)  # (a description is markup)

        def cb(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield cb


@app.command(cls=_Command)
def add(
    name: str = typer.Argument(..., metavar="NAME", help="dataset name (letters, digits, . _ -)"),
    path: Path = typer.Argument(
        ..., metavar="PATH", help="file or directory to store as a new version"
    ),
    message: str | None = typer.Option(None, "--message", "-m", help="what changed"),
    tag: list[str] = typer.Option([], "--tag", "-t", help="tag the new version (repeatable)"),
    always_new: bool = typer.Option(
        False, "--always-new", help="make a new version even when nothing changed since the last"
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Store PATH as a new immutable version of NAME (none when it equals the newest)."""
    ds = _datasets()
    t0 = time.perf_counter()
    with _progress(f"add {name}", not as_json) as cb:
        v = ds.add(
            name, path, message=message, tags=tuple(tag), progress=cb, if_changed=not always_new
        )
    dt_s = time.perf_counter() - t0
    if as_json:
        print_json({**v.to_dict(), "seconds": round(dt_s, 3)})
        return
    if v.unchanged:
        console.print(
            f"[yellow]{esc(v.ref)} unchanged[/yellow]: {_n(v.files, 'file')}, {fmt_bytes(v.bytes)} "
            f"are the same as the newest version, so no new version was made"
            + (f"; tagged {esc(', '.join(tag))}" if tag else "")
            + ("; the message was not recorded" if message else "")
            + " (--always-new makes one anyway)"
        )
        return
    console.print(
        f"[green]{esc(v.ref)}[/green]: {_n(v.files, 'file')}, {fmt_bytes(v.bytes)} "
        f"({fmt_bytes(v.bytes_written)} new) in {dt_s:.2f} s"
        + (f", tags {esc(', '.join(v.tags))}" if v.tags else "")
    )


@app.command("ls", cls=_Command)
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
            esc(r.name),
            str(r.versions),
            f"v{r.latest}" if r.latest else "-",
            size,
            ago(r.updated_at.isoformat() if r.updated_at else None),
        )
    console.print(t if rows else "no datasets yet: `aistack data add NAME PATH`")


@app.command(cls=_Command)
def log(
    name: str = typer.Argument(..., metavar="NAME", help="dataset name"),
    deleted: bool = typer.Option(
        False,
        "--deleted",
        "--all",
        "-a",
        help="list deleted versions too, marked with when they were deleted (their numbers "
        "are never reused; their lineage stays)",
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Versions of NAME, newest first (--deleted: the deleted ones too)."""
    rows = _datasets().log(name, deleted=deleted)
    if as_json:
        print_json(
            [
                {
                    **v.to_dict(),
                    "store": v.store,
                    "deleted": v.deleted,
                    "deleted_at": v.deleted_at.isoformat() if v.deleted_at else None,
                }
                for v in rows
            ]
        )
        return
    from rich.table import Table

    t = Table(title=f"{esc(name)}: versions")
    for c in ("version", "files", "size", "created", "tags", "message"):
        t.add_column(c)
    if deleted:
        t.add_column("deleted")
    for v in rows:
        cells = [
            f"v{v.version}",
            f"{v.files:,}",
            fmt_bytes(v.bytes),
            ago(v.created_at.isoformat()),
            esc(", ".join(v.tags) or "-"),
            esc(v.message or ""),
        ]
        if deleted:
            when = v.deleted_at.strftime("%Y-%m-%d %H:%M:%S UTC") if v.deleted_at else ""
            cells.append(f"[red]deleted {when}[/red]" if v.deleted else "-")
        t.add_row(*cells, style="dim" if v.deleted else None)
    console.print(t)


@app.command(cls=_Command)
def diff(
    a: str = typer.Argument(..., metavar="A", help="old version, e.g. corpus@v1"),
    b: str = typer.Argument(..., metavar="B", help="new version, e.g. corpus@v2"),
    as_json: bool = JSON_OPT,
) -> None:
    """Files added, removed and changed between two versions (with bytes)."""
    d = _datasets().diff(a, b)
    if as_json:
        print_json(d.to_dict())
        return
    console.print(f"[bold]{esc(d.a)} → {esc(d.b)}[/bold]")
    for sign, color, items in (
        ("+", "green", d.added),
        ("-", "red", d.removed),
        ("~", "yellow", d.changed),
    ):
        for c in items:
            size = fmt_bytes(c.new_size if c.new_size is not None else c.old_size)
            if sign == "~":
                size = (
                    f"{fmt_bytes(c.old_size)} → {fmt_bytes(c.new_size)}"
                    if c.content
                    else f"{fmt_bytes(c.new_size)}, same bytes"
                )
                if c.mode:
                    size += f", mode {c.mode}"
            console.print(f"[{color}]{sign} {esc(c.path)}[/{color}] ({esc(size)})")
    console.print(
        f"{_n(len(d.added), 'file')} added ({fmt_bytes(d.bytes_added)}), "
        f"{_n(len(d.removed), 'file')} removed ({fmt_bytes(d.bytes_removed)}), "
        f"{_n(len(d.changed), 'file')} changed ({fmt_bytes(d.bytes_changed)}), "
        f"{_n(d.unchanged, 'file')} unchanged"
    )


@app.command(cls=_Command)
def get(
    ref: str = typer.Argument(
        ..., metavar="REF", help="version to fetch, e.g. corpus@v3 or corpus@latest"
    ),
    dest: Path = typer.Argument(
        ...,
        metavar="DEST",
        help="directory to write the files into (files it holds that the version lacks are "
        "left alone; files already holding the version's bytes are kept)",
    ),
    copy: bool = typer.Option(
        False, "--copy", help="always write independent, writable copies (same as --link copy)"
    ),
    link: str = typer.Option(
        "auto",
        "--link",
        help="auto: reflinks where the filesystem has them, else read-only hard links to the "
        "store's objects (copies when run as root, whom file modes do not stop); hardlink: "
        "hard links also as root (never edit such a file in place: it is the stored object); "
        "copy: copies",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        "-f",
        help="replace files in DEST that are in the way (other bytes, symlinks, a file where "
        "the version has a directory); without it nothing is written when one is",
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Materialize a version under DEST (verified; reflinks or read-only hard links on a local store)."""
    if copy and link not in ("auto", "copy"):  # --link hardlink --copy silently copied
        from aistack.errors import ValidationError

        raise ValidationError(
            f"--copy and --link {link} contradict each other (--copy is --link copy)",
            hint="pass one of them",
        )
    ds = _datasets()
    t0 = time.perf_counter()
    try:
        with _progress(f"get {ref}", not as_json) as cb:
            r = ds.get(ref, dest, link="copy" if copy else link, force=force, progress=cb)
    except ConflictError as exc:  # the hint names the API's force=True: this command's option
        if not exc.hint or "force=True" not in exc.hint:
            raise
        raise ConflictError(
            exc.message, hint=exc.hint.replace("force=True", "--force"), **exc.details
        ) from None
    dt_s = time.perf_counter() - t0
    if as_json:
        print_json({**r.to_dict(), "seconds": round(dt_s, 3)})
        return
    kept = f", {r.unchanged:,} already there" if r.unchanged else ""
    console.print(
        f"[green]{esc(r.version.ref)}[/green] → {esc(r.dest)}: {_n(r.files, 'file')}, "
        f"{fmt_bytes(r.bytes)} "
        f"({r.linked:,} linked, {r.copied:,} copied{kept}) in {dt_s:.2f} s"
    )
    if r.linked and link == "hardlink":
        err_console.print(
            f"[yellow]note:[/yellow] {r.linked:,} file(s) may be hard links to the store's "
            "objects: writing to one in place changes the stored version (copy it first)"
        )


@app.command(cls=_Command)
def tag(
    ref: str = typer.Argument(
        ..., metavar="REF", help="version, e.g. corpus@v3 (with --delete: the dataset, e.g. corpus)"
    ),
    tag_name: str = typer.Argument(..., metavar="TAG", help="tag name (moves if it exists)"),
    delete: bool = typer.Option(
        False,
        "--delete",
        "-d",
        help="delete TAG instead (as `git tag -d`): only the name goes, no version or data",
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Point TAG at a version (then use NAME@TAG anywhere a version is expected); -d deletes it."""
    if delete:
        was = _datasets().untag(ref, tag_name)
        if as_json:
            print_json({"name": was.name, "tag": tag_name, "was": was.ref, "deleted": True})
            return
        gone = " (a deleted version)" if was.deleted else ""
        console.print(f"deleted tag {was.name}@{tag_name} (was {was.ref}{gone})", markup=False)
        return
    v = _datasets().tag(ref, tag_name)
    if as_json:
        print_json(v.to_dict())
        return
    console.print(f"{esc(v.name)}@{esc(tag_name)} → [green]{esc(v.ref)}[/green]")


@app.command(cls=_Command)
def unref(
    ref: str = typer.Argument(..., metavar="REF", help="explicit version, e.g. corpus@v3"),
    by: list[str] = typer.Option(
        [],
        "--by",
        help="the reference to drop, KIND:ID (job:42, run:ID, model:gpt@v3, webdata:RUN); "
        "repeatable",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        "-f",
        help="drop a reference even while its job has not finished or its web-data pipeline "
        "run still runs (then `data rm` and gc can delete data it still reads)",
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Drop a job's, run's or model's reference to a version, so `data rm` can delete it.

    REF is an explicit version (NAME@vN), as for `data rm`. The lineage stays. Without --by,
    nothing is dropped and the error lists the references. A job's reference is kept while
    the job is queued or running (as the metadata DB, or else the aistack server, says), and
    a web-data pipeline run's while the run is running (--force drops them anyway); when
    the server cannot be reached, it is dropped with a warning."""
    from aistack.storage.refs import parse_referrer

    pairs = list(dict.fromkeys(parse_referrer(b) for b in by))
    v, left = _datasets().remove_references(  # no --by: lists them in the error
        ref, pairs, check=None if force else _refuse_unfinished_jobs, force=force
    )
    if as_json:
        print_json(
            {
                "ref": v.ref,
                "removed": [{"kind": k, "id": i} for k, i in pairs],
                "references": left,
            }
        )
        return
    console.print(esc(f"dropped {', '.join(f'{k}:{i}' for k, i in pairs)} from {v.ref}"))
    if left:
        still = ", ".join(f"{r['kind']}:{r['id']}" for r in left)
        console.print(esc(f"still referenced by {still}"))
    elif not v.deleted:
        console.print(
            f"nothing references {v.ref} now: `aistack data rm {v.ref}` deletes it",
            soft_wrap=True,
            markup=False,
        )


def _refuse_unfinished_jobs(v: Any, pairs: list[tuple[str, str]]) -> None:
    """``check`` of `data unref`: ConflictError when the server says a job whose reference
    would be dropped has not finished (queued or running, it reads the version). The storage
    layer has refused already when the metadata DB's jobs table says so; the server is asked
    too, as its jobs may be in another DB than this catalog. Unknown to the server (404): not
    its job, dropped. Server not reachable (or refusing): dropped, with a one-line warning."""
    jobs = [i for k, i in pairs if k == "job"]
    if not jobs:
        return
    import shlex

    from aistack.cli import _common
    from aistack.client.client import FINAL_STATES
    from aistack.errors import ConflictError, ConnectionFailed, NotFoundError

    unfinished: list[tuple[str, str]] = []
    unchecked: dict[str, str] = {}
    try:
        c = _common.client()
    except AistackError as exc:  # e.g. AISTACK_URL is not a URL
        unchecked = dict.fromkeys(jobs, exc.message)
    else:
        try:
            for i, job in enumerate(jobs):
                try:
                    state = str(c.get_job(job).get("state"))
                except NotFoundError:
                    continue  # not this server's job (or deleted): nothing here runs it
                except ConnectionFailed as exc:  # the rest cannot be checked either
                    unchecked.update(dict.fromkeys(jobs[i:], exc.message))
                    break
                except AistackError as exc:  # e.g. a wrong token
                    unchecked[job] = exc.message
                    continue
                if state not in FINAL_STATES:
                    unfinished.append((job, state))
        finally:
            c.close()
    if unfinished:
        who = ", ".join(f"job {j} is {s}" for j, s in unfinished)
        ids = " ".join(shlex.quote(j) for j, _ in unfinished)
        one = len(unfinished) == 1
        its, it = ("its", "it") if one else ("their", "they")
        raise ConflictError(
            f"{who}: {its} reference{'' if one else 's'} to {v.ref} cannot be dropped, since "
            f"`aistack data rm` and gc could then delete data {it} still read{'s' if one else ''}"
            "; nothing was dropped",
            hint=f"wait for {'it' if one else 'them'} to end "
            f"(`aistack wait {shlex.quote(unfinished[0][0])}`), cancel {'it' if one else 'them'} "
            f"(`aistack cancel {ids}`), or pass --force to drop {its} reference"
            f"{'' if one else 's'} anyway",
            ref=v.ref,
        )
    for reason in dict.fromkeys(unchecked.values()):
        names = [j for j, r in unchecked.items() if r == reason]
        what = f"job {names[0]} is" if len(names) == 1 else f"jobs {', '.join(names)} are"
        err_console.print(
            "[yellow]warning:[/yellow] "
            + esc(
                f"could not check whether {what} still running ({reason}); dropping the "
                f"reference to {v.ref} anyway"
            ),
            soft_wrap=True,
        )


# the nodes `data lineage` prints under one node; past it, a line says how many more there are
LINEAGE_CHILDREN = 20


@app.command(cls=_Command)
def lineage(
    ref: str = typer.Argument(..., metavar="REF", help="version, e.g. corpus@v3"),
    as_json: bool = JSON_OPT,
) -> None:
    """Where a version came from and what was made from it (jobs, datasets, runs, models, and
    the web-data pipeline runs and input files behind a corpus)."""
    g = _datasets().lineage(ref)
    note = ""
    if any(n["kind"] == "run" for n in g["nodes"]):
        # run → model version comes from the MLflow registry (the server's /mlflow)
        from aistack.mlops.lineage import with_model_versions

        try:
            g = with_model_versions(g)
        except AistackError as exc:
            note = f"(model versions made by these runs not shown: {exc})"
    if as_json:
        print_json(g)
        return
    from collections import Counter

    from rich.tree import Tree

    if note:
        err_console.print(note, markup=False)
    gone = {n["id"]: n["deleted_at"] for n in g["nodes"] if n.get("deleted_at")}

    def label(n: str, bold: bool = False) -> str:
        text = f"[bold]{esc(n)}[/bold]" if bold else esc(n)
        if n in gone:
            when = gone[n].replace("T", " ").split(".")[0].split("+")[0]
            text += f" [red](deleted {esc(when)} UTC, {ago(gone[n])})[/red]"
        return text

    ups: dict[str, list[str]] = {}
    downs: dict[str, list[str]] = {}
    for e in g["edges"]:
        ups.setdefault(e["dst"], []).append(e["src"])
        downs.setdefault(e["src"], []).append(e["dst"])

    def grow(tree: Any, n: str, links: dict[str, list[str]], seen: set[str]) -> None:
        shown = [m for m in sorted(links.get(n, [])) if m not in seen]
        more = shown[LINEAGE_CHILDREN:] if len(shown) > LINEAGE_CHILDREN + 1 else []
        for m in shown[: len(shown) - len(more)]:
            grow(tree.add(label(m)), m, links, seen | {m})
        if more:  # (a web-data run reads thousands of files: they are not all printed)
            kinds = Counter(m.partition(":")[0] for m in more)
            what = ", ".join(f"{k:,} {kind}" for kind, k in sorted(kinds.items()))
            tree.add(f"[dim]… {len(more):,} more ({esc(what)}); --json lists them all[/dim]")

    root = g["root"]
    if not g["edges"]:
        console.print(label(root, bold=True))
        console.print(
            "no lineage recorded yet (jobs with `inputs:` record it, and so does the register "
            "step of `aistack webdata run`)",
            soft_wrap=True,
        )
        return
    # a side with nothing on it is left out, rather than printed as an empty heading
    for heading, links in (("← made from", ups), ("→ used by", downs)):
        if links.get(root):
            tree = Tree(f"{label(root, bold=True)} {heading}")
            grow(tree, root, links, {root})
            console.print(tree)


@app.command(cls=_Command)
def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="only report what would be deleted"),
    grace: float = typer.Option(
        3600.0,
        "--grace",
        min=0,
        help="keep unreferenced objects and manifests younger than this (s); below 300 s "
        "needs --force. What a `data add` running now on this machine (same AISTACK_HOME) "
        "writes is kept whatever the grace",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="allow a grace below 300 s (when no `data add` is running on another machine)",
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Delete stored objects that no live dataset version uses (referenced ones are kept)."""
    if grace < MIN_SAFE_GRACE_S and not force and not dry_run:
        from aistack.errors import ValidationError

        raise ValidationError(
            f"--grace {grace:g} s: an add running now could lose the objects it just wrote "
            f"if it runs on another machine (they are not referenced until it finishes; adds "
            f"on this machine, with this AISTACK_HOME, are seen and kept)",
            hint=f"use --grace {MIN_SAFE_GRACE_S} or more, or --force if no `aistack data add` "
            "is running against this store from another machine",
            field="grace",
        )
    ds = _datasets()
    r = ds.gc(dry_run=dry_run, grace_s=grace)
    if as_json:
        print_json(r.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    what = [
        f"{_n(r.objects_deleted, 'object')} ({fmt_bytes(r.bytes_deleted)})",
        _n(r.manifests_deleted, "manifest"),
    ]
    if r.temp_deleted:  # what killed adds left half written (cas/tmp)
        what.append(f"{_n(r.temp_deleted, 'temp file')} of interrupted adds")
    console.print(
        f"{verb} {', '.join(what[:-1])} and {what[-1]}; "
        f"kept {_n(r.objects_live, 'live object')} and "
        f"{_n(r.objects_young, 'object')} younger than {grace:,.0f} s; "
        f"{_n(r.protected_versions, 'referenced version')} protected"
    )
    for store, k in r.other_stores.items():
        console.print(
            f"note: {_n(k, 'version')} live in store {store}, not in this one "
            f"({ds.store_id}): left alone; run gc with AISTACK_STORAGE_URL set to that "
            "store to collect its garbage",
            soft_wrap=True,
            markup=False,
        )


MIN_SAFE_GRACE_S = 300


def _n(k: int, noun: str) -> str:
    return f"{k:,} {noun}{'' if k == 1 else 's'}"


@app.command(cls=_Command)
def verify(
    ref: str = typer.Argument(..., metavar="REF", help="version to check, e.g. corpus@v3"),
    as_json: bool = JSON_OPT,
) -> None:
    """Read every stored byte of a version and check it against its hash (exit 1 if damaged)."""
    ds = _datasets()
    v = ds.resolve(ref)
    t0 = time.perf_counter()
    try:
        n = ds.verify(v.ref)  # raises IntegrityError naming the objects and their files
    except IntegrityError as exc:  # damaged or missing: exit 1, as promised (2: bad input)
        if "problems" in exc.details:  # several, one a line: the hint goes on its own line
            err_console.print(
                f"[red]error:[/red] {esc(exc.message)}\n{esc(f'({exc.hint})')}", soft_wrap=True
            )
        else:
            print_error(exc)
        raise typer.Exit(1) from None
    dt_s = time.perf_counter() - t0
    if as_json:
        print_json({"ref": v.ref, "files": v.files, "bytes": n, "ok": True, "seconds": dt_s})
        return
    console.print(
        f"[green]{esc(v.ref)}[/green]: {_n(v.files, 'file')}, {fmt_bytes(n)} verified in {dt_s:.2f} s"
    )


@app.command(cls=_Command)
def rm(
    ref: str = typer.Argument(..., metavar="REF", help="version to delete, e.g. corpus@v2"),
    as_json: bool = JSON_OPT,
) -> None:
    """Delete a version (refused while a job, run or model references it); then `data gc`."""
    v = _datasets().delete(ref)
    if as_json:
        print_json({**v.to_dict(), "deleted": True, "lineage_kept": v.lineage_kept})
        return
    kept = ""
    if v.lineage_kept:  # (the version's catalog row and its lineage edges stay)
        edges = f"{v.lineage_kept:,} edge" + ("" if v.lineage_kept == 1 else "s")
        kept = f"; its lineage is kept ({edges}): `aistack data lineage {v.ref}` still shows it"
    console.print(
        f"deleted {v.ref} ({fmt_bytes(v.bytes)}){kept}; run `aistack data gc` to free space",
        soft_wrap=True,
        markup=False,
    )
