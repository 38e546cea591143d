"""``aistack webdata``: crawl, extract, run a pipeline, inspect shards."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from aistack.cli._common import _Command, esc, make_console
from aistack.errors import ValidationError

app = typer.Typer(
    help="Web data: crawl → WARC → extract → filter → dedup → tokenize → shards.",
    no_args_is_help=True,
)


def _console(stderr: bool = False) -> Any:
    return make_console(stderr)


# exit status when the command finished but some input files were bad (each is reported, the
# rest is written); 2 stays an error that stopped the command (see aistack.cli.main)
EXIT_BAD_FILES = 1
_SKIP_BAD_HELP = (
    "exit 0 even when some input files are damaged or unreadable (they are still reported; "
    f"without this flag the exit status is {EXIT_BAD_FILES})"
)
_RUN_SKIP_BAD_HELP = (
    "accept damaged or unreadable input files: exit 0 and run the register step (the "
    "dataset version lists them in its metadata); without this flag the exit status is "
    f"{EXIT_BAD_FILES} and nothing is registered. They are reported either way"
)


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _report_bad(
    bad: list[dict[str, Any]],
    total: int,
    skip_bad: bool,
    *,
    not_registered: bool = False,
    nothing_left: bool = False,
) -> None:
    """Say which input files were bad (stderr) and end with exit status 1 unless
    ``--skip-bad``: a script sees that the output is incomplete (and, with a register step,
    that no dataset version was registered: ``not_registered``). ``nothing_left``: every
    input was bad, so --skip-bad would not make it a success either (the caller says so)."""
    if not bad:
        return
    err = _console(stderr=True)
    for b in bad:
        err.print(f"bad input file {b['file']}: {b['reason']}", soft_wrap=True, markup=False)
    from aistack.webdata.report import bad_files_count, bad_files_summary

    if skip_bad:
        err.print(f"{bad_files_count(len(bad), total)}; skipped (--skip-bad)")
        return
    if not_registered:
        err.print(
            f"{bad_files_summary(bad, total)}, but the dataset was NOT registered (it is "
            "incomplete). Exit status "
            f"{EXIT_BAD_FILES}; run again with --skip-bad to register it as it is (the run "
            "resumes, nothing is read again)"
        )
    elif nothing_left:
        err.print(f"{bad_files_summary(bad, total)}. Exit status {EXIT_BAD_FILES}")
        return
    else:
        err.print(
            f"{bad_files_summary(bad, total)}. Exit status {EXIT_BAD_FILES}; --skip-bad "
            "accepts this (exit 0)"
        )
    raise typer.Exit(EXIT_BAD_FILES)


def _report_unreadable(report: dict[str, Any]) -> None:
    """One line on stderr when records were skipped (unreadable or cut short): how many, in
    how many files, and where the report lists them. (Damaged files are named by
    _report_bad.)"""
    skipped = [u for u in report.get("unreadable") or [] if u.get("kind") != "file"]
    if not skipped:
        return
    cut = sum(1 for u in skipped if u.get("kind") == "truncated")
    files = len({u.get("file") for u in skipped})
    out = report.get("run", {}).get("output", "the output folder")
    what = _plural(len(skipped), "record") + " could not be read"
    if cut:
        what += f" ({cut:,} of them truncated by the end of the file)"
    status = (
        "the files that end inside a record are bad input files (below)"
        if cut
        else "skipped records do not change the exit status"
    )
    _console(stderr=True).print(
        f"{what}, in {_plural(files, 'file')}; skipped. Each is listed in {out}/report.txt "
        f'and under "unreadable" in {out}/report.json; {status}',
        soft_wrap=True,
        markup=False,
    )


@app.command(cls=_Command)
def extract(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="PATH",
        help="HTML files (.html, .htm, .xhtml, plain or .gz) or directories of them; WARC, "
        "ARC and WET files go through `aistack webdata run`",
    ),
    mode: str = typer.Option(
        "quality", "--mode", help="quality (trafilatura) or fast (resiliparse)"
    ),
    out: Path | None = typer.Option(None, "--out", help="write JSON lines here (default: stdout)"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON summary (with --out)"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=_SKIP_BAD_HELP),
) -> None:
    """Extract the main text of HTML files: one JSON line {path, text, lang, lang_score} each.

    Only HTML is read here: web archives (WARC, ARC, WET) go through a pipeline, `aistack webdata run`. In a directory, the other files are skipped and counted (stderr, and "ignored_files" in the --json summary); a web archive named directly is a bad file.

    A file that cannot be read (e.g. a damaged .gz) does not stop the others: each bad file is named with the reason (stderr, and "bad_files" in the --json summary), the rest is written, and the exit status is 1 unless --skip-bad. When nothing was extracted the exit status is not 0: 2 when no HTML file was found, 1 when every one was bad (also with --skip-bad)."""
    from aistack.webdata.extract import ARCHIVE_HINT, MODES, extract_files, is_archive_name

    if mode not in MODES:
        raise ValidationError(
            f"--mode must be one of {', '.join(MODES)}, got {mode!r}",
            hint="use --mode quality or --mode fast",
        )
    for p in paths:
        if not p.exists():
            raise ValidationError(
                f"path {str(p)!r} does not exist", hint="pass HTML files or directories"
            )
    tmp: Path | None = None
    if out:
        if out.is_dir():
            raise ValidationError(
                f"--out: {out} is a folder", hint="pass a file name, e.g. --out texts.jsonl"
            )
        if not out.parent.is_dir():
            # a parent that is a file: no mkdir -p can make the folder
            blocker = next((p for p in out.parents if p.exists()), None)
            if blocker is not None and not blocker.is_dir():
                raise ValidationError(
                    f"--out: {blocker} is a file, not a folder, so {out} cannot be written",
                    hint="write somewhere else, e.g. --out texts.jsonl",
                )
            raise ValidationError(
                f"--out: folder {out.parent} does not exist",
                hint=f"create it first (mkdir -p {out.parent}) or write somewhere else",
            )
        if out.exists():  # the output would replace an input file: refuse, or it is lost
            from aistack.webdata.extract import iter_html_files

            for f in iter_html_files(list(paths)):
                with contextlib.suppress(OSError):
                    if f.samefile(out):
                        raise ValidationError(
                            f"--out: {out} is one of the input files: writing the JSON lines "
                            "there would replace it",
                            hint="write somewhere else, e.g. --out texts.jsonl",
                        )
        # written next to the target and renamed at the end: an error leaves FILE as it was
        tmp = out.with_name(out.name + ".tmp")
    n = chars = 0
    bad: list[dict[str, Any]] = []
    ignored: list[Path] = []

    def on_error(path: Path, reason: str) -> None:
        bad.append({"file": str(path), "reason": reason})

    try:
        fh = open(tmp, "w", encoding="utf-8") if tmp else sys.stdout  # noqa: SIM115
    except OSError as exc:
        raise ValidationError(
            f"--out: cannot write {out}: {exc.strerror or exc}", hint="write somewhere else"
        ) from None
    ok = False
    try:
        rows = extract_files(list(paths), mode=mode, on_error=on_error, ignored=ignored)  # type: ignore[arg-type]
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
            chars += len(str(row["text"]))
        found = n + len(bad)
        where = ", ".join(str(p) for p in paths)
        note = ""
        if ignored:
            why = (
                ARCHIVE_HINT
                if any(is_archive_name(f) for f in ignored)
                else "extract reads .html, .htm and .xhtml files and their .gz"
            )
            note = f" ({_plural(len(ignored), 'other file')} ignored: {why})"
        if found == 0:  # an error: FILE (--out) is left as it was
            raise ValidationError(
                f"{_plural(0, 'HTML file')} in {where}{note}",
                hint="pass .html, .htm or .xhtml files (or their .gz), or folders of them; "
                "for WARC/ARC/WET files write a pipeline (examples/webdata/pipeline.yaml) "
                "and run `aistack webdata run PIPELINE.yaml`",
            )
        if note:
            _console(stderr=True).print(
                f"{_plural(found, 'HTML file')} in {where}{note}", soft_wrap=True, markup=False
            )
        ok = True
    finally:
        if tmp and out:
            fh.close()
            if ok:
                tmp.replace(out)
            else:
                tmp.unlink(missing_ok=True)
    if out:
        summary = {
            "files": n,
            "characters": chars,
            "out": str(out),
            "mode": mode,
            "bad_files": bad,
            "ignored_files": len(ignored),
        }
        if as_json:
            sys.stdout.write(json.dumps(summary) + "\n")
        else:
            _console().print(f"extracted {n:,} files ({chars:,} characters) → {out}", markup=False)
    _report_bad(bad, n + len(bad), skip_bad, nothing_left=n == 0)
    if n == 0:  # every HTML file was bad: not a success, with --skip-bad or without
        _console(stderr=True).print(
            "nothing was extracted: "
            + (
                "the input file was bad"
                if len(bad) == 1
                else f"all {len(bad):,} input files were bad"
            )
        )
        raise typer.Exit(EXIT_BAD_FILES)


@app.command(cls=_Command)
def run(
    pipeline: Path = typer.Argument(
        ..., metavar="PIPELINE", help="pipeline YAML (see examples/webdata/pipeline.yaml)"
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        min=1,
        help="worker processes (default: from the YAML); with --executor ray, the CPUs of the "
        "private Ray instance (on a cluster from AISTACK_RAY_ADDRESS, Ray places the tasks)",
    ),
    executor: str | None = typer.Option(None, "--executor", help="local (processes) or ray"),
    fresh: bool = typer.Option(
        False,
        "--fresh",
        help="delete an earlier run's results in the output folder first (no resume); "
        "only what the pipeline wrote is deleted",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
    skip_bad: bool = typer.Option(False, "--skip-bad", help=_RUN_SKIP_BAD_HELP),
) -> None:
    """Run (or resume) a pipeline; writes shards, corpus, report.json and report.txt.

    A damaged or unreadable input file does not stop the run: it is listed with the reason (report "bad_files", report.txt, stderr), what could be read from it is kept, and the exit status is 1 unless --skip-bad. Without --skip-bad the register step registers nothing then (report "register_skipped"); running again with --skip-bad resumes the output and registers it.

    A record that cannot be read is skipped and the run goes on: one line on stderr counts them (and their files), and report.txt and report.json ("unreadable") list each with its offset. Skipped records alone leave the exit status 0; a record cut short by the end of its file makes that file bad (exit 1 unless --skip-bad), and is counted with the bytes read and dropped and the bytes missing (counts.truncated_records, truncated_bytes, truncated_missing_bytes).

    A run that keeps no document is an error (exit 2) when it has a tokenize or register step, and also without them when the input holds no HTML page or WET text at all: the message says what the records were or which filters dropped the pages, report.txt is written, and no dataset version is registered."""
    from aistack.webdata.spec import load_spec

    spec, base = load_spec(pipeline)
    with _resume_hint_on_ctrl_c(pipeline):
        _run(spec, base, workers, executor, fresh, as_json, skip_bad)


@contextlib.contextmanager
def _resume_hint_on_ctrl_c(pipeline: Path) -> Iterator[None]:
    """Ctrl-C during a run: say that it resumes (the tasks finished are kept), exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        _console(stderr=True).print(
            "interrupted: the tasks that finished are kept in the output folder; run "
            f"`aistack webdata run {pipeline}` again to resume (--fresh starts over)",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(130) from None


def _run(
    spec: Any,
    base: Path,
    workers: int | None,
    executor: str | None,
    fresh: bool,
    as_json: bool,
    skip_bad: bool,
) -> None:
    from aistack.webdata.pipeline import run_pipeline
    from aistack.webdata.report import tables

    if as_json:
        report = run_pipeline(
            spec, base=base, workers=workers, executor=executor, fresh=fresh, skip_bad=skip_bad
        )
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
        _report_problems(report, skip_bad)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    con = _console()
    prog = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeElapsedColumn(),
        console=con,
        transient=False,
    )
    ids: dict[str, Any] = {}

    def cb(stage: str, done: int, total: int) -> None:
        if not total:  # nothing to do in this stage (all resumed): no "0/0 files" bar
            return
        if not ids:  # (started with the first bar: a run with none prints no blank line)
            prog.start()
        if stage not in ids:
            ids[stage] = prog.add_task(esc(stage), total=total)  # (markup)
        prog.update(ids[stage], completed=done)

    try:
        report = run_pipeline(
            spec,
            base=base,
            workers=workers,
            executor=executor,
            fresh=fresh,
            progress=cb,
            skip_bad=skip_bad,
        )
    finally:
        if ids:
            prog.stop()
    # the report's tables and lines hold the pipeline's name, file names and reasons: text,
    # not markup (a bad file's "[Errno 2]" or a "[/]" in a name)
    text = make_console(markup=False)
    for t in tables(report):
        text.print(t)
    text.print(f"output: {report['run']['output']} (report.json, report.txt, dataset/)")
    if report.get("registered"):
        ref = report["registered"].get("ref", report["registered"])
        if report["run"]["resumed_tasks"].get("register"):
            text.print(f"dataset version {ref} (registered by an earlier run of this output)")
        else:
            text.print(f"registered dataset version {ref}")
    elif report.get("register_skipped"):
        text.print(f"dataset not registered: {report['register_skipped']['reason']}")
    _report_problems(report, skip_bad)


def _report_problems(report: dict[str, Any], skip_bad: bool) -> None:
    """On stderr, after a run: the records skipped, then the bad files (with the exit status
    that follows from them)."""
    _report_unreadable(report)
    _report_bad(
        report.get("bad_files") or [],
        report["counts"]["files"],
        skip_bad,
        not_registered="register_skipped" in report,
    )


# CrawlConfig's fields that `crawl` takes as options: its errors name the option instead
_CRAWL_OPTIONS = {
    "max_pages": "--max-pages",
    "max_depth": "--max-depth",
    "delay_s": "--delay",
    "concurrency": "--concurrency",
    "max_response_bytes": "--max-response-bytes",
    "timeout_s": "--timeout",
}
# ... and the hints of those whose crawler hint names the field, not the option
_CRAWL_HINTS = {
    "max_response_bytes": "e.g. --max-response-bytes 10M or 10485760 (10 MiB; K, M, G are "
    "binary: 1K = 1024 bytes)",
    "timeout_s": "e.g. --timeout 15: seconds for one whole request",
}
_PLAIN_COUNT = re.compile(r"[+-]?[0-9]+")
_ZERO_SIZE = re.compile(r"\s*0+\s*[KMG]?(?:I?B)?\s*", re.IGNORECASE)  # 0M, 0 KiB


def _response_bytes(text: str) -> int:
    """``--max-response-bytes``: a number of bytes (``10485760``), or one with a binary
    unit as ``bench allreduce --sizes`` reads them (``10M``, ``10MiB``, ``512K``, ``1G``;
    :func:`aistack.launch.allreduce.parse_size`). The crawler checks the range (>= 1)."""
    plain = text.strip()
    if plain[-1:] in ("b", "B") and _PLAIN_COUNT.fullmatch(plain[:-1].strip()):
        plain = plain[:-1].strip()  # ("512B": bytes, as the sizes with a unit read)
    if _PLAIN_COUNT.fullmatch(plain):
        return int(plain)
    from aistack.launch.allreduce import parse_size

    try:
        return parse_size(text, field="--max-response-bytes")
    except ValidationError:
        if _ZERO_SIZE.fullmatch(text):  # (parse_size refuses a size under a float32, 4 bytes:
            return 0  # 0M is 0 bytes, which the crawler refuses as it refuses 0)
        raise ValidationError(
            f"--max-response-bytes: cannot read {text!r} as a number of bytes",
            hint=_CRAWL_HINTS["max_response_bytes"],
            field="--max-response-bytes",
        ) from None


@app.command(cls=_Command)
def crawl(
    seeds: list[str] = typer.Argument(..., metavar="URL", help="seed URLs"),
    out: Path = typer.Option(..., "--out", help="folder for the WARC files"),
    max_pages: int = typer.Option(100, "--max-pages", min=1, help="stop after this many pages"),
    max_depth: int = typer.Option(2, "--max-depth", min=0, help="links followed from a seed"),
    delay: float = typer.Option(
        1.0, "--delay", min=0.0, help="seconds between requests to one host"
    ),
    allowed_domain: list[str] = typer.Option(
        [], "--allowed-domain", help="domains to stay in (default: the seeds' hosts)"
    ),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="hosts fetched in parallel"),
    max_response_bytes: str = typer.Option(
        "10M",
        "--max-response-bytes",
        metavar="BYTES",
        help="largest response kept whole, in bytes or with K/M/G (binary: 10M = 10 MiB); "
        "one over it is a fetch error, its first BYTES kept in the WARC (WARC-Truncated)",
    ),
    timeout: float = typer.Option(
        15.0,
        "--timeout",
        metavar="SECONDS",
        help="seconds for one whole request (lookup, connect, the whole answer); a response "
        "still coming then is cut off, what came kept in the WARC",
    ),
    user_agent: str | None = typer.Option(None, "--user-agent", help="User-Agent header"),
    ignore_robots: bool = typer.Option(
        False, "--ignore-robots", help="do not read robots.txt (only for your own sites)"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Crawl politely from SEED URLs into WARC files (request + response records)."""
    from aistack.webdata.crawler import CrawlConfig, allowed_hosts, in_scope
    from aistack.webdata.crawler import crawl as do_crawl

    kw: dict[str, Any] = {}
    if user_agent:
        kw["user_agent"] = user_agent
    try:  # CrawlConfig checks every field (seeds, counts, a finite delay, the user agent)
        cfg = CrawlConfig(
            seeds=list(seeds),
            out_dir=out,
            max_pages=max_pages,
            max_depth=max_depth,
            delay_s=delay,
            allowed_domains=list(allowed_domain),
            concurrency=concurrency,
            max_response_bytes=_response_bytes(max_response_bytes),
            timeout_s=timeout,
            obey_robots=not ignore_robots,
            **kw,
        )
    except ValidationError as exc:  # its field names, as this command's options
        option = _CRAWL_OPTIONS.get(str(exc.details.get("field")))
        prefix = f"crawl: {exc.details.get('field')} "
        if option is None or not exc.message.startswith(prefix):
            raise
        raise ValidationError(
            f"{option}: {exc.message.removeprefix(prefix)}",
            hint=_CRAWL_HINTS.get(str(exc.details.get("field")), exc.hint),
            field=option,
        ) from None
    err = _console(stderr=True)
    allowed = allowed_hosts(cfg)
    for seed in cfg.seeds:  # (CrawlConfig refused the crawl when every seed is outside)
        if not in_scope(seed, allowed):
            err.print(
                f"warning: seed {seed} is outside the allowed domains "
                f"({', '.join(sorted(allowed))}): it is not crawled (add its domain with "
                "--allowed-domain)",
                soft_wrap=True,
                markup=False,
            )
    summary = do_crawl(cfg)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        con = _console()
        con.print(
            f"fetched {summary['pages']:,} pages ({summary['bytes']:,} bytes) in "
            f"{summary['seconds']:.1f} s; {summary['robots_blocked']:,} URLs disallowed by "
            f"robots.txt, {summary['errors']:,} errors{_cut_counts(summary)}",
            markup=False,
        )
        con.print(f"WARC: {summary['warc']}", markup=False)
    _report_crawl_problems(summary)


def _cut_counts(summary: dict[str, Any]) -> str:
    """The fetch errors that still left a record in the WARC, cut short (``WARC-Truncated``),
    with what they mean, to follow the error count: '' when there are none."""
    parts = []
    if summary.get("oversized"):
        bound = summary.get("max_response_bytes")
        what = f"the {bound:,}-byte bound" if bound else "the size bound"
        n = summary["oversized"]
        parts.append(
            f"{n:,} of them oversized ({'a response' if n == 1 else 'responses'} over {what}, "
            "kept cut at it in the WARC: WARC-Truncated: length)"
        )
    if summary.get("timed_out"):
        t = summary.get("timeout_s")
        what = f"the {t} s request timeout" if t else "the request timeout"
        n = summary["timed_out"]
        parts.append(
            f"{n:,} of them timed out ({'a response' if n == 1 else 'responses'} cut off at "
            f"{what}, kept as it came in the WARC: WARC-Truncated: time)"
        )
    return "".join(f", {p}" for p in parts)


def _report_crawl_problems(summary: dict[str, Any], shown: int = 5) -> None:
    """On stderr: the fetch errors (the first ``shown``), the hosts whose robots.txt failed
    (its URLs count as disallowed) or was lost in redirects (allowed, RFC 9309). When no
    complete page was fetched: exit status 1 if nothing was kept either, every request having
    failed (a host that does not answer is not "disallowed by robots.txt"); a crawl whose
    responses were all cut short (over the size bound, or cut off at the timeout) kept them
    in the WARC, readable and extracted, as Heritrix and Common Crawl keep a truncated
    capture, so it exits 0 and says so."""
    err = _console(stderr=True)
    failed = summary.get("failed") or []
    for f in failed[:shown]:
        err.print(f"fetch error: {f['url']}: {f['error']}", soft_wrap=True, markup=False)
    more = summary["errors"] - min(len(failed), shown)
    if more > 0:
        err.print(f"… and {_plural(more, 'more fetch error')} (--json lists up to 100)")
    for host, why in (summary.get("robots_unavailable") or {}).items():
        err.print(
            f"{host}: {why}; its URLs count as disallowed (RFC 9309: a robots.txt the server "
            "fails to give means disallow all)",
            soft_wrap=True,
            markup=False,
        )
    for host, why in (summary.get("robots_redirected") or {}).items():
        if why.startswith("robots.txt unavailable"):  # (a plain redirect is routine: --json)
            err.print(f"{host}: {why}", soft_wrap=True, markup=False)
    cut = summary.get("oversized", 0) + summary.get("timed_out", 0)
    if summary["pages"] == 0 and cut:
        how = []
        if summary.get("oversized"):
            how.append(f"{summary['oversized']:,} over the size bound")
        if summary.get("timed_out"):
            how.append(f"{summary['timed_out']:,} cut off at the timeout")
        others = summary["errors"] - cut
        err.print(
            f"no complete page was fetched: {_plural(cut, 'response')} "
            f"{'was' if cut == 1 else 'were'} cut short and kept in the WARC as "
            f"{'it' if cut == 1 else 'they'} came ({', '.join(how)}; WARC-Truncated records, "
            "readable and extracted)"
            + (f"; {_plural(others, 'other URL')} could not be fetched" if others > 0 else ""),
            soft_wrap=True,
            markup=False,
        )
    elif summary["pages"] == 0 and summary["errors"]:
        err.print(
            f"nothing was fetched: {_plural(summary['errors'], 'URL')} could not be fetched. "
            f"Exit status {EXIT_BAD_FILES}"
        )
        raise typer.Exit(EXIT_BAD_FILES)


@app.command("shard-info", cls=_Command)
def shard_info(
    path: Path = typer.Argument(..., metavar="PATH", help="a token shard (.bin)"),
    as_json: bool = typer.Option(False, "--json", help="print as JSON"),
) -> None:
    """Show a token shard's header: dtype, vocabulary, tokens, documents."""
    from aistack.webdata.shards import read_header

    h = read_header(path)  # a missing, unreadable or truncated file is a ValidationError
    h["bytes"] = path.stat().st_size
    if as_json:
        sys.stdout.write(json.dumps(h) + "\n")
        return
    _console().print(
        f"{path}: {h['num_tokens']:,} tokens in {h['num_docs']:,} documents, "
        f"uint{8 * h['width']} ids, vocabulary {h['vocab_size']:,} ids, {h['bytes']:,} bytes",
        soft_wrap=True,  # one line, also in a narrow terminal (a long path wrapped it)
        markup=False,
    )
