"""The run report as readable tables (rich), for the CLI and for ``report.txt``.

Every title and cell is a rich ``Text``, never markup: file names, reasons and filter keys
come from the input (a page's URL, a file named ``[bold]x``), and a table printed by any
rich console shows them as they are ("[/]" was a MarkupError, "[red]" turned red)."""

from __future__ import annotations

import io
from typing import Any


def tables(report: dict[str, Any]) -> list[Any]:
    from rich.table import Table

    c = report["counts"]
    timing = report.get("timing", {})
    step_t = timing.get("steps", {})
    t = Table(title=_text(f"webdata run {report['name']}: documents per step"))
    for col in ("step", "docs in", "docs out", "dropped", "docs/s per core"):
        t.add_column(col, justify="left" if col == "step" else "right")
    texts = c.get("text_documents", 0)
    read_out = c["html_documents"] + texts
    _row(
        t,
        "read (records → HTML + WET)" if texts else "read (records → HTML pages)",
        f"{c['records']:,}",
        f"{read_out:,}",
        # the records that are no page (summary: "records skipped"; drops: read/empty_text)
        f"{c['records'] - read_out:,}" if "skipped_records" in c else "",
        _rate(step_t.get("read")),
    )
    text_row = (  # WET text records skip extract: langid's input is extract's output + these
        "WET texts (skip extract)",
        "",
        f"{texts:,}",
        "",
        "",
    )
    for name, s in c["steps"].items():
        if name == "read":
            continue
        if name == "langid" and texts:
            _row(t, *text_row)
            texts = 0
        _row(
            t,
            name,
            f"{s['in']:,}",
            f"{s['out']:,}",
            f"{s['in'] - s['out']:,}",
            _rate(step_t.get(name)),
        )
    if texts:
        _row(t, *text_row)
    _row(t, "output", "", f"{c['documents_out']:,} docs", "", "")

    d = Table(title=_text("drops per filter and reason"))
    d.add_column("filter/reason")
    d.add_column("docs", justify="right")
    dup = c.get("duplicates") or {}
    dropped = list(c["drops"].items())
    # (a dedup step's counts, 0 too: it ran; the other entries of duplicates are no documents)
    dropped += [(f"dedup/{k}", dup[k]) for k in ("exact_duplicates", "near_duplicates") if k in dup]
    for k, v in dropped:
        _row(d, k, f"{v:,}")
    if not dropped:  # (an empty table read as one that failed to fill)
        _row(d, "none: no document was dropped", "0")

    s = Table(title=_text("summary"))
    s.add_column("item")
    s.add_column("value", justify="right")
    _row(s, "input files", f"{c['files']:,}")
    for item, value in input_dataset_rows(report):
        _row(s, item, value)
    if "bad_files" in c:  # (absent in reports written before it was counted)
        _row(s, "bad input files (damaged, unreadable, cut short)", f"{c['bad_files']:,}")
    _row(s, "unreadable records", f"{c['unreadable_records']:,}")
    if "skipped_records" in c:  # (absent in reports written before they were counted)
        sk = c["skipped_records"]
        _row(
            s,
            "records skipped (not an HTML page or WET text)",
            (f"{sum(sk.values()):,} records: " + ", ".join(f"{k} {v:,}" for k, v in sk.items()))
            if sk
            else "0 records",
        )
    if (c.get("notes") or {}).get("extract/pruned_deep_nesting"):
        _row(
            s,
            "pages pruned below 256 nested elements (kept)",
            f"{c['notes']['extract/pruned_deep_nesting']:,}",
        )
    if (c.get("notes") or {}).get("extract/fast_mode_too_many_elements"):
        from aistack.webdata.extract import MAX_QUALITY_ELEMENTS

        _row(
            s,
            f"pages extracted in fast mode (over {MAX_QUALITY_ELEMENTS:,} elements)",
            f"{c['notes']['extract/fast_mode_too_many_elements']:,}",
        )
    if "truncated_records" in c:
        _row(s, "truncated records (file ends inside; dropped)", truncated_summary(c))
    # the most documents first, also for a report read back from report.json (sorted keys)
    top = sorted(c["languages"].items(), key=lambda kv: (-kv[1], kv[0]))[:8]
    langs = ", ".join(f"{k} {v:,}" for k, v in top)
    _row(s, "languages (docs)", langs or "-")
    _row(s, "PII masked", ", ".join(f"{k} {v:,}" for k, v in c["pii_masked"].items()) or "0")
    if "near_duplicate_clusters" in dup:
        _row(
            s,
            "near-duplicate clusters",
            f"{dup['near_duplicate_clusters']:,} clusters "
            f"({dup.get('minhash_pairs_checked', 0):,} candidate pairs checked)",
        )
    _row(s, "tokens", f"{c['tokens']:,} tokens")
    if "shards" in c and c.get("vocab_size"):
        _row(s, "token shards", f"{c['shards']:,} (input files that kept documents)")
    if c.get("vocab_size"):
        tok = report.get("tokenizer") or {}
        asked = tok.get("vocab_size_asked")
        why = ""
        if tok.get("trained") and asked and asked > c["vocab_size"]:
            # (the BPE trainer stops when no pair is left that occurs min_frequency times)
            why = (
                f"; {asked:,} asked: the kept text has no more pairs seen "
                f"{tok.get('min_frequency', 2):,} times or more to merge"
            )
        _row(s, "vocabulary", f"{c['vocab_size']:,} ids ({c['shard_dtype']}{why})")
    if "registered" in report:  # (only with a register step; report.txt is written after it)
        reg = report["registered"]
        skipped = report.get("register_skipped")
        if reg:
            ref = reg.get("ref") or f"{reg.get('name')} version {reg.get('version')}"
            _row(s, "registered", f"dataset version {ref}")
        elif skipped:
            _row(s, "registered", f"NO: {skipped['reason']}; {skipped['hint']}")
    for item, value in lineage_rows(report):
        _row(s, item, value)
    if report.get("recomputed"):  # (results of older code found in the output: not resumed)
        _row(s, "recomputed", str(report["recomputed"]["reason"]))
    if timing:
        w = timing["wall_seconds"]
        _row(s, "wall time", f"{w['total']:.2f} s")
        _row(s, "throughput (this run)", throughput(timing))
    out = [t, d, s]
    if report.get("bad_files"):
        b = Table(title=_text(bad_files_title(report)))
        for col in ("file", "records read", "reason"):
            b.add_column(
                col,
                justify="right" if col == "records read" else "left",
                no_wrap=col == "file",  # whole, so that a file name can be searched for
                overflow="fold",  # (never "…": a name cut short names no file)
            )
        for x in report["bad_files"]:
            _row(b, str(x["file"]), f"{x['records']:,}", str(x["reason"]))
        out.append(b)
    if report.get("unreadable"):
        n = len(report["unreadable"])
        files = any(x.get("kind") == "file" for x in report["unreadable"])
        title = "unreadable records" + (" and files" if files else "")
        u = Table(title=_text(title + (f" (first 50 of {n:,})" if n > 50 else "")))
        for col in ("file", "offset (bytes)", "reason"):
            u.add_column(col, overflow="fold")  # (a long path wraps, instead of "…")
        for x in report["unreadable"][:50]:
            _row(u, str(x["file"]), offset_text(x), str(x["reason"]))
        out.append(u)
    return out


def _text(value: object) -> Any:
    """``value`` as a rich ``Text``: shown as written, its "[...]" never read as markup."""
    from rich.text import Text

    return Text(str(value))


def _row(table: Any, *cells: object) -> None:
    """Add a row of literal cells (:func:`_text`) to ``table``."""
    table.add_row(*(_text(c) for c in cells))


def input_dataset_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows for report.json's ``input_datasets`` (one per version read: its files and
    how they were put in the output folder, linked or copied) and ``input_references`` (the
    reference that keeps them from ``aistack data rm``)."""
    rows = []
    for d in report.get("input_datasets") or []:
        n = int(d.get("files") or 0)
        how = str(d.get("materialized") or "")
        if "linked" in d or "copied" in d:
            how += f": {int(d.get('linked') or 0):,} linked, {int(d.get('copied') or 0):,} copied"
        rows.append((f"input dataset {d['ref']}", f"{n:,} file{'' if n == 1 else 's'} ({how})"))
    refs = report.get("input_references")
    if refs:
        rows.append(
            (
                "input datasets referenced by",
                f"{refs['by']} (`aistack data rm` keeps {', '.join(refs['versions'])}; "
                f"`aistack data unref` drops it)",
            )
        )
    return rows


def lineage_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows for report.json's ``lineage`` (a registered run's): its run node, the
    inputs recorded as its upstream nodes and those that could not be (with the first
    reason)."""
    lin = report.get("lineage")
    if not lin or not lin.get("run"):
        return []
    files = len(lin.get("inputs") or [])
    versions = [str(v["ref"]) for v in lin.get("datasets") or []]
    parts = [f"{files:,} input file{'' if files == 1 else 's'}"] if files or not versions else []
    if versions:
        parts.append(f"dataset {', '.join(versions)}")
    recorded = " and ".join(parts)
    if "edges_added" in lin:
        recorded += f" ({int(lin['edges_added']):,} new edges)"
    rows = [("lineage run", str(lin["run"])), ("lineage inputs recorded", recorded)]
    missing = lin.get("not_recorded") or []
    if missing:
        first = missing[0]
        rows.append(
            (
                "lineage inputs not recorded",
                f"{len(missing):,} (first: {first['file']}: {first['reason']})",
            )
        )
    return rows


def bad_files_title(report: dict[str, Any]) -> str:
    """The bad-files table's title: ``"bad input files: "`` and ``bad_files_summary``, which
    says the others were processed only where there were others."""
    bad = report["bad_files"]
    total = report["counts"].get("files") or len(report.get("files") or [])
    return f"bad input files: {bad_files_summary(bad, max(total, len(bad)))}"


def bad_files_count(n_bad: int, total: int) -> str:
    """``"2 of 5 input files were bad"``; ``"the only input file was bad"`` and ``"all 3 input
    files were bad"`` where no file was good."""
    if n_bad == total == 1:
        return "the only input file was bad"
    if n_bad == total:
        return f"all {n_bad:,} input files were bad"
    return f"{n_bad:,} of {total:,} input files were bad"


def bad_files_summary(bad: list[dict[str, Any]], total: int) -> str:
    """What happened to a run with bad input files (``bad``: the report's ``bad_files``): the
    others were processed, or, where every file was bad, what was read of them (a file cut
    short still gives the records before the cut)."""
    head = bad_files_count(len(bad), total)
    if len(bad) < total:
        return f"{head}; the others were processed and written"
    n = sum(int(b.get("records") or 0) for b in bad)
    if n:
        return (
            f"{head}; only the {n:,} record{'' if n == 1 else 's'} read before the damage "
            f"{'was' if n == 1 else 'were'} processed and written"
        )
    return f"{head}; nothing was read from {'it' if total == 1 else 'them'}, nothing processed"


def truncated_summary(c: dict[str, Any]) -> str:
    """'N (B bytes read and dropped; M bytes missing)': ``truncated_bytes`` are the bytes of
    the cut records the files hold, not the bytes lost past the end of the file."""
    n = c["truncated_records"]
    text = f"{n:,} ({c['truncated_bytes']:,} bytes read and dropped"
    if "truncated_missing_bytes" in c:  # (absent in reports written before it was counted)
        text += f"; {c['truncated_missing_bytes']:,} bytes missing"
        unknown = c.get("truncated_unknown_length") or 0
        if unknown:
            text += f", {unknown:,} of the records with no length (cut inside the header)"
    return text + ")"


def offset_text(x: dict[str, Any]) -> str:
    """An unreadable record's offset, saying where it counts from (``offset_in``)."""
    where = {
        "file": "in the file",
        "decompressed": "in the decompressed stream",
    }.get(str(x.get("offset_in")), "")
    return f"{x['offset']:,} ({where})" if where else f"{x['offset']:,}"


def throughput(timing: dict[str, Any]) -> str:
    """This run's rates; a run that resumed every task says so instead (a rate over work an
    earlier run did, divided by a ~0 wall time, would be nonsense)."""
    run = timing.get("this_run") or {}
    if timing.get("nothing_to_do"):
        n = run.get("resumed_tasks", 0)
        return f"nothing to do: all {n:,} tasks resumed" if n else "nothing to do"
    parts = []
    if timing.get("docs_per_s"):
        parts.append(f"{timing['docs_per_s']:,.1f} docs/s")
    if timing.get("tokens_per_s"):
        parts.append(f"{timing['tokens_per_s']:,.0f} tokens/s")
    if not parts:
        total = (timing.get("wall_seconds") or {}).get("total", 0.0)
        units = {"documents": "docs", "tokens": "tokens"}
        work = [f"{run[k]:,} {u}" for k, u in units.items() if run.get(k)]
        if not work:
            return "-"
        return f"{', '.join(work)} in {total:.2f} s (too short for a rate)"
    done = [f"{run[k]:,} {k.split('_')[0]}" for k in ("process_tasks", "encode_tasks") if k in run]
    extra = f" (tasks run: {', '.join(done)})" if run.get("resumed_tasks") and done else ""
    return ", ".join(parts) + extra


def _rate(s: dict[str, Any] | None) -> str:
    if not s or not s.get("docs_per_s_per_core"):
        return ""
    return f"{s['docs_per_s_per_core']:,.1f} docs/s"


def render_text(report: dict[str, Any]) -> str:
    from rich.console import Console

    buf = io.StringIO()
    con = Console(file=buf, width=120, color_system=None, force_terminal=False)
    for t in tables(report):
        con.print(t)
    return buf.getvalue()
