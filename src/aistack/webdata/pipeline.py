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
              gave none: ``truncated_unknown_length`` counts those);
              ``unreadable_records`` all records that could not be read (a file unreadable
              as a whole is a bad file, not a record); ``skipped_records`` the records read
              that are no HTML page or WET text, by WARC-Type or why (not_html,
              http_status_not_200, format_wet), so that ``records`` = ``html_documents`` +
              ``text_documents`` + these + ``drops["read/empty_text"]``; each entry of
              ``unreadable`` has an ``offset`` in bytes and ``offset_in``: ``file`` (in the
              file as stored) or ``decompressed`` (in a compressed file's decompressed
              stream);
              ``timing`` is not: per-step times are CPU seconds of the worker process, so
              docs/s per core holds on shared cores, and every rate counts only the tasks
              this run ran, resumed ones not: a run that resumed all says ``nothing_to_do``)
              and report.txt
    register  optional: dataset/ becomes a dataset version in aistack.storage (the token
              shards, tokenizer.json and report.json; without a tokenize step the cleaned
              corpus, dataset/corpus-NNNNN.jsonl.gz, and report.json), unless some
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
              A run that kept no document registers nothing: it fails (``ValidationError``)
              saying whether the input held no page at all (and what its records were) or
              the filters dropped every page; the versions stored before stay as they are.
              Without a register step an input of no page at all fails the same way (after
              the report is written), and pages that the filters all dropped do not.

A run resumes an output only when it is of the same pipeline, input and code: the
fingerprint (``.tasks/spec.json``) hashes the spec, the input files and :func:`code_version`
(aistack's version and :data:`PIPELINE_CODE_VERSION`, bumped with every change of results).
An output of the same pipeline and input made by other code (an upgrade that changed a
filter) is not resumed: its results are deleted as ``--fresh`` deletes them and computed
again, with a warning, and report.json's ``recomputed`` says why (report.txt too); a
registered corpus then becomes a new version with a lineage node of its own
(``webdata:NAME@ID``, ID hashing the fingerprint). Another pipeline or input is refused, as
before (``--fresh`` or another output folder).

Input dataset versions (``input.dataset``) are pinned when the run starts, referenced by
the run (``webdata:NAME@FP``, FP its fingerprint: ``aistack data rm`` and gc keep them, as
they keep a job's inputs) and their files put under ``input-datasets/NAME@vN/`` in the
output folder before the process stage (hard links to the store's objects on a local store,
see :func:`aistack.webdata.lineage.materialize_inputs`). As a job's, the reference is kept
after the run; a run that registers a corpus moves it to its lineage node
``webdata:NAME@ID`` (report.json's ``input_references`` names it; ``aistack data unref
NAME@vN --by webdata:...`` drops it).

Tasks are numbered by the sorted input file list, and every merge happens in task order, so
the output bytes and counts are the same on 1 worker, N workers or Ray. The process and encode
tasks are in :mod:`aistack.webdata.tasks`; :mod:`aistack.webdata.executor` runs them (local
processes or Ray, and which Ray cluster).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from aistack.errors import ConflictError, ValidationError

# (names moved to lineage, output, registration, executor and tasks stay importable from here)
from aistack.webdata.executor import Progress, TaskRunner
from aistack.webdata.lineage import (
    INPUT_DATASETS,  # noqa: F401 - re-exported
    REFERENCE_KIND,
    DatasetInput,
    drop_earlier_reference,
    file_node,  # noqa: F401 - re-exported
    file_sha256,  # noqa: F401 - re-exported
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
    OUTPUT_ENTRIES,
    check_output,
    clear_output,
)
from aistack.webdata.registration import register_output
from aistack.webdata.registration import registered_earlier as _registered_earlier
from aistack.webdata.spec import PipelineSpec
from aistack.webdata.taskfiles import atomic_write as _atomic_write
from aistack.webdata.taskfiles import write_done as _done
from aistack.webdata.tasks import (
    encode_file,
    input_stat,
    process_file,
    read_jsonl_gz,
)

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".warc", ".arc", ".wet", ".gz", ".zst", ".lz4", ".warc.gz", ".arc.gz")


def expand_inputs(paths: list[str], base: Path, *, output: Path | None = None) -> list[Path]:
    """Every archive file named, or inside a named directory (sorted, no duplicates).

    A folder's files under what a run writes in ``output`` (:data:`OUTPUT_ENTRIES`) are left
    out: with the output folder inside (or equal to) an input folder, a re-run read the first
    run's stage1/, dataset/ and .tasks/ files as inputs (refused as 'a different pipeline',
    and --fresh refused to delete them as inputs)."""
    skip = [(output / n).resolve() for n in OUTPUT_ENTRIES] if output is not None else []

    def ours(f: Path) -> bool:
        r = f.resolve()
        return any(r == e or e in r.parents for e in skip)

    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        p = p if p.is_absolute() else (base / p)
        if p.is_dir():
            files.extend(
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and not f.name.startswith(".") and not ours(f)
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


# The pipeline code's behaviour version: BUMP IT in any change that makes a run give other
# results for the same pipeline file and input (other documents kept or dropped, other text,
# tokens or shards), so that a run over an output of the older code computes the results
# again instead of resuming them ("nothing to do" with the old corpus), and the registered
# version gets a lineage node of its own. A change of speed or of wording alone needs none.
#   1  every version before this constant (outputs without ``code_version`` in their marker)
#   2  gopher_quality's ≥ 80 % alphabetic rule counts words, not punctuation tokens (d12c26d);
#      without tokenize, dataset/ (what register registers) holds the corpus text too
PIPELINE_CODE_VERSION = 2


def code_version() -> str:
    """The code a run's results come from: aistack's version and :data:`PIPELINE_CODE_VERSION`
    (``0.1.0+webdata.2``), part of the run's fingerprint and recorded in its marker."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("aistack")
    except PackageNotFoundError:  # (run from a source tree that is not installed)
        release = "unknown"
    return f"{release}+webdata.{PIPELINE_CODE_VERSION}"


def _spec_fingerprint(spec: PipelineSpec, files: list[Path], code: str | None = None) -> str:
    """The run's identity: the spec (but workers and executor), the input files and ``code``
    (:func:`code_version`); without ``code``, the spec and input alone (the fingerprint of
    outputs made before the code version was part of it)."""
    data = spec.model_dump(exclude={"workers", "executor"})
    if not data["input"]["dataset"]:  # (so an output made before it existed still resumes)
        del data["input"]["dataset"]
    data["files"] = [str(f.resolve()) for f in files]
    if code is not None:
        data["code_version"] = code
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _older_code(marker: dict[str, Any], fp: str, spec_fp: str, code: str) -> dict[str, Any] | None:
    """Where ``marker`` (an output's ``.tasks/spec.json``) is of this pipeline and input but
    another code version: why its results are computed again (report.json's ``recomputed``);
    else None (the same run, resumed; or another pipeline, which the caller refuses)."""
    old_code = marker.get("code_version")
    # (a marker without code_version: its fingerprint is of the spec and input alone)
    old_spec_fp = marker.get("spec_fingerprint") if old_code else marker.get("fingerprint")
    if marker.get("fingerprint") == fp or old_spec_fp != spec_fp:
        return None
    before = str(old_code) if old_code else "an earlier version (none recorded)"
    return {
        "reason": f"the output held results of the same pipeline and input made by {before}, "
        f"and this code is {code}: results can differ between them, so every stage was "
        "computed again (nothing was resumed)",
        "code_version_before": old_code,
        "code_version": code,
    }


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
    files = expand_inputs(spec.input.paths, base, output=out) if spec.input.paths else []
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
        # (the leases on its references, if any; a Ray session the runner opened)
        with contextlib.ExitStack() as held, TaskRunner(executor=executor, workers=workers) as tr:
            return _run_pipeline(
                spec, spec_run, out, files, base=base, runner=tr, fresh=fresh,
                progress=progress, skip_bad=skip_bad, datasets=datasets, held=held,
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
    runner: TaskRunner,
    fresh: bool,
    progress: Progress | None,
    skip_bad: bool = False,
    datasets: list[DatasetInput] | None = None,
    held: contextlib.ExitStack[Any] | None = None,
) -> dict[str, Any]:
    """The run itself, with the output folder locked (``spec_run``: ``spec`` with its step
    files made absolute; ``datasets``: the input dataset versions, whose files are the last
    of ``files``; ``held``: holds the run's leases on its references until the run ends;
    ``runner`` runs the process and encode tasks)."""
    workers, executor = runner.workers, runner.executor
    datasets = datasets or []
    pinned_files = {f for d in datasets for f in d.files}
    code = code_version()
    fp = _spec_fingerprint(spec, files, code)
    state = out / ".tasks"
    recomputed = None
    deleted: dict[str, Any] = {}  # the marker of the run whose results are deleted
    if (state / "spec.json").exists():
        with contextlib.suppress(OSError, ValueError):
            deleted = json.loads((state / "spec.json").read_text())
        if not isinstance(deleted, dict):
            deleted = {}
        if not fresh:
            recomputed = _older_code(deleted, fp, _spec_fingerprint(spec, files), code)
    if fresh or recomputed:  # (a dataset's files are linked or copied again: the store keeps them)
        if recomputed:
            log.warning("%s: %s", out, recomputed["reason"])
        clear_output(out, protect=[*(f for f in files if f not in pinned_files), base])
    else:
        deleted = {}
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
    _done(
        state / "spec.json",
        {
            "fingerprint": fp,
            "spec_fingerprint": _spec_fingerprint(spec, files),  # (spec and input alone)
            "code_version": code,
            "spec": spec.model_dump(),
        },
    )
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
    if deleted:  # the deleted run's own reference, if it was not moved to a lineage node
        drop_earlier_reference(deleted, referrer)
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
            if then is not None and f not in pinned_files and then != input_stat(f):
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
    ran_procs = runner.run(process_file, todo, stage="process", progress=progress)
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
            what, hint = _why_nothing_kept(procs, len(files), dedup_stats)
            raise ValidationError(f"{exc.message}: {what}", hint=hint or exc.hint) from None
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
    ran_encs = runner.run(encode_file, todo, stage="encode", progress=progress)
    for r in ran_encs:
        enc_results[r["task"]] = r
    wall_encode = time.perf_counter() - t4
    encs = [enc_results[i] for i in range(len(files))]
    for i, e in enumerate(encs):
        if not e["docs"]:  # header-only shards (written by earlier versions) join no dataset
            (out / "dataset" / f"shard-{i:05d}.bin").unlink(missing_ok=True)
    if tok_spec is None:  # no shards: the cleaned text is what the dataset holds
        _corpus_into_dataset(out, encs)

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
    if tok_info:  # (how the tokenizer was made: a trained one may hold fewer ids than asked)
        report["tokenizer"] = tok_info
    if input_datasets:
        report["input_datasets"] = input_datasets
    if input_refs:
        report["input_references"] = input_refs
    if recomputed:
        report["recomputed"] = recomputed
    report["code_version"] = code
    # in the report's own order (steps as the pipeline runs them, languages by count); the
    # dataset's copy has sorted keys: its bytes are part of the dataset version's identity
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "dataset" / "report.json").write_text(
        json.dumps({"counts": report["counts"]}, indent=2, sort_keys=True)
    )
    from aistack.webdata.report import bad_files_count, render_text

    (out / "report.txt").write_text(render_text(report))  # (again after the register step)

    reg = spec.step("register")
    c = report["counts"]
    if reg is None and not (c["documents_out"] or c["html_documents"] or c["text_documents"]):
        if not report["bad_files"]:  # (bad files: listed, exit 1 — the CLI says it)
            # an input of no page at all (images, feeds, WAT metadata) is no corpus: not 0
            what, hint = _why_nothing_kept(procs, len(files), dedup_stats)
            raise ValidationError(
                f"input: no document to process: {what}",
                hint=f"{hint or 'report.txt says what each record was'}; the report is in "
                f"{out / 'report.txt'}",
            )
    if reg is not None:
        reg_done = state / "register.done"
        earlier = _registered_earlier(reg_done)
        bad = report["bad_files"]
        if earlier is None and not report["counts"]["documents_out"] and (skip_bad or not bad):
            # (an empty version registered with exit 0 looked like a corpus; the versions
            # stored before are left as they are)
            what, hint = _why_nothing_kept(procs, len(files), dedup_stats)
            raise ValidationError(
                f"register: no document was kept, nothing to register: {what}",
                hint=(hint or "loosen the filters (report.txt lists the drops per filter)")
                + f"; the report is in {out / 'report.txt'}",
            )
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


def _corpus_into_dataset(out: Path, encs: list[dict[str, Any]]) -> None:
    """A pipeline without ``tokenize`` has no shards: its product is the cleaned text, so
    ``dataset/corpus-NNNNN.jsonl.gz`` (named as the shards are) is each input file's corpus
    file that kept documents, a hard link to ``corpus/NNNNN.jsonl.gz`` (a copy where the file
    system has none), and the register step registers them with ``report.json`` (it
    registered ``report.json`` alone). A resumed run links the same files again."""
    folder = out / "dataset"
    keep = {f"corpus-{i:05d}.jsonl.gz" for i, e in enumerate(encs) if e["docs"]}
    for old in folder.glob("corpus-*.jsonl.gz"):
        if old.name not in keep:
            old.unlink()
    for name in sorted(keep):
        src, dst = out / "corpus" / name.removeprefix("corpus-"), folder / name
        with contextlib.suppress(OSError):
            if dst.samefile(src):
                continue
        tmp = folder / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:  # (no hard links here: a copy)
            shutil.copyfile(src, tmp)
        tmp.replace(dst)


def _why_nothing_kept(
    procs: list[dict[str, Any]], n_files: int, dedup_stats: dict[str, Any]
) -> tuple[str, str | None]:
    """Why a run kept no document, and what to do (None: loosen the filters, which the
    caller says): every page dropped (by which filters), or no page at all in the input
    (which records it held instead)."""
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
    pages = sum(r["html"] + r.get("texts", 0) for r in procs)
    hint = None
    if pages or sum(drops.values()):  # (read/empty_text: WET records without text)
        what = f"all dropped (docs per filter/reason: {why})"
    else:  # (a crawl of images or feeds only: no filter dropped anything)
        skipped: Counter[str] = Counter()
        for r in procs:
            skipped.update(r.get("skipped") or {})
        records = sum(r["records"] for r in procs)
        kinds = ", ".join(f"{k} {v:,}" for k, v in skipped.most_common(5))
        what = (
            f"of {records:,} record{'' if records == 1 else 's'}, none is an HTML "
            f"page or a WET text{f' (skipped: {kinds})' if kinds else ''}"
        )
        hint = (
            "give input.paths WARC/ARC files with HTML responses (text/html or "
            "application/xhtml+xml, HTTP status 200) or WET files"
        )
        if skipped.get("format_wet"):  # (responses were there, read as WET: not pages)
            hint = (
                "input.format: wet reads only WET text (conversion) records, and "
                f"{skipped['format_wet']:,} response records were skipped: use format: auto "
                "(or warc) to read them"
            )
    read = f"{pages:,} page{'' if pages == 1 else 's'} read from {n_files:,} file" + (
        "" if n_files == 1 else "s"
    )
    return f"{read}, {what}{bad_txt}", hint


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
        info = {
            "trained": True,
            "train_docs": len(texts),
            "vocab_size_asked": tok_spec.vocab_size,
            "min_frequency": tok_spec.min_frequency,
        }
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
    notes: Counter[str] = Counter()  # pages changed but kept (extract/pruned_deep_nesting)
    skipped: Counter[str] = Counter()  # records read that are not pages nor texts, by why
    unreadable: list[dict[str, Any]] = []
    for p in procs:
        for name, s in p["steps"].items():
            cur = steps.setdefault(name, {"in": 0, "out": 0})
            cur["in"] += s["in"]
            cur["out"] += s["out"]
        drops.update(p["drops"])
        langs.update(p["languages"])
        pii.update(p["pii"])
        notes.update(p.get("notes") or {})  # (absent in results of older runs)
        skipped.update(p.get("skipped") or {})  # (absent in results of older runs)
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
        # the other records, by why: records = html_documents + text_documents + these +
        # drops["read/empty_text"] (WET records without text)
        "skipped_records": dict(sorted(skipped.items(), key=lambda kv: (-kv[1], kv[0]))),
    }
    if any("skipped" not in p for p in procs):  # a run resumed from tasks of an older version
        del counts["skipped_records"]  # (they did not count them: no false zeros)
    counts |= {
        "documents_out": docs_out,
        "steps": steps,
        "drops": dict(sorted(drops.items())),
        "notes": dict(sorted(notes.items())),
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
        # records that could not be read (cut short ones included); a file unreadable as a
        # whole is not a record: it is counted in bad_files (both are listed in unreadable)
        "unreadable_records": sum(1 for u in unreadable if u.get("kind") != "file"),
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
