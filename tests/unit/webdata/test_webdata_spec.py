from __future__ import annotations

from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.webdata.spec import load_spec, parse_spec

BASE = {"input": {"paths": ["x"]}, "output": "o"}


def test_defaults_are_fineweb() -> None:
    spec = parse_spec({**BASE, "steps": ["extract", "gopher_quality", "dedup"]})
    kinds = [k for k, _ in spec.parsed_steps()]
    assert kinds == ["extract", "gopher_quality", "dedup"]
    mh = spec.step("dedup").minhash  # type: ignore[union-attr]
    assert (mh.ngram, mh.num_hashes, mh.bands, mh.rows) == (5, 112, 14, 8)
    assert (mh.verify, mh.threshold) == (True, 0.8)  # FineWeb's LSH, candidates checked
    off = parse_spec({**BASE, "steps": [{"dedup": {"minhash": {"verify": False}}}]})
    assert off.step("dedup").minhash.verify is False  # type: ignore[union-attr]
    assert spec.step("gopher_quality").min_doc_words == 50  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("steps", "needle"),
    [
        ([{"c4": {"min_num_sentencs": 3}}], "steps[0].c4.min_num_sentencs"),
        (["dedup", "c4"], "steps[1]: c4 is out of order"),
        (["tokenize", "tokenize"], "out of order"),
        (["c4", "extract"], "extract must be the first step"),
        (["nope"], "unknown step 'nope'"),
        ([{"dedup": {"minhash": {"bands": 3}}}], "bands × rows"),
        ([{"dedup": {"minhash": {"threshold": 0}}}], "steps[0].dedup.minhash.threshold"),
        ([{"dedup": {"minhash": {"verify_threshold": 0.8}}}], "minhash.verify_threshold"),
        ([{"language": {"threshold": 2}}], "steps[0].language.threshold"),
        ([{"c4": 1, "fineweb": 2}], "steps[0] must be one mapping"),
    ],
)
def test_bad_steps_name_the_field(steps: list[object], needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_spec({**BASE, "steps": steps})
    assert needle in str(exc.value)


def test_top_level_typo() -> None:
    with pytest.raises(ValidationError, match="outpt: Extra inputs"):
        parse_spec({"input": {"paths": ["x"]}, "outpt": "o", "steps": ["c4"]})


def test_load_spec_files(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not found"):
        load_spec(tmp_path / "none.yaml")
    with pytest.raises(ValidationError, match="is a folder"):  # QA-2: said "not found"
        load_spec(tmp_path)
    p = tmp_path / "p.yaml"
    p.write_text("input: [oops")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_spec(p)
    p.write_text("input: {paths: [a]}\noutput: out\nsteps: [extract]\n")
    spec, base = load_spec(p, workers=3)
    assert spec.workers == 3 and base == tmp_path.resolve()


def test_example_pipeline_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "webdata" / "pipeline.yaml"
    spec, _ = load_spec(example)
    assert [k for k, _ in spec.parsed_steps()][-1] == "register"


def test_package_all_sorted_and_complete() -> None:
    import aistack.webdata as wd

    assert wd.__all__ == sorted(wd.__all__)
    assert all(hasattr(wd, n) for n in wd.__all__)


def test_step_validator_message_has_no_pydantic_prefix() -> None:
    """QA-2 #10: 'steps[1].dedup.minhash: Value error, bands × rows …'."""
    with pytest.raises(ValidationError) as exc:
        parse_spec({**BASE, "steps": [{"dedup": {"minhash": {"bands": 10}}}]})
    assert "steps[0].dedup.minhash: bands × rows must equal num_hashes" in str(exc.value)
    assert "Value error" not in str(exc.value)


@pytest.mark.parametrize("name", ["bad name!", "m@x", "-lead", "x" * 129])
def test_register_name_is_checked_when_the_spec_is_read(tmp_path: Path, name: str) -> None:
    """`register: {name: "bad name!"}` ran the whole pipeline, then the register step failed."""
    p = tmp_path / "p.yaml"
    p.write_text(
        f"input: {{paths: [a]}}\noutput: out\nsteps: [extract, {{register: {{name: '{name}'}}}}]\n"
    )
    with pytest.raises(ValidationError) as ei:
        load_spec(p)
    assert f"steps[1].register.name: {name!r} is not a valid dataset name" in ei.value.message
    assert "letters, digits, '.', '_' or '-'" in ei.value.message
    ok = parse_spec({**BASE, "steps": [{"register": {"name": "web-corpus_v2.1"}}]})
    assert ok.step("register").name == "web-corpus_v2.1"  # type: ignore[union-attr]


def test_a_spec_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    """A Latin-1 spec was a UnicodeDecodeError traceback."""
    p = tmp_path / "p.yaml"
    p.write_bytes(
        "name: caf\u00e9\ninput: {paths: [a]}\noutput: o\nsteps: [extract]\n".encode("latin-1")
    )
    with pytest.raises(ValidationError) as ei:
        load_spec(p)
    assert ei.value.message == f"pipeline file {str(p)!r} is not UTF-8 text (byte 0xe9 at offset 9)"
    assert "save it as UTF-8" in (ei.value.hint or "")
