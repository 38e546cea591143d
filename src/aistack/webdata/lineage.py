"""Where a pipeline's input comes from and where its output goes in the lineage.

* Input dataset versions (``input.dataset``): pinned when the run starts
  (:func:`resolve_dataset_inputs`), referenced by the run for as long as a job's reference
  lasts (:func:`reference_inputs`; ``aistack data rm`` and gc keep them), and put under
  ``input-datasets/NAME@vN/`` in the output folder before the process stage (on a local
  store hard links to the store's objects, and for a file cut into chunks a reference the
  readers open in the store, see :func:`materialize_inputs`).
* Lineage of a registered corpus: ``file:NAME@sha256:HEX`` (each local input file, by the
  digest its process task took, :func:`file_sha256`) and ``dataset:NAME@vN`` (each input
  dataset version) → ``webdata:NAME@ID`` (the run, :func:`input_lineage`) →
  ``dataset:CORPUS@vN`` (:func:`record_input_lineage`).

The storage layer (aistack.storage) is imported lazily: a pipeline of local files that
registers nothing runs without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aistack.errors import ConflictError, NotFoundError, ValidationError
from aistack.webdata.taskfiles import write_done as _done

if TYPE_CHECKING:
    from aistack.webdata.spec import PipelineSpec

log = logging.getLogger(__name__)


INPUT_DATASETS = "input-datasets"  # the output's folder that holds input versions' files


@dataclass(kw_only=True)
class DatasetInput:
    """A dataset version read as input: ``ref`` pinned (``NAME@vN``), and the files the
    pipeline reads, as they will lie under ``folder`` (every file of the version but those
    named ``.*``, which :func:`~aistack.webdata.pipeline.expand_inputs` skips in a folder too), sorted by path."""

    ref: str
    folder: Path
    files: list[Path]


def _datasets() -> Any:
    try:
        from aistack.storage import Datasets  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ValidationError(
            "input.dataset needs aistack.storage, which could not be imported",
            hint="install aistack with its default dependencies, or name local files in "
            "input.paths",
        ) from exc
    return Datasets.from_settings()


def resolve_dataset_inputs(refs: list[str], out: Path) -> list[DatasetInput]:
    """Pin each reference of ``input.dataset`` to the version it names now (a version named
    twice is read once) and list its files; writes nothing. A dataset or version that does
    not exist is a NotFoundError that says which ones do."""
    if not refs:
        return []
    ds = _datasets()
    found: dict[str, DatasetInput] = {}
    for ref in refs:
        try:
            v = ds.resolve(ref)
        except NotFoundError as exc:
            raise NotFoundError(
                f"input.dataset: {exc.message}", hint=exc.hint, **exc.details
            ) from None
        if v.ref in found:
            continue
        folder = out / INPUT_DATASETS / v.ref
        paths = sorted(e.path for e in ds.files(v))
        files = [folder / p for p in paths if not p.rpartition("/")[2].startswith(".")]
        if not files:
            raise ValidationError(
                f"input.dataset: {v.ref} holds no files to read"
                + (f" (only {len(paths):,} named '.*', which are skipped)" if paths else ""),
                hint=f"name a version with WARC/ARC/WET files (`aistack data log {v.name}`)",
            )
        found[v.ref] = DatasetInput(ref=v.ref, folder=folder, files=files)
    return list(found.values())


# The kind of reference a run takes on its input dataset versions (aistack.storage.refs)
REFERENCE_KIND = "webdata"


def run_referrer(name: str, fingerprint: str) -> str:
    """The id a run references its input versions by while its lineage node is not known yet
    (that one hashes the local inputs' digests, taken in the process stage): ``NAME@FP``,
    FP the run's fingerprint (``.tasks/spec.json``), so a resumed run takes the same one."""
    return f"{readable_id(name, 64)}@{fingerprint}"


def reference_inputs(datasets: list[DatasetInput], ident: str) -> dict[str, Any] | None:
    """Reference each input version as ``webdata:IDENT`` before the run reads it, so that
    ``aistack data rm`` (and so gc) refuses to delete it under the run, as it does a job's
    inputs. Taking it again (a resumed run) adds nothing. A version deleted since the run
    pinned it is a ConflictError, and nothing has been read: the references this call took
    on the other versions are dropped again (none is left that no run names). Returns
    report.json's ``input_references`` (``{"by": "webdata:IDENT", "versions": [...]}``), None
    without input versions.

    As a job's, the reference outlives the run (what was made from the version can be made
    again): a run that registers a corpus moves it to its lineage node
    (:func:`move_references`); ``aistack data unref NAME@vN --by webdata:IDENT`` drops it."""
    if not datasets:
        return None
    ds = _datasets()
    taken: list[str] = []  # the references this call added (a resumed run's were there)
    for d in datasets:
        try:
            had = any(
                r["kind"] == REFERENCE_KIND and r["id"] == ident for r in ds.references(d.ref)
            )
            ds.add_reference(d.ref, REFERENCE_KIND, ident)
        except Exception as exc:
            # none is kept: the run stops here, and a reference nothing names any more would
            # keep the other versions from `aistack data rm` for good
            for ref in taken:
                try:
                    ds.remove_reference(ref, REFERENCE_KIND, ident)
                except Exception as undo:  # noqa: BLE001 - the first error is the one to tell
                    log.warning(
                        "could not drop the reference %s:%s to %s (`aistack data unref %s "
                        "--by %s:%s` drops it): %s",
                        REFERENCE_KIND, ident, ref, ref, REFERENCE_KIND, ident, undo,
                    )  # fmt: skip
            if isinstance(exc, NotFoundError | ConflictError):
                raise ConflictError(
                    f"input.dataset: {d.ref} was deleted after this run pinned it "
                    f"({getattr(exc, 'message', exc)}); nothing was read",
                    hint="run again to pin the versions there are now, or name another "
                    f"version (`aistack data log {d.ref.partition('@')[0]}` lists them)",
                    ref=d.ref,
                ) from None
            raise
        if not had:
            taken.append(d.ref)
    return {"by": f"{REFERENCE_KIND}:{ident}", "versions": [d.ref for d in datasets]}


def drop_earlier_reference(marker: dict[str, Any], current: str) -> None:
    """Drop the reference ``webdata:NAME@FP`` that the run whose results were just deleted
    (``--fresh``, or results of older code: ``marker`` is its ``.tasks/spec.json``) took on
    its input versions, unless it is ``current`` (this run's). A run that registered its
    corpus had moved it to its lineage node, which stays (the version was made from them);
    one that did not would otherwise keep them from ``aistack data rm`` with nothing naming
    it. A failure is logged with the command that drops it: the run goes on."""
    spec = marker.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    given = spec.get("input")
    refs = given.get("dataset") if isinstance(given, dict) else None
    name, fp = spec.get("name"), marker.get("fingerprint")
    if not refs or not isinstance(refs, list) or not name or not fp:
        return
    ident = run_referrer(str(name), str(fp))
    if ident == current:
        return
    for ref in refs:
        try:
            _datasets().remove_reference(str(ref), REFERENCE_KIND, ident)
        except Exception as exc:  # noqa: BLE001 - gone meanwhile, or another store
            log.warning(
                "could not drop the earlier run's reference %s:%s to %s (`aistack data unref "
                "%s --by %s:%s` drops it): %s",
                REFERENCE_KIND, ident, ref, ref, REFERENCE_KIND, ident, exc,
            )  # fmt: skip


def move_references(datasets: list[DatasetInput], old: str, new: str) -> None:
    """Move the run's references from ``webdata:OLD`` to ``webdata:NEW`` (its lineage node's
    id, once known): the new one is taken before the old one is dropped, so the versions are
    never unreferenced in between."""
    if not datasets or old == new:
        return
    ds = _datasets()
    for d in datasets:
        ds.add_reference(d.ref, REFERENCE_KIND, new)
        ds.remove_reference(d.ref, REFERENCE_KIND, old)


def _stat_key(files: list[Path]) -> str | None:
    """A digest of the files' (size, mtime, inode); None when one is missing."""
    h = hashlib.sha256()
    for f in files:
        try:
            st = os.stat(f)
        except OSError:
            return None
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    return h.hexdigest()


def materialize_inputs(
    datasets: list[DatasetInput],
    pending: set[Path],
    state: Path,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Put the files of each input dataset version under its ``folder`` (``Datasets.get``
    with hard links), where the process tasks read them; returns what was done, one entry
    per version (report.json's ``input_datasets``).

    On a local store a file stored as one object is a hard link to it: nothing is copied,
    and the version's bytes are read in place (never edit these files: they *are* the
    store's objects; ``--fresh`` only unlinks them). A file the store cut into chunks (most
    WARCs: every file over the chunker's minimum size) is not assembled either: in its place
    lies a small *dataset file reference* (:func:`~aistack.webdata.readers.open_input`), and
    the process task reads the file from the store's chunks (``Datasets.open``), each chunk
    verified as it is read (``in_store`` counts them). From a remote store every file is
    downloaded, every object verified first.

    A version none of whose files a process task still has to read (``pending``) is not put
    there at all (a resumed run reads nothing again), nor one put there by an earlier run
    whose files are still as it left them (``.tasks/input-datasets.done``)."""
    if not datasets:
        return []
    marker = state / "input-datasets.done"
    try:
        earlier = json.loads(marker.read_text())
    except (OSError, ValueError):
        earlier = {}
    earlier = earlier if isinstance(earlier, dict) else {}
    total = sum(len(d.files) for d in datasets)
    n = 0
    if progress:
        progress("input", 0, total)
    ds: Any = None
    done: list[dict[str, Any]] = []
    for d in datasets:
        entry: dict[str, Any] = {"ref": d.ref, "folder": str(d.folder), "files": len(d.files)}
        before = earlier.get(d.ref)
        if not pending.intersection(d.files):
            entry["materialized"] = "not needed (every file of it was processed)"
        elif isinstance(before, dict) and before.get("stat") == _stat_key(d.files):
            entry["materialized"] = "by an earlier run"
            entry.update({k: before[k] for k in ("linked", "copied", "in_store") if k in before})
        else:
            ds = ds or _datasets()
            got = _put_version(ds, d)
            entry["materialized"] = "now"
            entry.update(got)
            earlier[d.ref] = {"stat": _stat_key(d.files)}
            earlier[d.ref].update({k: got[k] for k in ("linked", "copied", "in_store") if k in got})
            _done(marker, earlier)
            log.info(
                "input %s: %d files linked, %d copied, %d read in the store, %d already there",
                d.ref,
                got["linked"],
                got["copied"],
                got.get("in_store", 0),
                got["unchanged"],
            )
        done.append(entry)
        n += len(d.files)
        if progress:
            progress("input", n, total)
    return done


def _put_version(ds: Any, d: DatasetInput) -> dict[str, int]:
    """Put the files of ``d``'s version under ``d.folder``: ``Datasets.get`` with hard links,
    except that on a local store a file cut into chunks gets a dataset file reference in its
    place (``in_store``; only when there are such files). Returns ``linked``, ``copied``,
    ``unchanged`` (and ``in_store``)."""
    if not ds.store.backend.is_local:
        got = ds.get(d.ref, d.folder, link="hardlink", force=True)
        return {"linked": got.linked, "copied": got.copied, "unchanged": got.unchanged}
    from aistack.webdata.readers import dataset_file_reference
    from aistack.webdata.taskfiles import atomic_write

    v = ds.resolve(d.ref)
    entries = ds.files(v)
    chunked = [e for e in entries if len(e.chunks) > 1]
    if not chunked:
        # (force: the folder is the pipeline's; a file changed there is replaced)
        got = ds.get(d.ref, d.folder, link="hardlink", force=True)
        return {"linked": got.linked, "copied": got.copied, "unchanged": got.unchanged}
    linked = copied = unchanged = 0
    if len(chunked) < len(entries):
        # the files kept as one object (force: the folder is the pipeline's, a file changed
        # there is replaced)
        got = ds.get(
            v.ref, d.folder, link="hardlink", force=True, only=lambda e: len(e.chunks) <= 1
        )
        linked, copied, unchanged = got.linked, got.copied, got.unchanged
    from aistack.storage.paths import safe_dest

    for e in chunked:
        # where Datasets.get would put the file: never through a symlink under the folder that
        # leads out of it (e.path is checked when the manifest is read)
        target = Path(safe_dest(d.folder, e.path))
        body = dataset_file_reference(v.ref, e.path, e.size, e.hash)
        try:
            st = target.lstat()  # (an earlier run's copy of the file is not read)
            if stat.S_ISREG(st.st_mode) and st.st_size == len(body) and target.read_bytes() == body:
                unchanged += 1
                continue
        except OSError:
            pass
        target.parent.mkdir(parents=True, exist_ok=True)
        # (a rename: an earlier run's copy or link there is replaced, never written into; not
        # fsynced, as there is one per input file: one a crash left short or empty changes the
        # folder's _stat_key, so the next run compares its bytes and writes it again)
        atomic_write(target, body, sync=False)
    return {"linked": linked, "copied": copied, "unchanged": unchanged, "in_store": len(chunked)}


def file_sha256(path: str | Path) -> str | None:
    """The SHA-256 of a file's bytes (hex), or None when it cannot be read (the reader then
    reports it as a bad file). A dataset file reference is hashed as the file it names."""
    from aistack.webdata.readers import open_input

    try:
        with open_input(path) as f:
            return hashlib.file_digest(f, "sha256").hexdigest()  # type: ignore[arg-type]
    except OSError:
        return None


# --------------------------------------------------------------------------- lineage

# characters a lineage id keeps as they are; every other one is percent-encoded (as in URLs)
_ID_SAFE = "+,="
_ID_MAX = 160  # characters of a name kept in a node id (its ends; the digest identifies it)


def readable_id(name: str, limit: int = _ID_MAX) -> str:
    """``name`` as printable ASCII without spaces, for a lineage node id: percent-encoded
    (``données 1.warc`` → ``donn%C3%A9es%201.warc``) and, past ``limit`` characters, its start
    and end joined by ``...`` (an escape is never cut)."""
    from urllib.parse import quote

    # (a name os.fsdecode gave surrogates for, its bytes not being UTF-8: those bytes, as %XX)
    parts = [quote(c, safe=_ID_SAFE, errors="surrogateescape") for c in name] or ["_"]
    text = "".join(parts)
    if len(text) <= limit:
        return text
    half = (limit - 3) // 2
    head: list[str] = []
    for c in parts:
        if sum(map(len, head)) + len(c) > half:
            break
        head.append(c)
    tail: list[str] = []
    for c in reversed(parts):
        if sum(map(len, tail)) + len(c) > half:
            break
        tail.append(c)
    return "".join(head) + "..." + "".join(reversed(tail))


def file_node(path: str | Path, sha256: str) -> str:
    """The lineage node of an input file: ``file:NAME@sha256:HEX``. The digest of its bytes
    is its identity, NAME (its file name) makes it readable: a copy of a crawl file under the
    same name, wherever it lies, is the same node; another file of that name is another."""
    return f"file:{readable_id(Path(path).name)}@sha256:{sha256}"


def input_lineage(
    spec: PipelineSpec,
    fingerprint: str,
    files: list[Path],
    procs: list[dict[str, Any]],
    state: Path,
    datasets: list[DatasetInput] | None = None,
) -> dict[str, Any]:
    """The lineage of a run's output: ``{"run": node, "inputs": [{"file", "node"}],
    "datasets": [{"ref", "node", "files"}], "not_recorded": [{"file", "reason"}]}``.

    A file read from an input dataset version has no node of its own: the pinned version
    (``dataset:NAME@vN``, in ``datasets``) is the input. It is the better identity: already
    immutable and content-addressed (its manifest holds every file's hash), one node instead
    of one per file, and one that joins the graph the version already has (the job or run
    that made it; ``aistack data lineage NAME@vN`` then also shows what used it).

    ``run`` is ``webdata:NAME@ID``, one node between the input files and the dataset version
    (as a job node is), so thousands of inputs hang off one node; ID hashes the pipeline
    (its fingerprint: spec, input paths and code version) and the inputs' digests, so a
    resumed run names the same node, and a run over changed files or by other code
    (:func:`~aistack.webdata.pipeline.code_version`) another one. Each input's SHA-256 comes from
    its process task; a task of an older run recorded none: the file is hashed now (read once)
    and the digest kept in the task's result. A file that could not be read at all gave the
    output nothing: it has no node (``not_recorded``)."""
    datasets = datasets or []
    pinned_files = {f for d in datasets for f in d.files}
    inputs: list[dict[str, str]] = []
    missing: list[dict[str, str]] = []
    for i, (f, p) in enumerate(zip(files, procs, strict=True)):
        if f in pinned_files:
            continue
        if "input_sha256" not in p:  # a task of a run made before digests were recorded
            p["input_sha256"] = file_sha256(f)
            _done(state / f"process-{i:05d}.done", p)
        digest = p["input_sha256"]
        if digest:
            inputs.append({"file": str(f), "node": file_node(f, digest)})
        else:
            missing.append({"file": str(f), "reason": "the file could not be read"})
    versions = [{"ref": d.ref, "node": f"dataset:{d.ref}", "files": len(d.files)} for d in datasets]
    nodes = [x["node"] for x in inputs] + [v["node"] for v in versions]
    key = json.dumps([fingerprint, nodes]).encode()
    run = f"webdata:{readable_id(spec.name, 64)}@{hashlib.sha256(key).hexdigest()[:16]}"
    return {"run": run, "inputs": inputs, "datasets": versions, "not_recorded": missing}


def record_input_lineage(ref: str, lineage: dict[str, Any]) -> dict[str, Any]:
    """Record ``file:… → webdata:… → dataset:REF`` (and ``dataset:INPUT@vN → webdata:…`` for
    each input dataset version) in aistack.storage's lineage, in one transaction (an edge is
    stored once: recording again adds nothing). Returns ``lineage`` with ``edges_added``."""
    from aistack.storage import Datasets  # type: ignore[attr-defined]

    run = lineage["run"]
    edges = [(x["node"], run) for x in lineage["inputs"]]
    edges += [(v["node"], run) for v in lineage.get("datasets") or []]
    edges = list(dict.fromkeys(edges))  # two copies of one file are one node
    edges.append((run, f"dataset:{ref}"))
    added = Datasets.from_settings().record_edges(edges)
    return {**lineage, "edges_added": added}
