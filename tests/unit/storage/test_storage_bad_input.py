"""Bad arguments to the storage Python API (``Datasets``): each is a ValidationError that names
the argument, raised before anything is written, and nothing already stored is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.storage import Datasets
from aistack.storage.refs import check_name, check_tag, parse_ref


@pytest.fixture
def ds(tmp_path: Path) -> Datasets:
    return Datasets.connect(f"sqlite:///{tmp_path / 'db'}", str(tmp_path / "objects"))


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    d.mkdir()
    (d / "a.txt").write_text("hello")
    (d / "b.bin").write_bytes(b"x" * 10)
    return d


def _names(ds: Datasets) -> list[str]:
    return [s.name for s in ds.ls()]


# -- names, tags, refs --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["corpus\n", "a\n"])
def test_a_name_with_a_trailing_newline_is_refused(ds: Datasets, src: Path, name: str) -> None:
    """``$`` matches before a final newline: ``add("corpus\\n")`` made a dataset of that name."""
    with pytest.raises(ValidationError, match="invalid dataset name"):
        check_name(name)
    with pytest.raises(ValidationError, match="invalid dataset name"):
        ds.add(name, src)
    assert _names(ds) == []


def test_a_tag_with_a_trailing_newline_is_refused(ds: Datasets, src: Path) -> None:
    with pytest.raises(ValidationError, match="invalid tag"):
        check_tag("raw\n")
    with pytest.raises(ValidationError, match="invalid tag"):
        ds.add("corpus", src, tags=["raw\n"])
    assert _names(ds) == []


@pytest.mark.parametrize("ref", ["c@v\u0661", "c@\u0663"])  # Arabic-Indic digits
def test_a_version_is_ascii_digits(ref: str) -> None:
    """``\\d`` matches any Unicode digit: ``c@v١`` named c@v1."""
    with pytest.raises(ValidationError, match="invalid dataset reference") as exc:
        parse_ref(ref)
    assert exc.value.details.get("field") == "ref"


@pytest.mark.parametrize("ref", [1, None, b"corpus", ["corpus"]])
def test_a_ref_that_is_no_string_says_so(ds: Datasets, ref: Any) -> None:
    with pytest.raises(ValidationError, match="dataset reference .* is not a string") as exc:
        ds.resolve(ref)
    assert exc.value.details.get("field") == "ref"


# -- add ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", [None, 1, b"/tmp", ["x"]])
def test_add_with_a_path_that_is_no_path(ds: Datasets, path: Any) -> None:
    with pytest.raises(ValidationError, match="path") as exc:
        ds.add("corpus", path)
    assert exc.value.details.get("field") == "path"
    assert _names(ds) == []


def test_add_with_a_nul_in_the_path(ds: Datasets, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="path .*NUL") as exc:
        ds.add("corpus", f"{tmp_path}/a\x00b")
    assert exc.value.details.get("field") == "path"


@pytest.mark.parametrize("tags", ["raw", None, 1, {"raw": 1}])
def test_add_with_tags_that_are_no_list(ds: Datasets, src: Path, tags: Any) -> None:
    """A string was split into one tag per letter, a dict into its keys, None a TypeError."""
    with pytest.raises(ValidationError, match="tags") as exc:
        ds.add("corpus", src, tags=tags)
    assert exc.value.details.get("field") == "tags"
    assert _names(ds) == []


@pytest.mark.parametrize("message", [["m"], {"a": 1}, 1, b"bytes", "a\x00b"])
def test_add_with_a_message_that_is_no_text(ds: Datasets, src: Path, message: Any) -> None:
    """A list or dict was a raw SQLAlchemy error after the upload, and left an empty dataset."""
    ds.add("corpus", src)
    with pytest.raises(ValidationError, match="message") as exc:
        ds.add("other", src, message=message)
    assert exc.value.details.get("field") == "message"
    assert _names(ds) == ["corpus"]
    assert [v.ref for v in ds.log("corpus")] == ["corpus@v1"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_add_with_metadata_that_json_cannot_carry(ds: Datasets, src: Path, value: float) -> None:
    """NaN is no JSON: a JSON column of PostgreSQL refuses it after the upload."""
    with pytest.raises(ValidationError, match="metadata") as exc:
        ds.add("corpus", src, metadata={"loss": value})
    assert exc.value.details.get("field") == "metadata"
    assert _names(ds) == []


def test_add_with_a_progress_that_is_not_callable(ds: Datasets, src: Path) -> None:
    with pytest.raises(ValidationError, match="progress") as exc:
        ds.add("corpus", src, progress=1)  # type: ignore[arg-type]
    assert exc.value.details.get("field") == "progress"
    assert _names(ds) == []


# -- get ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dest", [None, 1, b"/tmp/x", ["x"], "a\x00b"])
def test_get_with_a_dest_that_is_no_path(ds: Datasets, src: Path, dest: Any) -> None:
    v = ds.add("corpus", src)
    with pytest.raises(ValidationError, match="dest") as exc:
        ds.get(v.ref, dest)
    assert exc.value.details.get("field") == "dest"


@pytest.mark.parametrize("arg", ["only", "progress"])
def test_get_with_a_callback_that_is_not_callable(
    ds: Datasets, src: Path, tmp_path: Path, arg: str
) -> None:
    v = ds.add("corpus", src)
    with pytest.raises(ValidationError, match=arg) as exc:
        ds.get(v.ref, tmp_path / "out", **{arg: 1})
    assert exc.value.details.get("field") == arg
    assert not (tmp_path / "out").exists()


# -- references ---------------------------------------------------------------------------------
@pytest.mark.parametrize("refs", [None, "job:42", ["job:42"], [("job",)], [("job", "42", "x")]])
def test_remove_references_with_refs_that_are_no_pairs(ds: Datasets, src: Path, refs: Any) -> None:
    v = ds.add("corpus", src)
    ds.add_reference(v.ref, "job", "42")
    with pytest.raises(ValidationError, match="refs") as exc:
        ds.remove_references(v.ref, refs)
    assert exc.value.details.get("field") == "refs"
    assert [(r["kind"], r["id"]) for r in ds.references(v.ref)] == [("job", "42")]


@pytest.mark.parametrize("ident", ["a\x00b", "a\nb"])
def test_a_job_id_with_control_characters_is_refused(ds: Datasets, src: Path, ident: str) -> None:
    """PostgreSQL refuses a NUL in text: a raw DataError."""
    v = ds.add("corpus", src)
    with pytest.raises(ValidationError, match="job id") as exc:
        ds.add_reference(v.ref, "job", ident)
    assert exc.value.details.get("field") == "id"
    assert ds.references(v.ref) == []


# -- lineage ------------------------------------------------------------------------------------
@pytest.mark.parametrize("edges", [None, 1, "ab", [1], [("job:1",)], [["job:1", "run:a", "x"]]])
def test_record_edges_with_edges_that_are_no_pairs(ds: Datasets, edges: Any) -> None:
    with pytest.raises(ValidationError, match="edges") as exc:
        ds.record_edges(edges)
    assert exc.value.details.get("field") == "edges"


@pytest.mark.parametrize("arg", ["inputs", "outputs"])
@pytest.mark.parametrize("value", [None, 1, "corpus@v1"])
def test_record_lineage_with_refs_that_are_no_list(
    ds: Datasets, src: Path, arg: str, value: Any
) -> None:
    ds.add("corpus", src)
    kw = {"inputs": ["corpus@v1"], "outputs": [], arg: value}
    with pytest.raises(ValidationError, match=arg) as exc:
        ds.record_lineage(kw["inputs"], "1", kw["outputs"])
    assert exc.value.details.get("field") == arg


# -- gc -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("grace", [float("nan"), -1.0, None, "x", True])
def test_gc_with_a_grace_that_is_no_duration_deletes_nothing(
    ds: Datasets, src: Path, grace: Any
) -> None:
    """NaN compares false with every age: a real gc deleted the objects an add was writing."""
    ds.add("corpus", src)
    oid, _ = ds.store.put(b"an object a running add just wrote")
    with pytest.raises(ValidationError, match="grace_s") as exc:
        ds.gc(dry_run=False, grace_s=grace)
    assert exc.value.details.get("field") == "grace_s"
    assert ds.store.exists(oid)


@pytest.mark.parametrize("dry_run", [None, "no", 0])
def test_gc_with_a_dry_run_that_is_no_bool(ds: Datasets, src: Path, dry_run: Any) -> None:
    """``dry_run=None`` (or 0) deleted for real."""
    oid, _ = ds.store.put(b"orphan")
    with pytest.raises(ValidationError, match="dry_run") as exc:
        ds.gc(dry_run=dry_run, grace_s=0)
    assert exc.value.details.get("field") == "dry_run"
    assert ds.store.exists(oid)


# -- flags --------------------------------------------------------------------------------------
@pytest.mark.parametrize("force", ["no", "false", 0, 1, None])
def test_get_with_a_force_that_is_no_bool_replaces_nothing(
    ds: Datasets, src: Path, tmp_path: Path, force: Any
) -> None:
    """``force="no"`` is true: the files in the way were replaced."""
    v = ds.add("corpus", src)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.txt").write_text("my own edits")
    with pytest.raises(ValidationError, match="force must be True or False") as exc:
        ds.get(v.ref, out, force=force)
    assert exc.value.details.get("field") == "force"
    assert (out / "a.txt").read_text() == "my own edits"
    assert not (out / "b.bin").exists()


@pytest.mark.parametrize("if_changed", ["no", 1, None])
def test_add_with_an_if_changed_that_is_no_bool(ds: Datasets, src: Path, if_changed: Any) -> None:
    """``if_changed="no"`` made no new version (it returned v1 as unchanged)."""
    ds.add("corpus", src)
    with pytest.raises(ValidationError, match="if_changed") as exc:
        ds.add("corpus", src, if_changed=if_changed)
    assert exc.value.details.get("field") == "if_changed"
    assert [v.ref for v in ds.log("corpus")] == ["corpus@v1"]


@pytest.mark.parametrize("many", [False, True])
def test_dropping_a_reference_with_a_force_that_is_no_bool_drops_nothing(
    ds: Datasets, src: Path, many: bool
) -> None:
    """``force="no"`` dropped the reference without asking whether its holder still runs."""
    v = ds.add("corpus", src)
    ds.add_reference(v.ref, "job", "42")
    with pytest.raises(ValidationError, match="force must be True or False") as exc:
        if many:
            ds.remove_references(v.ref, [("job", "42")], force="no")  # type: ignore[arg-type]
        else:
            ds.remove_reference(v.ref, "job", "42", force="no")  # type: ignore[arg-type]
    assert exc.value.details.get("field") == "force"
    assert [(r["kind"], r["id"]) for r in ds.references(v.ref)] == [("job", "42")]


def test_log_with_a_deleted_that_is_no_bool(ds: Datasets, src: Path) -> None:
    ds.add("corpus", src)
    with pytest.raises(ValidationError, match="deleted") as exc:
        ds.log("corpus", deleted="no")  # type: ignore[arg-type]
    assert exc.value.details.get("field") == "deleted"
