"""Web data pipeline throughput: docs/s per core for each step and end to end, per mode.

The shared WARC samples (42 HTML pages + 1 WET record) are written again and again into 8
WARC files until the corpus has --docs pages (default 10,000; --quick: 600). Each extraction
mode runs the full pipeline (extract → language → Gopher repetition → Gopher quality → C4 →
FineWeb → PII → exact + MinHash dedup → BPE tokenizer → shards) on --workers processes.

    .venv/bin/python bench/bench_webdata_pipeline.py [--quick] [--docs N] [--workers N]

Gopher quality runs with its default alphabetic rule, ``alpha_denominator: words`` (the
paper's); the JSON records it and the pipeline's ``code_version``.

Goals (not asserted): the per-core rates are what a sizing of a web-data job uses; dedup and
tokenization must not be the bottleneck next to extraction.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "warc" / "samples"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="600 documents (about a minute)")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--modes", default="fast,quality")
    args = ap.parse_args()
    if not SAMPLES.is_dir():
        sys.exit(f"shared data not found at {SAMPLES}")
    from aistack.webdata.evaluation import CpuMeter, repeat_corpus
    from aistack.webdata.pipeline import run_pipeline
    from aistack.webdata.spec import parse_spec

    n_docs = args.docs or (600 if args.quick else 10_000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-webdata-"))
    sources = sorted(
        str(p) for p in SAMPLES.glob("*.warc.gz") if ".wat." not in p.name and ".wet." not in p.name
    )
    files = repeat_corpus(sources, str(tmp / "in"), n_docs=n_docs, n_files=8)
    rows = []
    from aistack.webdata.filters import GopherQualityParams
    from aistack.webdata.pipeline import code_version

    extra: dict[str, object] = {
        "docs": n_docs,
        "workers": args.workers,
        "files": len(files),
        # the pipeline code the counts come from (webdata.2: gopher_quality's alpha rule
        # counts words, the paper's, which keeps more pages than datatrove's all tokens)
        "code_version": code_version(),
        "gopher_alpha_denominator": GopherQualityParams().alpha_denominator,
    }
    for mode in args.modes.split(","):
        spec = parse_spec(
            {
                "name": f"bench-{mode}",
                "input": {"paths": files},
                "output": str(tmp / f"out-{mode}"),
                "steps": [
                    {"extract": {"mode": mode}},
                    "language",
                    "gopher_repetition",
                    "gopher_quality",
                    "c4",
                    "fineweb",
                    "pii",
                    "dedup",
                    {"tokenize": {"vocab_size": 8192}},
                ],
            }
        )
        t0 = time.perf_counter()
        with CpuMeter() as meter:
            rep = run_pipeline(spec, workers=args.workers)
        wall = time.perf_counter() - t0
        timing = rep["timing"]
        for name, s in timing["steps"].items():
            rows.append(
                [
                    mode,
                    name,
                    s["docs"],
                    round(s["cpu_seconds"], 2),
                    round(s["docs_per_s_per_core"], 1) if s["docs_per_s_per_core"] else None,
                ]
            )
        dedup_wall = timing["wall_seconds"]["dedup"]
        rows.append(
            [
                mode,
                "dedup clustering (driver)",
                rep["counts"]["steps"].get("dedup", {}).get("in"),
                round(dedup_wall, 2),
                None,
            ]
        )
        rows.append(
            [
                mode,
                "tokenizer training (driver)",
                None,
                round(timing["wall_seconds"]["tokenizer_train"], 2),
                None,
            ]
        )
        e2e = n_docs / wall
        rows.append(
            [
                mode,
                f"END TO END wall ({args.workers} workers, shared cores)",
                n_docs,
                round(wall, 2),
                round(e2e / args.workers, 1),
            ]
        )
        rows.append(
            [
                mode,
                "END TO END CPU (all processes, incl. start-up)",
                n_docs,
                round(meter.seconds, 2),
                round(n_docs / meter.seconds, 1),
            ]
        )
        extra[f"{mode}_end_to_end_docs_per_s"] = e2e
        extra[f"{mode}_end_to_end_cpu_seconds"] = meter.seconds
        extra[f"{mode}_end_to_end_docs_per_cpu_second"] = n_docs / meter.seconds
        extra[f"{mode}_counts"] = rep["counts"]
    report(
        "webdata_pipeline",
        f"webdata pipeline, {n_docs:,} HTML docs, {args.workers} workers",
        ["mode", "step", "docs", "seconds (cpu for steps, wall otherwise)", "docs/s per core"],
        rows,
        extra,
    )


if __name__ == "__main__":
    main()
