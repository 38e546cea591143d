"""The pipeline runner: spec → tasks → output folder with shards and a report.

Stages (each task writes its result atomically and a ``.done`` file; a re-run skips done
tasks, so an interrupted run resumes)::

    process   one task per input file, in parallel: read → extract → language → filters
              → pii; writes the kept documents plus their exact hashes, MinHash
              signatures and (verify on) shingle-hash sets (stage1/NNNNN.*)
    dedup     in the driver, across all files: exact duplicates, then MinHash LSH
              candidates, checked by exact Jaccard and kept greedily in input order (or
              FineWeb's union-find clusters, ``verify: false``; see aistack.webdata.dedup)
              → dedup/NNNNN.npy masks
    tokenizer train a BPE on the kept documents (or load tokenizer_file) → dataset/tokenizer.json
    encode    one task per input file, in parallel: corpus/NNNNN.jsonl.gz and
              dataset/shard-NNNNN.bin (see aistack.webdata.shards); a file that kept no
              document gets no shard (``counts.shards`` says how many there are)
    report    report.json (``counts`` are deterministic and describe the whole output;
              ``bad_files`` lists each input file that is damaged, unreadable or cut short,
              with the reason: the run goes on with the other files, and keeps what it read
              from a damaged one; ``counts.truncated_records`` counts the records cut short
              by the end of their file (dropped), ``truncated_bytes`` the bytes of them
              the files hold (read and dropped) and ``truncated_missing_bytes`` the bytes
              missing, of the lengths their headers gave (a record cut inside its header
              gave none: ``truncated_unknown_length`` counts those); each entry of
              ``unreadable`` has an ``offset`` in bytes and ``offset_in``: ``file`` (in the
              file as stored) or ``decompressed`` (in a compressed file's decompressed
              stream);
              ``timing`` is not: per-step times are CPU seconds of the worker process, so
              docs/s per core holds on shared cores, and every rate counts only the tasks
              this run ran, resumed ones not: a run that resumed all says ``nothing_to_do``)
              and report.txt
    register  optional: dataset/ becomes a dataset version in aistack.storage, unless some
              input files were bad and ``skip_bad`` is off (the CLI's ``--skip-bad``): then
              nothing is registered (``registered: null``, ``register_skipped`` says why and
              how: re-run with ``--skip-bad``, which resumes this output and registers without
              reading anything again). A version registered with bad files skipped carries
              them in its metadata (``webdata_bad_files``) and its message. As DVC does not
              commit an output whose stage failed, an incomplete dataset is not published
              unless asked for. The version's lineage records what it was made from:
              ``file:NAME@sha256:HEX`` (each input file, by the digest its process task took)
              → ``webdata:NAME@ID`` (this run; also the version's ``webdata_run`` metadata) →
              ``dataset:NAME@vN`` (``aistack data lineage NAME@vN``; report.json's
              ``lineage`` lists the inputs with their paths). A resumed run records the same
              edges (stored once), so it also adds any an interrupted register left out.
              Files read from a dataset version (``input.dataset``) have no node of their
              own: the pinned version ``dataset:NAME@vN`` is the run's input node instead.

Input dataset versions (``input.dataset``) are pinned when the run starts, referenced by
the run (``webdata:NAME@FP``, FP its fingerprint: ``aistack data rm`` and gc keep them, as
they keep a job's inputs) and their files put under ``input-datasets/NAME@vN/`` in the
output folder before the process stage (hard links to the store's objects on a local store,
see :func:`aistack.webdata.lineage.materialize_inputs`). As a job's, the reference is kept
after the run; a run that registers a corpus moves it to its lineage node
``webdata:NAME@ID`` (report.json's ``input_references`` names it; ``aistack data unref
NAME@vN --by webdata:...`` drops it).

Tasks are numbered by the sorted input file list, and every merge happens in task order, so
the output bytes and counts are the same on 1 worker, N workers or Ray.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aistack.errors import ConflictError, ValidationError, require

# (names moved to lineage, output and registration stay importable from here)
from aistack.webdata.lineage import (
    INPUT_DATASETS,  # noqa: F401 - re-exported
    REFERENCE_KIND,
    DatasetInput,
    file_node,  # noqa: F401 - re-exported
    file_sha256,
    input_lineage,
    materialize_inputs,
    move_references,
    readable_id,  # noqa: F401 - re-exported
    record_input_lineage,
    reference_inputs,
    resolve_dataset_inputs,
    run_referrer,
)
from aistack.webdata.output import (
    MARKER,  # noqa: F401 - re-exported
    OUTPUT_ENTRIES,  # noqa: F401 - re-exported
    check_output,
    clear_output,
)
from aistack.webdata.registration import register_output
from aistack.webdata.registration import registered_earlier as _registered_earlier
from aistack.webdata.spec import PipelineSpec
from aistack.webdata.taskfiles import atomic_write as _atomic_write
from aistack.webdata.taskfiles import write_done as _done

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
ARCHIVE_SUFFIXES = (".warc", ".arc", ".wet", ".gz", ".zst", ".lz4", ".warc.gz", ".arc.gz")


def _jsonl_gz_bytes(rows: list[dict[str, Any]]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        for r in rows:
            gz.write((json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    return buf.getvalue()


def read_jsonl_gz(path: str | Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def expand_inputs(paths: list[str], base: Path) -> list[Path]:
    """Every archive file named, or inside a named directory (sorted, no duplicates)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        p = p if p.is_absolute() else (base / p)
        if p.is_dir():
            files.extend(
                f for f in sorted(p.rglob("*")) if f.is_file() and not f.name.startswith(".")
            )
        elif p.is_file():
            files.append(p)
        else:
            raise ValidationError(
                f"input.paths: {raw!r} does not exist (resolved to {p})",
                hint="paths are relative to the pipeline file's folder",
            )
    seen: set[Path] = set()
    out = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            out.append(f)
    if not out:
        raise ValidationError(
            "input.paths: no files found", hint="point input.paths at WARC/ARC/WET files"
        )
    return out


# --------------------------------------------------------------------------- process task


@dataclass(kw_only=True)
class _StepStat:
    name: str
    docs_in: int = 0
    docs_out: int = 0
    seconds: float = 0.0


def _input_stat(path: str | Path) -> dict[str, int] | None:
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
    from aistack.webdata.extract import decode_html, detect_language, extract_text
    from aistack.webdata.filters import FILTERS, Document, apply
    from aistack.webdata.readers import ArchiveReader

    input_stat = _input_stat(path)  # before reading: a file changed while read is seen later
    # its lineage id (and the reader then reads it from the cache)
    digest = file_sha256(path) if hash_input else None
    spec = PipelineSpec.model_validate_json(spec_json)
    steps = spec.parsed_steps()
    out = Path(out_dir)
    stats: dict[str, _StepStat] = {}
    drops: Counter[str] = Counter()
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
        if fmt == "wet" or rec.record_type not in ("response", "resource"):
            continue
        if rec.http_status is not None and rec.http_status != 200:
            continue
        ct = rec.content_type
        if ct not in ("text/html", "application/xhtml+xml") and not (
            not ct and rec.body.lstrip()[:15].lower().startswith((b"<!doctype", b"<html"))
        ):
            continue
        html += 1
        if st_ext is None:
            drops["read/html_without_extract_step"] += 1
            continue
        te = time.process_time()
        st_ext.docs_in += 1
        try:
            text = extract_text(
                decode_html(rec.body, rec.http_headers.get("content-type")),
                mode=extract.mode,
                url=rec.url,  # type: ignore[union-attr]
            )
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
    np.savez(buf, hashes=hashes, sigs=sigs, **arrays)
    _atomic_write(stage / f"{task:05d}.npz", buf.getvalue())
    result = {
        "task": task,
        "file": str(path),
        "input": input_stat,
        "input_sha256": digest,
        "records": records,
        "html": html,
        "texts": texts,
        "kept": len(docs),
        "steps": {
            k: {"in": v.docs_in, "out": v.docs_out, "seconds": v.seconds} for k, v in stats.items()
        },
        "drops": dict(drops),
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


# --------------------------------------------------------------------------- driver


def _run_tasks(
    fn: Callable[..., dict[str, Any]],
    args: list[tuple[Any, ...]],
    *,
    workers: int,
    executor: str,
    stage: str,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    results: list[dict[str, Any] | None] = [None] * len(args)
    if progress:
        progress(stage, 0, len(args))
    if not args:
        return []
    if executor == "ray":
        ray = require("ray", extra="ray")
        if not ray.is_initialized():
            from aistack.settings import get_settings

            addr = get_settings().ray_address
            if addr:
                ray.init(address=addr)
            else:
                ray.init(
                    address="local",
                    num_cpus=workers,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                )
        remote = ray.remote(num_cpus=1, max_retries=2)(fn)
        refs = [remote.remote(*a) for a in args]
        index = {r: i for i, r in enumerate(refs)}
        pending = list(refs)
        done_n = 0
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for r in ready:
                results[index[r]] = ray.get(r)
                done_n += 1
                if progress:
                    progress(stage, done_n, len(args))
    elif workers <= 1 or len(args) == 1:
        for i, a in enumerate(args):
            results[i] = fn(*a)
            if progress:
                progress(stage, i + 1, len(args))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(
            max_workers=min(workers, len(args)), mp_context=mp.get_context("spawn")
        ) as pool:
            futs = {pool.submit(fn, *a): i for i, a in enumerate(args)}
            for n, fut in enumerate(as_completed(futs), 1):
                results[futs[fut]] = fut.result()
                if progress:
                    progress(stage, n, len(args))
    return [r for r in results if r is not None]


# step parameters that name a file: relative to the pipeline file's folder, like input.paths
FILE_PARAMS = {
    "tokenize": ("tokenizer_file",),
    "c4": ("badwords_file",),
    "url_blocklist": ("domains_file",),
}


def _resolve_files(spec: PipelineSpec, base: Path) -> PipelineSpec:
    """``spec`` with the file parameters of its steps made absolute against ``base`` (the
    pipeline file's folder), so workers (any cwd, or a Ray node) read the files meant."""
    steps: list[dict[str, Any]] = []
    for item in spec.steps:
        ((kind, params),) = item.items()
        params = dict(params)
        for key in FILE_PARAMS.get(kind, ()):
            value = params.get(key)
            if value:
                path = Path(value).expanduser()
                params[key] = str(path if path.is_absolute() else base / path)
        steps.append({kind: params})
    return spec.model_copy(update={"steps": steps})


def _check_steps(spec: PipelineSpec) -> None:
    """Build every filter once and check the files steps name, so a bad parameter is an
    error before any input is read (not one per worker after the first file)."""
    from aistack.webdata.filters import FILTERS

    for kind, params in spec.parsed_steps():
        if kind in FILTERS:
            FILTERS[kind](params)  # type: ignore[arg-type]
        elif kind == "tokenize" and params.tokenizer_file:  # type: ignore[attr-defined]
            if not Path(params.tokenizer_file).is_file():  # type: ignore[attr-defined]
                raise ValidationError(
                    f"tokenize.tokenizer_file: {params.tokenizer_file} does not exist",  # type: ignore[attr-defined]
                    hint="paths are relative to the pipeline file's folder; give a "
                    "tokenizer.json (HF tokenizers format) or let the pipeline train one",
                )


def _spec_fingerprint(spec: PipelineSpec, files: list[Path]) -> str:
    data = spec.model_dump(exclude={"workers", "executor"})
    if not data["input"]["dataset"]:  # (so an output made before it existed still resumes)
        del data["input"]["dataset"]
    data["files"] = [str(f.resolve()) for f in files]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def run_pipeline(
    spec: PipelineSpec,
    *,
    base: Path | None = None,
    workers: int | None = None,
    executor: str | None = None,
    fresh: bool = False,
    progress: Progress | None = None,
    skip_bad: bool = False,
) -> dict[str, Any]:
    """Run (or resume) a pipeline; returns the report (also written to output/report.json).

    ``skip_bad``: register the dataset even when some input files were bad (listed in the
    report's ``bad_files``); without it such a run registers nothing (``register_skipped``).

    One run at a time per output folder: a second one is refused while the first holds the
    folder's lock (two runs would rename each other's files away and mix their results)."""
    base = base or Path.cwd()
    workers = workers or spec.workers
    executor = executor or spec.executor
    if executor not in ("local", "ray"):
        raise ValidationError(
            f"executor must be local or ray, got {executor!r}",
            hint="--executor local (processes on this machine) or --executor ray",
        )
    out = Path(spec.output)
    out = out if out.is_absolute() else base / out
    files = expand_inputs(spec.input.paths, base) if spec.input.paths else []
    datasets = resolve_dataset_inputs(spec.input.dataset, out)
    if datasets:  # pinned: a resumed run reads the same versions, or is told they changed
        pinned = [d.ref for d in datasets]
        spec = spec.model_copy(update={"input": spec.input.model_copy(update={"dataset": pinned})})
        files += [f for d in datasets for f in d.files]
    spec_run = _resolve_files(spec, base)
    _check_steps(spec_run)  # all before the output folder is made: bad input writes nothing
    if out.exists() and not out.is_dir():
        raise ValidationError(
            f"output: {out} is a file, not a folder",
            hint="point output: at a new or empty folder (the pipeline writes several files there)",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_RDONLY)
    except OSError as exc:
        raise ValidationError(
            f"output: cannot create folders in {out}: {exc.strerror or exc}",
            hint="point output: at a folder you can write (a file of that name is in the way?)",
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(
                f"output {out} is in use: another pipeline run is writing there",
                hint="wait for it to end, or use another output folder",
            ) from None
        with contextlib.ExitStack() as held:  # (the leases on its references, if any)
            return _run_pipeline(
                spec, spec_run, out, files, base=base, workers=workers, executor=executor,
                fresh=fresh, progress=progress, skip_bad=skip_bad, datasets=datasets,
                held=held,
            )  # fmt: skip
    finally:
        os.close(fd)  # (closing releases the lock)


def _run_pipeline(
    spec: PipelineSpec,
    spec_run: PipelineSpec,
    out: Path,
    files: list[Path],
    *,
    base: Path,
    workers: int,
    executor: str,
    fresh: bool,
    progress: Progress | None,
    skip_bad: bool = False,
    datasets: list[DatasetInput] | None = None,
    held: contextlib.ExitStack[Any] | None = None,
) -> dict[str, Any]:
    """The run itself, with the output folder locked (``spec_run``: ``spec`` with its step
    files made absolute; ``datasets``: the input dataset versions, whose files are the last
    of ``files``; ``held``: holds the run's leases on its references until the run ends)."""
    datasets = datasets or []
    pinned_files = {f for d in datasets for f in d.files}
    fp = _spec_fingerprint(spec, files)
    state = out / ".tasks"
    if fresh:  # (a dataset's files are linked or copied again: the store keeps them)
        clear_output(out, protect=[*(f for f in files if f not in pinned_files), base])
    else:
        check_output(out)
    if (state / "spec.json").exists():
        old_marker = json.loads((state / "spec.json").read_text())
        old = old_marker.get("fingerprint")
        old_input = (old_marker.get("spec") or {}).get("input") or {}
        read = old_input.get("dataset") if isinstance(old_input, dict) else None
        if (
            old != fp
            and datasets
            and isinstance(read, list)
            and read
            and read != spec.input.dataset
        ):
            # (NAME or NAME@latest names a newer version now: the earlier run can still resume)
            raise ConflictError(
                f"output {out} holds a run of a different pipeline or input: it read "
                f"{', '.join(read)}, and input.dataset now pins {', '.join(spec.input.dataset)}",
                hint=f"to resume that run, write input.dataset: [{', '.join(read)}]; to start "
                "over, --fresh (or use another output folder)",
            )
        if old != fp:
            raise ConflictError(
                f"output {out} holds a run of a different pipeline or input",
                hint="use another output folder, or --fresh to start over",
            )
    try:
        for sub in ("stage1", "dedup", "corpus", "dataset", ".tasks"):
            (out / sub).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"output: cannot create folders in {out}: {exc.strerror or exc}",
            hint="point output: at a folder you can write (a file of that name is in the way?)",
        ) from None
    _done(state / "spec.json", {"fingerprint": fp, "spec": spec.model_dump()})
    spec_json = spec_run.model_dump_json()
    t_start = time.perf_counter()
    resumed = {"process": 0, "encode": 0}

    # ---- input dataset versions: referenced (kept from `data rm`), then their files put
    # where a process task will read them
    referrer = run_referrer(spec.name, fp)
    if datasets and held is not None:  # `data unref` keeps them while the run lives
        from aistack.storage.holds import hold_reference

        held.enter_context(hold_reference(REFERENCE_KIND, referrer))
    input_refs = reference_inputs(datasets, referrer)
    pending = {f for i, f in enumerate(files) if not (state / f"process-{i:05d}.done").exists()}
    input_datasets = materialize_inputs(datasets, pending, state, progress)

    # ---- stage 1
    todo: list[tuple[Any, ...]] = []
    proc_results: dict[int, dict[str, Any]] = {}
    for i, f in enumerate(files):
        d = state / f"process-{i:05d}.done"
        if d.exists():
            proc_results[i] = json.loads(d.read_text())
            then = proc_results[i].get("input")  # absent in runs made before it was recorded
            # (a dataset version's file cannot change; linked again, its mtime may)
            if then is not None and f not in pinned_files and then != _input_stat(f):
                raise ConflictError(
                    f"input {f} changed since the earlier run in {out} read it (size or "
                    "modification time): resuming would keep results of the old content",
                    hint="--fresh to process everything again, or another output folder",
                )
            resumed["process"] += 1
        else:
            hash_input = f not in pinned_files and spec.step("register") is not None
            todo.append((spec_json, i, str(f), str(out), hash_input))
    t1 = time.perf_counter()
    ran_procs = _run_tasks(
        process_file, todo, workers=workers, executor=executor, stage="process", progress=progress
    )
    for r in ran_procs:
        proc_results[r["task"]] = r
    wall_process = time.perf_counter() - t1
    procs = [proc_results[i] for i in range(len(files))]

    # ---- dedup (driver)
    dedup_spec = spec.step("dedup")
    dedup_stats: dict[str, Any] = {}
    t2 = time.perf_counter()
    if dedup_spec is not None:
        dedup_stats = _dedup(out, len(files), dedup_spec)
    wall_dedup = time.perf_counter() - t2

    # ---- tokenizer
    tok_spec = spec.step("tokenize")
    t3 = time.perf_counter()
    tok_info: dict[str, Any] = {}
    if tok_spec is not None:
        try:
            tok_info = _tokenizer(out, len(files), spec_run.step("tokenize"))
        except ValidationError as exc:
            if not exc.message.startswith("tokenize: no documents left"):
                raise
            drops: Counter[str] = Counter()
            for r in procs:
                drops.update(r["drops"])
            for k in ("exact_duplicates", "near_duplicates"):
                drops[f"dedup/{k}"] += dedup_stats.get(k, 0)
            why = ", ".join(f"{k} {v:,}" for k, v in drops.most_common(5) if v) or "none"
            bad = _bad_files(procs)
            bad_txt = ""
            if bad:
                first = bad[0]
                bad_txt = (
                    f"; {len(bad):,} of the files are damaged or unreadable (first: "
                    f"{first['file']}: {first['reason']})"
                )
            raise ValidationError(
                f"{exc.message}: {sum(r['html'] + r.get('texts', 0) for r in procs):,} "
                f"pages read from {len(files):,} files, all dropped (docs per filter/reason: "
                f"{why}){bad_txt}",
                hint=exc.hint,
            ) from None
    wall_train = time.perf_counter() - t3

    # ---- encode
    todo = []
    enc_results: dict[int, dict[str, Any]] = {}
    for i in range(len(files)):
        d = state / f"encode-{i:05d}.done"
        if d.exists():
            enc_results[i] = json.loads(d.read_text())
            resumed["encode"] += 1
        else:
            todo.append((spec_json, i, str(out)))
    t4 = time.perf_counter()
    ran_encs = _run_tasks(
        encode_file, todo, workers=workers, executor=executor, stage="encode", progress=progress
    )
    for r in ran_encs:
        enc_results[r["task"]] = r
    wall_encode = time.perf_counter() - t4
    encs = [enc_results[i] for i in range(len(files))]
    for i, e in enumerate(encs):
        if not e["docs"]:  # header-only shards (written by earlier versions) join no dataset
            (out / "dataset" / f"shard-{i:05d}.bin").unlink(missing_ok=True)

    report = _build_report(spec, files, procs, encs, dedup_stats, tok_info)
    report["timing"] = _timing(
        ran_procs,
        ran_encs,
        resumed,
        wall_process,
        wall_dedup,
        wall_train,
        wall_encode,
        time.perf_counter() - t_start,
        workers,
        report,
    )
    report["run"] = {
        "workers": workers,
        "executor": executor,
        "resumed_tasks": resumed,
        "output": str(out),
    }
    if input_datasets:
        report["input_datasets"] = input_datasets
    if input_refs:
        report["input_references"] = input_refs
    # in the report's own order (steps as the pipeline runs them, languages by count); the
    # dataset's copy has sorted keys: its bytes are part of the dataset version's identity
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "dataset" / "report.json").write_text(
        json.dumps({"counts": report["counts"]}, indent=2, sort_keys=True)
    )
    from aistack.webdata.report import bad_files_count, render_text

    (out / "report.txt").write_text(render_text(report))  # (again after the register step)

    reg = spec.step("register")
    if reg is not None:
        reg_done = state / "register.done"
        earlier = _registered_earlier(reg_done)
        if spec.step("tokenize") is not None and not report["counts"]["shards"]:
            raise ValidationError(
                f"register: no token shards in {out / 'dataset'} (no input file kept a "
                "document); nothing to register",
                hint="loosen the filters (report.txt lists the drops per filter), or remove "
                "the register step",
            )
        bad = report["bad_files"]
        lineage: dict[str, Any] | None = None
        if earlier is not None:  # a finished run resumed: same dataset, no new version
            report["registered"] = earlier
            resumed["register"] = 1
        elif bad and not skip_bad:
            report["registered"] = None
            report["register_skipped"] = {
                "reason": f"{bad_files_count(len(bad), len(files))} (bad_files): the "
                "dataset is incomplete, so it was not registered",
                "hint": "re-run with --skip-bad (skip_bad=True) to register it as it is (the "
                "run resumes; nothing is read again), or fix or remove the bad files and "
                "re-run with --fresh",
            }
            log.warning("register: %s", report["register_skipped"]["reason"])
        else:
            lineage = input_lineage(spec, fp, files, procs, state, datasets)
            report["registered"] = register_output(
                out / "dataset",
                reg.name,  # type: ignore[attr-defined]
                reg.message,  # type: ignore[attr-defined]
                report,
                run_node=lineage["run"],
            )
            _done(reg_done, report["registered"])  # (before the edges: a re-run adds them)
        ref = (report["registered"] or {}).get("ref")
        if ref:  # also when resumed: an edge is stored once, and a missing one is added
            if lineage is None:
                lineage = input_lineage(spec, fp, files, procs, state, datasets)
            report["lineage"] = record_input_lineage(str(ref), lineage)
            if input_refs:  # (the reference names the node the lineage shows from now on)
                if held is not None:
                    from aistack.storage.holds import hold_reference

                    held.enter_context(
                        hold_reference(REFERENCE_KIND, lineage["run"].partition(":")[2])
                    )
                move_references(datasets, referrer, lineage["run"].partition(":")[2])
                input_refs["by"] = lineage["run"]
        (out / "report.json").write_text(json.dumps(report, indent=2))
        (out / "report.txt").write_text(render_text(report))  # (says what report.json says)
    return report


def _dedup(out: Path, n_tasks: int, dedup_spec: Any) -> dict[str, Any]:
    from aistack.webdata.dedup import MinHashConfig, ShingleSets, exact_duplicates, minhash_dedup

    done = out / ".tasks" / "dedup.done"
    if done.exists():
        return json.loads(done.read_text())
    hashes, sigs, sizes, sets = [], [], [], []
    for i in range(n_tasks):
        z = np.load(out / "stage1" / f"{i:05d}.npz")
        hashes.append(z["hashes"])
        sigs.append(z["sigs"])
        sizes.append(len(z["hashes"]))
        if "shingles" in z:
            sets.append(ShingleSets(values=z["shingles"], offsets=z["shingle_offsets"]))
    all_h = np.concatenate(hashes) if hashes else np.zeros((0, 16), np.uint8)
    n = len(all_h)
    removed = np.zeros(n, dtype=bool)
    exact_n = 0
    if dedup_spec.exact:
        removed = exact_duplicates([bytes(h) for h in all_h])
        exact_n = int(removed.sum())
    near_n = clusters = checked = 0
    if dedup_spec.minhash is not None and n:
        mh = dedup_spec.minhash
        cfg = MinHashConfig(
            ngram=mh.ngram,
            num_hashes=mh.num_hashes,
            bands=mh.bands,
            rows=mh.rows,
            seed=mh.seed,
            verify=mh.verify,
            threshold=mh.threshold,
        )
        all_s = np.concatenate(sigs)
        live = np.flatnonzero(~removed)
        live_sets = None
        if cfg.verify:
            assert len(sets) == n_tasks, "stage 1 keeps shingle sets when verify is on"
            live_sets = ShingleSets.concat(sets).take(live)
        res = minhash_dedup(all_s[live], cfg, live_sets)
        dup = res.removed
        near_n = int(dup.sum())
        clusters = int(len(set(res.match[dup].tolist())))
        checked = res.checked
        removed[live[dup]] = True
    start = 0
    for i, size in enumerate(sizes):
        buf = io.BytesIO()
        np.save(buf, removed[start : start + size])
        _atomic_write(out / "dedup" / f"{i:05d}.npy", buf.getvalue())
        start += size
    stats = {
        "docs_in": n,
        "exact_duplicates": exact_n,
        "near_duplicates": near_n,
        "near_duplicate_clusters": clusters,
        "minhash_pairs_checked": checked,
        "docs_out": int(n - removed.sum()),
    }
    _done(done, stats)
    return stats


def _tokenizer(out: Path, n_tasks: int, tok_spec: Any) -> dict[str, Any]:
    from aistack.webdata.tokenize import load_tokenizer, train_bpe

    target = out / "dataset" / "tokenizer.json"
    done = out / ".tasks" / "tokenizer.done"
    if done.exists() and target.exists():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    if tok_spec.tokenizer_file:
        tok = load_tokenizer(tok_spec.tokenizer_file)
        shutil.copyfile(tok_spec.tokenizer_file, target)
        info = {"trained": False, "source": tok_spec.tokenizer_file}
    else:
        texts: list[str] = []
        for i in range(n_tasks):
            rows = read_jsonl_gz(out / "stage1" / f"{i:05d}.jsonl.gz")
            mask_path = out / "dedup" / f"{i:05d}.npy"
            removed = np.load(mask_path) if mask_path.exists() else np.zeros(len(rows), bool)
            texts.extend(r["text"] for r, rm in zip(rows, removed, strict=True) if not rm)
            if tok_spec.train_docs and len(texts) >= tok_spec.train_docs:
                texts = texts[: tok_spec.train_docs]
                break
        if not texts:
            raise ValidationError(
                "tokenize: no documents left to train a tokenizer on",
                hint="loosen the filters, or give tokenize.tokenizer_file",
            )
        tok = train_bpe(
            texts, vocab_size=tok_spec.vocab_size, min_frequency=tok_spec.min_frequency, out=target
        )
        info = {"trained": True, "train_docs": len(texts)}
    info["vocab_size"] = tok.get_vocab_size()  # type: ignore[attr-defined]
    info["seconds"] = time.perf_counter() - t0
    _done(done, info)
    return info


def _build_report(
    spec: PipelineSpec,
    files: list[Path],
    procs: list[dict[str, Any]],
    encs: list[dict[str, Any]],
    dedup: dict[str, Any],
    tok: dict[str, Any],
) -> dict[str, Any]:
    steps: dict[str, dict[str, int]] = {}
    drops: Counter[str] = Counter()
    langs: Counter[str] = Counter()
    pii: Counter[str] = Counter()
    unreadable: list[dict[str, Any]] = []
    for p in procs:
        for name, s in p["steps"].items():
            cur = steps.setdefault(name, {"in": 0, "out": 0})
            cur["in"] += s["in"]
            cur["out"] += s["out"]
        drops.update(p["drops"])
        langs.update(p["languages"])
        pii.update(p["pii"])
        unreadable.extend(p["unreadable"])
    if dedup:
        steps["dedup"] = {"in": dedup["docs_in"], "out": dedup["docs_out"]}
    truncated = [u for u in unreadable if u.get("kind") == "truncated"]
    bad = _bad_files(procs)
    docs_out = sum(e["docs"] for e in encs)
    tokens = sum(e["tokens"] for e in encs)
    if spec.step("tokenize") is not None:
        steps["tokenize"] = {"in": docs_out, "out": docs_out}
    counts = {
        "files": len(files),
        "records": sum(p["records"] for p in procs),
        "html_documents": sum(p["html"] for p in procs),  # pages that go to extract
        "text_documents": sum(p.get("texts", 0) for p in procs),  # WET texts: to langid
        "documents_out": docs_out,
        "steps": steps,
        "drops": dict(sorted(drops.items())),
        "languages": dict(sorted(langs.items(), key=lambda kv: (-kv[1], kv[0]))),
        "pii_masked": dict(sorted(pii.items())),
        "duplicates": {k: v for k, v in dedup.items() if k not in ("docs_in", "docs_out")},
        "tokens": tokens,
        # one shard per input file that kept documents (no header-only shards)
        "shards": sum(1 for e in encs if e["docs"]) if spec.step("tokenize") is not None else 0,
        "vocab_size": tok.get("vocab_size"),
        "shard_dtype": (
            None if not tok else ("uint16" if tok["vocab_size"] <= 65536 else "uint32")
        ),
        "unreadable_records": len(unreadable),
        # records cut short by the end of their file (dropped); the bytes of them the files
        # hold (read and dropped); the bytes missing, of the lengths their headers gave
        "truncated_records": len(truncated),
        "truncated_bytes": sum(int(u.get("bytes_present") or 0) for u in truncated),
        "truncated_missing_bytes": sum(
            int(u["bytes_expected"]) - int(u.get("bytes_present") or 0)
            for u in truncated
            if u.get("bytes_expected") is not None
        ),
        "truncated_unknown_length": sum(1 for u in truncated if u.get("bytes_expected") is None),
        "bad_files": len(bad),
    }
    return {
        "name": spec.name,
        "counts": counts,
        "unreadable": unreadable,
        "bad_files": bad,
        "files": [str(f) for f in files],
    }


def _bad_files(procs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The input files that are damaged or unreadable as a whole (read issues of kind
    ``file``) or end inside a record (kind ``truncated``: the file is incomplete), in input
    order: ``{"file", "reason", "records"}``; ``records``: what was still read from it (that
    is in the output)."""
    out = []
    for p in procs:
        reasons = [
            str(u["reason"]) for u in p["unreadable"] if u.get("kind") in ("file", "truncated")
        ]
        if reasons:
            out.append({"file": p["file"], "reason": "; ".join(reasons), "records": p["records"]})
    return out


# below this wall time a rate is noise (or a division by ~0): it is not reported
MIN_RATE_SECONDS = 0.01


def _timing(
    procs: list[dict[str, Any]],
    encs: list[dict[str, Any]],
    resumed: dict[str, int],
    w_proc: float,
    w_dedup: float,
    w_train: float,
    w_enc: float,
    total: float,
    workers: int,
    report: dict[str, Any],
) -> dict[str, Any]:
    """Times and rates of THIS run: ``procs`` and ``encs`` are the results of the tasks it ran
    (resumed tasks did their work in an earlier run, so they count in no rate). With nothing
    to run, ``nothing_to_do`` says so and every rate is None."""
    per_step: dict[str, dict[str, Any]] = {}
    for p in procs:
        for name, s in p["steps"].items():
            cur = per_step.setdefault(name, {"docs": 0, "cpu_seconds": 0.0})
            cur["docs"] += s["in"]
            cur["cpu_seconds"] += s["seconds"]
    if encs:
        per_step["tokenize"] = {
            "docs": sum(e["docs"] for e in encs),
            "cpu_seconds": sum(e["tokenize_seconds"] for e in encs),
        }
    for v in per_step.values():
        v["docs_per_s_per_core"] = (
            (v["docs"] / v["cpu_seconds"]) if v["docs"] and v["cpu_seconds"] > 0 else None
        )
    docs = sum(p["html"] + p.get("texts", 0) for p in procs)
    tokens = sum(e["tokens"] for e in encs)
    measurable = total >= MIN_RATE_SECONDS

    def rate(n: int, per: int = 1) -> float | None:
        return n / total / per if n and measurable else None

    return {
        "wall_seconds": {
            "process": w_proc,
            "dedup": w_dedup,
            "tokenizer_train": w_train,
            "encode": w_enc,
            "total": total,
        },
        "this_run": {
            "process_tasks": len(procs),
            "encode_tasks": len(encs),
            "resumed_tasks": resumed["process"] + resumed["encode"],
            "documents": docs,
            "tokens": tokens,
        },
        "nothing_to_do": not procs and not encs,
        "steps": per_step,
        "docs_per_s": rate(docs),
        "docs_per_s_per_worker": rate(docs, workers),
        "tokens_per_s": rate(tokens),
    }
