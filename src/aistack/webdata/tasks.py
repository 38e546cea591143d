"""The per-file tasks of a pipeline run, which run on the workers (a local process or a Ray
task): :func:`process_file` (stage 1: read → extract → language → filters → pii, and the
dedup hashes) and :func:`encode_file` (the corpus file and the token shard of one input file).
Each writes its results atomically and its ``.tasks/*.done`` record; see
:mod:`aistack.webdata.pipeline` for the stages around them."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aistack.webdata.lineage import file_sha256
from aistack.webdata.spec import PipelineSpec
from aistack.webdata.taskfiles import atomic_write as _atomic_write
from aistack.webdata.taskfiles import write_done as _done

log = logging.getLogger(__name__)


def _jsonl_gz_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    return buf.getvalue()


def read_jsonl_gz(path: str | Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@dataclass(kw_only=True)
class _StepStat:
    name: str
    docs_in: int = 0
    docs_out: int = 0
    seconds: float = 0.0


def input_stat(path: str | Path) -> dict[str, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # gone since the listing: the reader reports it as a bad file
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def process_file(
    spec_json: str, task: int, path: str, out_dir: str, hash_input: bool = True
) -> dict[str, Any]:
    """Stage 1 for one input file (runs in a worker process or a Ray task). ``hash_input``:
    take the file's SHA-256 (its lineage id, recorded when the output is registered); a file of
    an input dataset version needs none (the version is its lineage node, and its manifest
    already holds the file's hash), nor does a run that registers nothing."""
    from aistack.webdata.dedup import MinHashConfig, MinHasher, exact_hash
    from aistack.webdata.extract import decode_html, detect_language, extract_page
    from aistack.webdata.filters import FILTERS, Document, apply
    from aistack.webdata.readers import ArchiveReader

    in_stat = input_stat(path)  # before reading: a file changed while read is seen later
    # its lineage id (and the reader then reads it from the cache)
    digest = file_sha256(path) if hash_input else None
    spec = PipelineSpec.model_validate_json(spec_json)
    steps = spec.parsed_steps()
    out = Path(out_dir)
    stats: dict[str, _StepStat] = {}
    drops: Counter[str] = Counter()
    # pages kept, with something done to them on the way: "extract/pruned_deep_nesting"
    notes: Counter[str] = Counter()
    langs: Counter[str] = Counter()
    pii: Counter[str] = Counter()

    def stat(name: str) -> _StepStat:
        if name not in stats:
            stats[name] = _StepStat(name=name)
        return stats[name]

    extract: Any = next((p for k, p in steps if k == "extract"), None)
    doc_steps = [(k, FILTERS[k](p)) for k, p in steps if k in FILTERS]  # type: ignore[arg-type]
    fmt = spec.input.format
    t0 = time.perf_counter()
    reader = ArchiveReader(path)
    records = 0
    html = 0  # HTML pages: the extract step's input
    texts = 0  # WET text records with text: documents that skip extract (langid's other input)
    # records read that are neither an HTML page nor a WET text, by why (records = html +
    # texts + these + read/empty_text drops): their WARC-Type (request, warcinfo, metadata,
    # revisit…), or for a response/resource record: not_html, http_status_not_200, format_wet
    skipped: Counter[str] = Counter()
    docs: list[Document] = []
    st_read = stat("read")
    st_ext = stat("extract") if extract is not None else None
    t_read0 = time.process_time()
    t_extract = 0.0
    for i, rec in enumerate(reader.records()):
        records += 1
        if rec.record_type == "conversion" and fmt in ("auto", "wet"):
            text = rec.body.decode("utf-8", "replace").strip()
            if not text:  # WET files hold a record for pages without text too
                drops["read/empty_text"] += 1
                continue
            texts += 1
            docs.append(Document(id=f"{task:05d}/{i}", text=text, url=rec.url))
            continue
        if rec.record_type not in ("response", "resource"):
            skipped[rec.record_type or "unknown"] += 1
            continue
        if fmt == "wet":
            skipped["format_wet"] += 1
            continue
        if rec.http_status is not None and rec.http_status != 200:
            skipped["http_status_not_200"] += 1
            continue
        ct = rec.content_type
        if ct not in ("text/html", "application/xhtml+xml") and not (
            not ct and rec.body.lstrip()[:15].lower().startswith((b"<!doctype", b"<html"))
        ):
            skipped["not_html"] += 1
            continue
        html += 1
        if st_ext is None:
            drops["read/html_without_extract_step"] += 1
            continue
        te = time.process_time()
        st_ext.docs_in += 1
        try:
            page = extract_page(
                decode_html(rec.body, rec.http_headers.get("content-type")),
                mode=extract.mode,
                url=rec.url,  # type: ignore[union-attr]
            )
            text = page.text
            if page.pruned:  # elements nested deeper than MAX_NESTING_DEPTH: cut off
                log.info("pruned deep nesting: %s: %d subtrees", rec.url, page.pruned)
                notes["extract/pruned_deep_nesting"] += 1
            if page.fast_fallback:  # more than MAX_QUALITY_ELEMENTS elements
                log.info("extracted in fast mode (too many elements): %s", rec.url)
                notes["extract/fast_mode_too_many_elements"] += 1
        except Exception as exc:  # noqa: BLE001 - one bad page never stops a run
            log.info("extraction failed for %s: %s", rec.url, exc)
            text = ""
        t_extract += time.process_time() - te
        if len(text) < max(extract.min_chars, 1):  # type: ignore[union-attr]
            drops["extract/no_text"] += 1
            continue
        st_ext.docs_out += 1
        docs.append(Document(id=f"{task:05d}/{i}", text=text, url=rec.url))
    st_read.docs_in = records
    st_read.docs_out = html + texts  # the documents read emits: HTML pages and WET texts
    st_read.seconds = time.process_time() - t_read0 - t_extract
    if st_ext is not None:
        st_ext.seconds = t_extract

    # language ID is always recorded (it feeds the report); the language step filters on it
    st_lang = stat("langid")
    tl = time.process_time()
    for d in docs:
        d.metadata["lang"], d.metadata["lang_score"] = detect_language(d.text)
        langs[d.metadata["lang"]] += 1
    st_lang.docs_in = st_lang.docs_out = len(docs)
    st_lang.seconds = time.process_time() - tl

    for name, f in doc_steps:
        st = stat(name)
        ts = time.process_time()
        kept: list[Document] = []
        for d in docs:
            st.docs_in += 1
            keep, reason = apply(f, d)
            if keep:
                kept.append(d)
            else:
                drops[f"{name}/{reason}"] += 1
            if name == "pii" and "pii" in d.metadata:
                pii.update(d.metadata["pii"])
        st.docs_out = len(kept)
        st.seconds += time.process_time() - ts
        docs = kept

    dedup = spec.step("dedup")
    sigs = np.zeros((len(docs), 0), dtype=np.uint32)
    hashes = np.zeros((len(docs), 16), dtype=np.uint8)
    arrays: dict[str, np.ndarray] = {}
    if dedup is not None:
        st = stat("dedup_hashing")
        ts = time.process_time()
        hashes = np.frombuffer(b"".join(exact_hash(d.text) for d in docs), dtype=np.uint8).reshape(
            -1, 16
        )
        if dedup.minhash is not None:  # type: ignore[attr-defined]
            mh = dedup.minhash  # type: ignore[attr-defined]
            hasher = MinHasher(
                MinHashConfig(
                    ngram=mh.ngram,
                    num_hashes=mh.num_hashes,
                    bands=mh.bands,
                    rows=mh.rows,
                    seed=mh.seed,
                )
            )
            if mh.verify:  # the driver verifies candidate pairs on the shingle sets
                sigs, sets = hasher.signatures_and_sets([d.text for d in docs])
                arrays["shingles"] = sets.values
                arrays["shingle_offsets"] = sets.offsets
            else:
                sigs = hasher.signatures([d.text for d in docs])
        st.docs_in = st.docs_out = len(docs)
        st.seconds = time.process_time() - ts

    rows = [
        {
            "id": d.id,
            "url": d.url,
            "text": d.text,
            "lang": d.metadata.get("lang"),
            "lang_score": d.metadata.get("lang_score"),
        }
        for d in docs
    ]
    stage = out / "stage1"
    _atomic_write(stage / f"{task:05d}.jsonl.gz", _jsonl_gz_bytes(rows))
    buf = io.BytesIO()
    np.savez(buf, hashes=hashes, sigs=sigs, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as its bool flag
    _atomic_write(stage / f"{task:05d}.npz", buf.getvalue())
    result = {
        "task": task,
        "file": str(path),
        "input": in_stat,
        "input_sha256": digest,
        "records": records,
        "html": html,
        "texts": texts,
        "skipped": dict(skipped),
        "kept": len(docs),
        "steps": {
            k: {"in": v.docs_in, "out": v.docs_out, "seconds": v.seconds} for k, v in stats.items()
        },
        "drops": dict(drops),
        "notes": dict(notes),
        "languages": dict(langs),
        "pii": dict(pii),
        "unreadable": [x.to_dict() for x in reader.issues],
        "seconds": time.perf_counter() - t0,
    }
    _done(out / ".tasks" / f"process-{task:05d}.done", result)
    return result


def encode_file(spec_json: str, task: int, out_dir: str) -> dict[str, Any]:
    """Encode stage for one task: final corpus JSONL and the token shard."""
    from aistack.webdata.shards import write_shard
    from aistack.webdata.tokenize import encode, load_tokenizer

    spec = PipelineSpec.model_validate_json(spec_json)
    out = Path(out_dir)
    t0 = time.perf_counter()
    rows = read_jsonl_gz(out / "stage1" / f"{task:05d}.jsonl.gz")
    mask_path = out / "dedup" / f"{task:05d}.npy"
    if mask_path.exists():
        removed = np.load(mask_path)
        rows = [r for r, rm in zip(rows, removed, strict=True) if not rm]
    _atomic_write(out / "corpus" / f"{task:05d}.jsonl.gz", _jsonl_gz_bytes(rows))
    tokens = 0
    tok_seconds = 0.0
    shard_path = out / "dataset" / f"shard-{task:05d}.bin"
    if spec.step("tokenize") is not None and rows:
        tt = time.process_time()
        tok = load_tokenizer(out / "dataset" / "tokenizer.json")
        ids = encode(tok, [r["text"] for r in rows])
        info = write_shard(shard_path, ids, tok.get_vocab_size())  # type: ignore[attr-defined]
        tokens = info["num_tokens"]
        tok_seconds = time.process_time() - tt
    else:  # no documents, no shard: a header-only file would join the dataset
        shard_path.unlink(missing_ok=True)
    result = {
        "task": task,
        "docs": len(rows),
        "tokens": tokens,
        "tokenize_seconds": tok_seconds,
        "seconds": time.perf_counter() - t0,
    }
    _done(out / ".tasks" / f"encode-{task:05d}.done", result)
    return result
