"""Side by side with datatrove (HuggingFace's FineWeb pipeline library), same run, same input.

Both pipelines: WARC → trafilatura (deduplicate off, favour_precision off, comments off) →
Gopher repetition → Gopher quality → C4 → FineWeb filters → PII masking → MinHash dedup with
FineWeb's parameters (word 5-grams, 14 buckets × 8 hashes). Language ID and tokenization are
left out on both sides (datatrove's language filter downloads a fastText model; its
tokenizer step wants a hub tokenizer). datatrove reads the WARC through the same aistack
reader (it needs warcio, which is not installed), so the comparison is extraction + filters +
dedup. datatrove runs trafilatura in a sandbox process with a per-page timeout (default 1
s; raised to 60 s here so that no page is lost to it). datatrove's English word/sentence splitting needs spaCy (``pip install spacy``; no
model download: it uses ``spacy.blank``) and its MinHash needs ``xxhash``.

Drop decisions are compared document by document (keyed by URL): after the filters and after
dedup.

    .venv/bin/python bench/bench_webdata_datatrove.py [--quick] [--docs N] [--workers N]

Goal (not asserted): ≥ 1.5× datatrove's end-to-end throughput with identical or better drop
decisions.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "warc" / "samples"

try:
    from datatrove.pipeline.base import PipelineStep
except ImportError:  # pragma: no cover
    PipelineStep = object  # type: ignore[assignment,misc]


class AistackWarcReader(PipelineStep):  # type: ignore[misc,valid-type]
    """datatrove step: HTML pages of one WARC file per task, read with aistack's reader."""

    name = "aistack WARC reader"
    type = "📖 - READER"

    def __init__(self, files: list[str]) -> None:
        super().__init__()
        self.files = files

    def run(self, data, rank: int = 0, world_size: int = 1):  # noqa: ANN001, ANN201
        from datatrove.data import Document

        from aistack.webdata.extract import decode_html
        from aistack.webdata.readers import iter_html

        for i, f in enumerate(self.files):
            if i % world_size != rank:
                continue
            for j, rec in enumerate(iter_html(f)):
                html = decode_html(rec.body, rec.http_headers.get("content-type"))
                self.stat_update("documents")
                yield Document(text=html, id=f"{i:05d}/{j}", metadata={"url": rec.url})


def _urls(folder: Path) -> set[str]:
    out = set()
    for p in glob.glob(str(folder / "**" / "*.jsonl.gz"), recursive=True):
        with gzip.open(p, "rt") as f:
            for line in f:
                out.add(json.loads(line)["metadata"]["url"])
    return out


def run_datatrove(
    files: list[str], tmp: Path, workers: int
) -> tuple[float, float, set[str], set[str]]:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
    from datatrove.pipeline.formatters import PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.hashing import HashConfig

    # 5-grams, 14 buckets × 8 hashes; sha1 shingle hashing because datatrove 0.10.1's xxhash
    # path passes str, which xxhash 4.x rejects ("Strings must be encoded before hashing")
    cfg = MinhashConfig(hash_config=HashConfig(hash_fc="sha1", precision=64))
    n = len(files)
    d = tmp / "datatrove"
    from aistack.webdata.evaluation import CpuMeter

    t0 = time.perf_counter()
    meter = CpuMeter().__enter__()
    LocalPipelineExecutor(
        pipeline=[
            AistackWarcReader(files),
            # datatrove's default 1 s per-page timeout drops most pages on loaded shared cores
            Trafilatura(favour_precision=False, deduplicate=False, timeout=60),
            GopherRepetitionFilter(),
            GopherQualityFilter(),
            C4QualityFilter(),
            FineWebQualityFilter(),
            PIIFormatter(),
            JsonlWriter(str(d / "filtered")),
        ],
        tasks=n,
        workers=workers,
        logging_dir=str(d / "logs1"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(d / "filtered")),
            MinhashDedupSignature(str(d / "sigs"), config=cfg),
        ],
        tasks=n,
        workers=workers,
        logging_dir=str(d / "logs2"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupBuckets(str(d / "sigs"), str(d / "buckets"), config=cfg)],
        tasks=cfg.num_buckets,
        workers=workers,
        logging_dir=str(d / "logs3"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[MinhashDedupCluster(str(d / "buckets"), str(d / "remove"), config=cfg)],
        tasks=1,
        workers=1,
        logging_dir=str(d / "logs4"),
    ).run()
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(d / "filtered")),
            MinhashDedupFilter(str(d / "remove")),
            JsonlWriter(str(d / "final")),
        ],
        tasks=n,
        workers=workers,
        logging_dir=str(d / "logs5"),
    ).run()
    meter.__exit__()
    wall = time.perf_counter() - t0
    return wall, meter.seconds, _urls(d / "filtered"), _urls(d / "final")


def run_aistack(
    files: list[str], tmp: Path, workers: int
) -> tuple[float, float, set[str], set[str]]:
    from aistack.webdata.pipeline import read_jsonl_gz, run_pipeline
    from aistack.webdata.spec import parse_spec

    out = tmp / "aistack"
    spec = parse_spec(
        {
            "input": {"paths": files},
            "output": str(out),
            "steps": [
                {"extract": {"mode": "quality"}},
                "gopher_repetition",
                "gopher_quality",
                "c4",
                "fineweb",
                "pii",
                {"dedup": {"exact": False}},
            ],
        }
    )
    from aistack.webdata.evaluation import CpuMeter

    t0 = time.perf_counter()
    with CpuMeter() as meter:
        run_pipeline(spec, workers=workers)
    wall = time.perf_counter() - t0
    filtered = {
        r["url"] for p in sorted((out / "stage1").glob("*.jsonl.gz")) for r in read_jsonl_gz(p)
    }
    final = {
        r["url"] for p in sorted((out / "corpus").glob("*.jsonl.gz")) for r in read_jsonl_gz(p)
    }
    return wall, meter.seconds, filtered, final


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="400 documents")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    logging.getLogger("datatrove").setLevel(logging.WARNING)
    try:
        from loguru import logger

        logger.remove()
        logger.add(sys.stderr, level="WARNING")
    except ImportError:
        pass
    from aistack.webdata.evaluation import repeat_corpus

    n_docs = args.docs or (400 if args.quick else 10_000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-webdata-dt-"))
    sources = sorted(
        str(p) for p in SAMPLES.glob("*.warc.gz") if ".wat." not in p.name and ".wet." not in p.name
    )
    files = repeat_corpus(sources, str(tmp / "in"), n_docs=n_docs, n_files=8)

    a_wall, a_cpu, a_filt, a_final = run_aistack(files, tmp, args.workers)
    d_wall, d_cpu, d_filt, d_final = run_datatrove(files, tmp, args.workers)

    def agree(a: set[str], b: set[str]) -> float:
        return len(a & b) / max(1, len(a | b))

    rows = [
        [
            "aistack",
            round(a_wall, 1),
            round(a_cpu, 1),
            round(n_docs / a_cpu, 2),
            len(a_filt),
            len(a_final),
        ],
        [
            "datatrove 0.10.1",
            round(d_wall, 1),
            round(d_cpu, 1),
            round(n_docs / d_cpu, 2),
            len(d_filt),
            len(d_final),
        ],
    ]
    extra = {
        "docs": n_docs,
        "workers": args.workers,
        "speedup_cpu": d_cpu / a_cpu,
        "speedup_wall": d_wall / a_wall,
        "filter_agreement_jaccard": agree(a_filt, d_filt),
        "kept_by_aistack_only": sorted(a_filt - d_filt)[:50],
        "kept_by_datatrove_only": sorted(d_filt - a_filt)[:50],
        "n_kept_by_aistack_only": len(a_filt - d_filt),
        "n_kept_by_datatrove_only": len(d_filt - a_filt),
        "final_agreement_jaccard": agree(a_final, d_final),
    }
    report(
        "webdata_datatrove",
        f"aistack vs datatrove, same pipeline, {n_docs:,} HTML docs, {args.workers} workers: "
        f"{d_cpu / a_cpu:.2f}× less CPU per doc; kept sets after filters agree on "
        f"{100 * agree(a_filt, d_filt):.1f} % (Jaccard of URL sets)",
        [
            "system",
            "wall s",
            "CPU s (all processes)",
            "docs per CPU-second (docs/s per core)",
            "docs kept after filters",
            "docs after MinHash dedup",
        ],
        rows,
        extra,
    )


if __name__ == "__main__":
    main()
