"""A run resumes an output only when the code is the same: the fingerprint hashed the
pipeline file and the input files only, so after an upgrade that changed a filter (d12c26d:
gopher_quality's alphabetic rule) ``aistack webdata run`` without --fresh resumed every task
("nothing to do") and kept the old results, and the corpus it registered again shared the
lineage node ``webdata:NAME@ID`` of the one the old code made. Now the fingerprint holds the
code version (aistack's version and ``PIPELINE_CODE_VERSION``); an output of the same
pipeline and input made by other code is computed again, and the report says why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConflictError
from aistack.webdata import pipeline as pl
from aistack.webdata.filters import GopherQualityFilter
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.spec import parse_spec

TOWNS = ("Leeds", "York", "Hull", "Bath", "Ely", "Wells", "Derby", "Ripon")
# kept by the paper's rule (words), dropped by the one before d12c26d (all tokens: < 0.75)
PUNCTUATED = " ".join(
    f"Yes, the team met in {t}, and, later, with the board: plans, budgets, dates, notes."
    for t in TOWNS
)
PROSE = " ".join(
    f"The river runs through the valley of {t} and the farmers there have fields with wheat"
    for t in TOWNS
)


def _wet(path: Path, texts: dict[str, str]) -> str:
    from aistack.webdata.crawler import WarcWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    w = WarcWriter(path)
    for url, text in texts.items():
        w.write("conversion", url, text.encode(), content_type="text/plain")
    w.close()
    return str(path)


def _spec(inputs: list[str], out: Path, steps: list[Any] | None = None) -> Any:
    steps = steps or ["gopher_quality", "dedup", {"register": {"name": "wd-code"}}]
    return parse_spec({"name": "t", "input": {"paths": inputs}, "output": str(out), "steps": steps})


def _as_older_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this process the code before d12c26d: code version 1, gopher_quality's alpha
    share of all tokens."""
    monkeypatch.setattr(pl, "PIPELINE_CODE_VERSION", 1, raising=False)
    new_rule = GopherQualityFilter.filter

    def old_rule(self: Any, doc: Any) -> Any:
        self.p = self.p.model_copy(update={"alpha_denominator": "tokens"})
        return new_rule(self, doc)

    monkeypatch.setattr(GopherQualityFilter, "filter", old_rule)


def test_results_of_older_code_are_computed_again(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp = _wet(home / "in" / "0.warc.gz", {"http://p/": PUNCTUATED, "http://q/": PROSE})
    out = home / "out"
    with monkeypatch.context() as m:
        _as_older_code(m)
        first = run_pipeline(_spec([inp], out))
    assert first["counts"]["documents_out"] == 1  # the old rule dropped the punctuated page
    assert first["registered"]["ref"] == "wd-code@v1"
    marker = json.loads((out / ".tasks" / "spec.json").read_text())
    assert marker["code_version"].endswith("+webdata.1")

    again = run_pipeline(_spec([inp], out))  # the upgraded code, no --fresh
    assert not again["timing"]["nothing_to_do"]
    assert again["timing"]["this_run"]["process_tasks"] == 1
    assert again["run"]["resumed_tasks"] == {"process": 0, "encode": 0}
    assert again["counts"]["documents_out"] == 2  # the paper's rule keeps it
    assert again["registered"]["ref"] == "wd-code@v2"
    assert again["lineage"]["run"] != first["lineage"]["run"]  # a node of its own
    rec = again["recomputed"]
    assert rec["code_version_before"] == marker["code_version"]
    assert rec["code_version"] == pl.code_version() and rec["code_version"].endswith("+webdata.2")
    assert (
        f"made by {marker['code_version']}, and this code is {rec['code_version']}"
        in (rec["reason"])
    )
    assert "computed again" in (out / "report.txt").read_text()

    third = run_pipeline(_spec([inp], out))  # the same code: resumed, as before
    assert third["timing"]["nothing_to_do"] and "recomputed" not in third
    assert third["registered"]["ref"] == "wd-code@v2"
    assert third["lineage"]["run"] == again["lineage"]["run"]


def test_an_output_from_before_the_code_version_is_computed_again(home: Path) -> None:
    """Outputs written before the code version was recorded (their marker: the fingerprint
    of spec and input alone) are of an older code: not resumed."""
    inp = _wet(home / "in" / "0.warc.gz", {"http://q/": PROSE})
    out = home / "out"
    spec = _spec([inp], out, steps=["dedup"])
    run_pipeline(spec)
    marker_path = out / ".tasks" / "spec.json"
    marker = json.loads(marker_path.read_text())
    old_fp = pl._spec_fingerprint(spec, [Path(inp)])
    marker_path.write_text(json.dumps({"fingerprint": old_fp, "spec": marker["spec"]}))
    again = run_pipeline(spec)
    assert again["timing"]["this_run"]["process_tasks"] == 1
    assert again["recomputed"]["code_version_before"] is None
    assert "made by an earlier version (none recorded)" in again["recomputed"]["reason"]
    assert json.loads(marker_path.read_text())["fingerprint"] != old_fp


def test_another_pipeline_is_still_refused(home: Path) -> None:
    inp = _wet(home / "in" / "0.warc.gz", {"http://q/": PROSE})
    out = home / "out"
    run_pipeline(_spec([inp], out, steps=["dedup"]))
    with pytest.raises(ConflictError, match="holds a run of a different pipeline or input"):
        run_pipeline(_spec([inp], out, steps=["c4", "dedup"]))


def test_the_older_runs_reference_on_its_input_version_is_dropped(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run over a dataset version references it as ``webdata:NAME@FP``; the run of the
    older code had another FP, and its reference would keep the version from `data rm`
    with no run naming it."""
    from aistack.storage import Datasets

    _wet(home / "src" / "0.warc.gz", {"http://q/": PROSE})
    ds = Datasets.from_settings()
    assert str(ds.add("raw", str(home / "src")).ref) == "raw@v1"
    out = home / "out"

    def spec() -> Any:
        return parse_spec(
            {"name": "t", "input": {"dataset": "raw"}, "output": str(out), "steps": ["dedup"]}
        )

    def refs() -> list[tuple[str, str]]:
        return [(r["kind"], r["id"]) for r in ds.references("raw@v1")]

    with monkeypatch.context() as m:
        _as_older_code(m)
        run_pipeline(spec())
    old_fp = json.loads((out / ".tasks" / "spec.json").read_text())["fingerprint"]
    assert refs() == [("webdata", f"t@{old_fp}")]
    again = run_pipeline(spec())
    new_fp = json.loads((out / ".tasks" / "spec.json").read_text())["fingerprint"]
    assert "recomputed" in again and new_fp != old_fp
    assert refs() == [("webdata", f"t@{new_fp}")]
