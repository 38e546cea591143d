"""report.txt says briefly what report.json's ``input_datasets`` (the dataset versions read:
their files, linked or copied into the output folder), ``input_references`` (what keeps them
from ``aistack data rm``) and ``lineage`` (the run node, the inputs recorded and those not)
hold."""

from __future__ import annotations

from typing import Any

from aistack.webdata.report import input_dataset_rows, lineage_rows, render_text

RUN = "webdata:t@0123456789abcdef"


def _report(**extra: Any) -> dict[str, Any]:
    counts = {
        "files": 3,
        "records": 6,
        "html_documents": 0,
        "text_documents": 3,
        "documents_out": 3,
        "steps": {"langid": {"in": 3, "out": 3}},
        "drops": {},
        "languages": {"en": 3},
        "pii_masked": {},
        "duplicates": {},
        "tokens": 0,
        "unreadable_records": 0,
    }
    return {"name": "t", "counts": counts, "unreadable": [], "bad_files": [], **extra}


INPUT_DATASETS = [
    {
        "ref": "raw@v1",
        "folder": "/o/input-datasets/raw@v1",
        "files": 2,
        "materialized": "now",
        "linked": 2,
        "copied": 1,
        "unchanged": 0,
    },
    {
        "ref": "more@v3",
        "folder": "/o/input-datasets/more@v3",
        "files": 1,
        "materialized": "not needed (every file of it was processed)",
    },
]
LINEAGE = {
    "run": RUN,
    "inputs": [{"file": "/in/a.warc.gz", "node": "file:a.warc.gz@sha256:" + "ab" * 32}],
    "datasets": [
        {"ref": "raw@v1", "node": "dataset:raw@v1", "files": 2},
        {"ref": "more@v3", "node": "dataset:more@v3", "files": 1},
    ],
    "not_recorded": [
        {"file": "/in/b.warc.gz", "reason": "the file could not be read"},
        {"file": "/in/c.warc.gz", "reason": "the file could not be read"},
    ],
    "edges_added": 4,
}


def test_rows_for_input_datasets_and_references() -> None:
    rep = _report(
        input_datasets=INPUT_DATASETS,
        input_references={"by": RUN, "versions": ["raw@v1", "more@v3"]},
    )
    assert input_dataset_rows(rep) == [
        ("input dataset raw@v1", "2 files (now: 2 linked, 1 copied)"),
        ("input dataset more@v3", "1 file (not needed (every file of it was processed))"),
        (
            "input datasets referenced by",
            f"{RUN} (`aistack data rm` keeps raw@v1, more@v3; `aistack data unref` drops it)",
        ),
    ]
    assert input_dataset_rows(_report()) == []  # a run of local files only


def test_rows_for_lineage() -> None:
    assert lineage_rows(_report(lineage=LINEAGE)) == [
        ("lineage run", RUN),
        ("lineage inputs recorded", "1 input file and dataset raw@v1, more@v3 (4 new edges)"),
        ("lineage inputs not recorded", "2 (first: /in/b.warc.gz: the file could not be read)"),
    ]
    only_datasets = {**LINEAGE, "inputs": [], "not_recorded": [], "edges_added": 0}
    assert lineage_rows(_report(lineage=only_datasets)) == [
        ("lineage run", RUN),
        ("lineage inputs recorded", "dataset raw@v1, more@v3 (0 new edges)"),
    ]
    assert lineage_rows(_report()) == [] and lineage_rows(_report(lineage={})) == []


def test_report_txt_shows_them() -> None:
    text = render_text(
        _report(
            input_datasets=INPUT_DATASETS,
            input_references={"by": RUN, "versions": ["raw@v1"]},
            registered={"ref": "wd-out@v1"},
            lineage=LINEAGE,
        )
    )
    lines = [" ".join(line.strip("│ ").split()) for line in text.splitlines()]
    for want in (
        "input dataset raw@v1 │ 2 files (now: 2 linked, 1 copied)",
        "registered │ dataset version wd-out@v1",
        f"lineage run │ {RUN}",
        "lineage inputs recorded │ 1 input file and dataset raw@v1, more@v3 (4 new edges)",
    ):
        assert want in lines, (want, text)
    assert "input datasets referenced by" in text and "lineage inputs not recorded" in text
    # in the summary's order: inputs first, lineage after the registered version
    assert text.index("input dataset raw@v1") < text.index("registered") < text.index("lineage run")
