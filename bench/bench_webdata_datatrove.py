"""Side by side with datatrove (HuggingFace's FineWeb pipeline library), same run, same input.

Both pipelines: WARC → trafilatura (deduplicate off, favour_precision off, comments off) →
Gopher repetition → Gopher quality → C4 → FineWeb filters → PII masking → MinHash dedup with
FineWeb's parameters (word 5-grams, 14 buckets × 8 hashes). aistack's Gopher quality runs
with ``alpha_denominator: tokens``, datatrove's rule (≥ 80 % of all tokens, punctuation
included, hold a letter), not aistack's default ``words`` (the paper's: of the words,
punctuation left out, which keeps more prose pages), so both sides apply the same rule; the
title and the JSON (``aistack_gopher_alpha_denominator``) say so. Language ID and tokenization are
left out on both sides (datatrove's language filter downloads a fastText model; its
tokenizer step wants a hub tokenizer). datatrove reads the WARC through the same aistack
reader (it needs warcio, which is not installed), so the comparison is extraction + filters +
dedup. datatrove runs trafilatura in a sandbox process with a per-page timeout (default 1
s; raised to 60 s here so that no page is lost to it). datatrove's English word/sentence splitting needs spaCy (``pip install spacy``; no
model download: it uses ``spacy.blank``) and its MinHash needs ``xxhash``.

Drop decisions are compared document by document (keyed by URL and occurrence: a few sample
pages share a URL): after the filters and after
dedup. aistack's MinHash default checks LSH candidates by exact Jaccard ≥ 0.8 and keeps
greedily (``verify: true``); datatrove's MinHash, like FineWeb, drops every connected
component of LSH candidates but one. So the dedup decisions are shown three ways: aistack's
default (timed), aistack's ``verify: false`` (FineWeb-faithful, the same stage-1 signatures
re-clustered after the run, not timed) and datatrove, and each is scored against the exact
Jaccard of the kept documents' word 5-gram sets
(``aistack.webdata.evaluation.dedup_decision_quality``: a drop is justified when the dropped
document has J ≥ 0.8 with a kept one; a kept document is missed when it has J ≥ 0.8 with an
earlier kept one). The texts after the filters are not byte-identical for pages with IP
addresses (``texts_differing_after_filters``): datatrove's PIIFormatter replaces each IP by a
random one, aistack's by a fixed one.

    .venv/bin/python bench/bench_webdata_datatrove.py [--quick] [--docs N] [--workers N]

Goal (not asserted): ≥ 1.5× datatrove's end-to-end throughput with identical or better drop
decisions.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_datatrove, report  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "warc" / "samples"

# Gopher quality's ≥ 80 % alphabetic rule as datatrove's GopherQualityFilter applies it (a
# share of all tokens); aistack's default is "words" (the paper's rule)
ALPHA_DENOMINATOR = "tokens"

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


def _rows(folder: Path) -> list[tuple[str, str, str]]:
    """(id, url, text) of a datatrove JsonlWriter output folder, in task order."""
    out = []
    for p in sorted(glob.glob(str(folder / "*.jsonl.gz"))):
        with gzip.open(p, "rt") as f:
            for line in f:
                r = json.loads(line)
                out.append((r["id"], r["metadata"]["url"], r["text"]))
    return out


def _keyed(
    filtered: list[tuple[str, str, str]], final_ids: set[str]
) -> tuple[dict[str, str], set[str]]:
    """Documents keyed by ``url#n`` (the n-th page with that URL after the filters, in input
    order: a few sample pages share a URL) → text, and the keys kept after dedup."""
    seen: dict[str, int] = {}
    texts: dict[str, str] = {}
    final = set()
    for doc_id, url, text in filtered:
        key = f"{url}#{seen.get(url, 0)}"
        seen[url] = seen.get(url, 0) + 1
        texts[key] = text
        if doc_id in final_ids:
            final.add(key)
    return texts, final


def run_datatrove(
    files: list[str], tmp: Path, workers: int
) -> tuple[float, float, dict[str, str], set[str]]:
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
    texts, final = _keyed(_rows(d / "filtered"), {r[0] for r in _rows(d / "final")})
    return wall, meter.seconds, texts, final


def run_aistack(
    files: list[str], tmp: Path, workers: int
) -> tuple[float, float, dict[str, str], set[str], set[str]]:
    """Timed run with aistack's defaults but Gopher quality's alpha rule, which is set to
    datatrove's (:data:`ALPHA_DENOMINATOR`); returns (wall, CPU, url → text after the filters,
    final URLs, final URLs with ``verify: false`` on the same signatures)."""
    import numpy as np

    from aistack.webdata.dedup import MinHashConfig, minhash_dedup
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
                {"gopher_quality": {"alpha_denominator": ALPHA_DENOMINATOR}},
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
    stage1 = sorted((out / "stage1").glob("*.jsonl.gz"))
    rows = [(r["id"], r["url"], r["text"]) for p in stage1 for r in read_jsonl_gz(p)]
    final_ids = {
        r["id"] for p in sorted((out / "corpus").glob("*.jsonl.gz")) for r in read_jsonl_gz(p)
    }
    filtered, final = _keyed(rows, final_ids)
    sigs = np.concatenate([np.load(p.with_suffix("").with_suffix(".npz"))["sigs"] for p in stage1])
    off = minhash_dedup(sigs, MinHashConfig(verify=False)).removed
    _, final_unverified = _keyed(rows, {r[0] for r, rm in zip(rows, off, strict=True) if not rm})
    return wall, meter.seconds, filtered, final, final_unverified


def score_dedup(
    texts: dict[str, str], kept: set[str], order: list[str], threshold: float = 0.8
) -> dict[str, float | int]:
    """Decision quality of one system's dedup on its own documents after the filters
    (``texts``), against exact Jaccard of normalised word 5-gram sets. Documents with the
    same set form one group; Jaccard is computed between all pairs of distinct groups."""
    from itertools import combinations

    from aistack.webdata.dedup import normalize
    from aistack.webdata.evaluation import dedup_decision_quality

    urls = [u for u in order if u in texts] + sorted(set(texts) - set(order))
    group_of: dict[frozenset[tuple[str, ...]], int] = {}
    groups = []
    for u in urls:
        w = normalize(texts[u]).split()
        grams = (
            frozenset(tuple(w[i : i + 5]) for i in range(len(w) - 4))
            if len(w) >= 5
            else frozenset([tuple(w)])
        )
        groups.append(group_of.setdefault(grams, len(group_of)))
    sets = list(group_of)
    similar = [
        (a, b)
        for a, b in combinations(range(len(sets)), 2)
        if min(len(sets[a]), len(sets[b])) >= threshold * max(len(sets[a]), len(sets[b]))
        and len(sets[a] & sets[b]) >= threshold * len(sets[a] | sets[b])
    ]
    q = dedup_decision_quality(groups, similar, [u not in kept for u in urls])
    return {**q, "distinct_texts": len(sets), "similar_text_pairs": len(similar)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="400 documents")
    ap.add_argument("--docs", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    quiet_datatrove()
    from aistack.webdata.evaluation import repeat_corpus

    n_docs = args.docs or (400 if args.quick else 10_000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-webdata-dt-"))
    sources = sorted(
        str(p) for p in SAMPLES.glob("*.warc.gz") if ".wat." not in p.name and ".wet." not in p.name
    )
    files = repeat_corpus(sources, str(tmp / "in"), n_docs=n_docs, n_files=8)

    a_wall, a_cpu, a_docs, a_final, a_final_off = run_aistack(files, tmp, args.workers)
    d_wall, d_cpu, d_docs, d_final = run_datatrove(files, tmp, args.workers)
    a_filt, d_filt = set(a_docs), set(d_docs)

    def agree(a: set[str], b: set[str]) -> float:
        return len(a & b) / max(1, len(a | b))

    order = list(a_docs)
    q_default = score_dedup(a_docs, a_final, order)
    q_off = score_dedup(a_docs, a_final_off, order)
    q_dt = score_dedup(d_docs, d_final, order)
    rows = [
        [
            "aistack (MinHash verify: true, default)",
            round(a_wall, 1),
            round(a_cpu, 1),
            round(n_docs / a_cpu, 2),
            len(a_filt),
            len(a_final),
            f"{q_default['dropped_justified']}/{q_default['dropped']}",
            q_default["kept_missed"],
        ],
        [
            "aistack, MinHash verify: false (same run's signatures)",
            "-",
            "-",
            "-",
            len(a_filt),
            len(a_final_off),
            f"{q_off['dropped_justified']}/{q_off['dropped']}",
            q_off["kept_missed"],
        ],
        [
            "datatrove 0.10.1",
            round(d_wall, 1),
            round(d_cpu, 1),
            round(n_docs / d_cpu, 2),
            len(d_filt),
            len(d_final),
            f"{q_dt['dropped_justified']}/{q_dt['dropped']}",
            q_dt["kept_missed"],
        ],
    ]
    text_diff = sum(a_docs[u] != d_docs[u] for u in a_filt & d_filt)
    extra = {
        "docs": n_docs,
        "workers": args.workers,
        # aistack's Gopher quality ran with datatrove's alpha rule, not its default (words)
        "aistack_gopher_alpha_denominator": ALPHA_DENOMINATOR,
        "speedup_cpu": d_cpu / a_cpu,
        "speedup_wall": d_wall / a_wall,
        "filter_agreement_jaccard": agree(a_filt, d_filt),
        "kept_by_aistack_only": sorted(a_filt - d_filt)[:50],
        "kept_by_datatrove_only": sorted(d_filt - a_filt)[:50],
        "n_kept_by_aistack_only": len(a_filt - d_filt),
        "n_kept_by_datatrove_only": len(d_filt - a_filt),
        "texts_differing_after_filters": text_diff,
        "final_agreement_jaccard": agree(a_final, d_final),
        "final_agreement_jaccard_verify_false": agree(a_final_off, d_final),
        "dedup_quality_exact_j08": {
            "aistack_default": q_default,
            "aistack_verify_false": q_off,
            "datatrove": q_dt,
        },
    }
    report(
        "webdata_datatrove",
        f"aistack vs datatrove, same pipeline (aistack's Gopher quality with datatrove's "
        f"alpha rule, alpha_denominator: {ALPHA_DENOMINATOR}), {n_docs:,} HTML docs, "
        f"{args.workers} workers: "
        f"{d_cpu / a_cpu:.2f}× less CPU per doc; kept sets after filters agree on "
        f"{100 * agree(a_filt, d_filt):.1f} %, after dedup on {100 * agree(a_final, d_final):.1f} %"
        " (Jaccard of URL sets)",
        [
            "system",
            "wall s",
            "CPU s (all processes)",
            "docs per CPU-second (docs/s per core)",
            "docs kept after filters",
            "docs after MinHash dedup",
            "drops with a kept exact J ≥ 0.8 duplicate / drops",
            "kept docs with J ≥ 0.8 to an earlier kept doc",
        ],
        rows,
        extra,
    )
    shutil.rmtree(tmp, ignore_errors=True)  # ~130 MB for 10,000 documents


if __name__ == "__main__":
    main()
