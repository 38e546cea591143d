"""A project's budget spend leaves out GPU-hours the price sheet cannot price (a memory executor's
FakeGPU, a GPU type missing from the catalog): the report says so (a note, the budget's
``unpriced_gpu_hours`` and its spent cell). It showed "$0, 0 %, ok" for a
project whose every GPU-hour was unpriced, with nothing tying the notes to the budget."""

from __future__ import annotations

import datetime as dt

from aistack.planning.report import render_usage
from aistack.planning.usage import parse_records, price_usage

UTC = dt.UTC


def _recs() -> list[dict[str, object]]:
    base = {"user": "u", "node": "n", "gpu_util": None, "cpu_util": None}
    return [
        # 2 unknown GPUs for 3 h, 1 h of it last month (only 2 h x 2 = 4 GPU-h in December)
        {
            **base,
            "job_id": "a",
            "project": "p",
            "gpus": 2,
            "gpu_type": "FakeGPU",
            "cpus": 1,
            "start": "2026-11-30T23:00:00Z",
            "end": "2026-12-01T02:00:00Z",
        },
        # 1 H100-SXM for 1 h: priced
        {
            **base,
            "job_id": "b",
            "project": "p",
            "gpus": 1,
            "gpu_type": "H100-SXM",
            "cpus": 1,
            "start": "2026-12-01T03:00:00Z",
            "end": "2026-12-01T04:00:00Z",
        },
        # another project, all priced: no note for it
        {
            **base,
            "job_id": "c",
            "project": "q",
            "gpus": 1,
            "gpu_type": "H100-SXM",
            "cpus": 1,
            "start": "2026-12-01T03:00:00Z",
            "end": "2026-12-01T04:00:00Z",
        },
    ]


def test_budget_spend_names_the_unpriced_gpu_hours_of_the_month() -> None:
    rep = price_usage(
        parse_records(_recs()),
        now=dt.datetime(2026, 12, 1, 6, tzinfo=UTC),
        since=dt.datetime(2026, 12, 1, 1, tzinfo=UTC),  # later than the month's start
        budgets={"p": 100.0, "q": 100.0},
    )
    b = {r.project: r for r in rep.budgets}
    assert round(b["p"].spend_usd, 2) == round(b["q"].spend_usd, 2) == 6.88  # 1 H100-h each
    notes = [n for n in rep.notes if n.startswith("budget of ")]
    # the month's unpriced GPU-hours (4.00), not the window's (2 GPUs x 1 h = 2.00)
    assert notes == [
        "budget of p: the month's spend ($6.88) leaves out 4.00 GPU-hours of GPU types the "
        "price sheet has no price for: the real spend is higher"
    ]
    assert round(b["p"].unpriced_gpu_hours, 6) == 4.0 and b["q"].unpriced_gpu_hours == 0.0
    text = render_usage(rep)
    assert "note: budget of p:" in text
    # the spent cell says so, as the usage tables' cost cells do
    rows = {ln.split()[0]: ln for ln in text.splitlines() if ln.startswith(("p ", "q "))}
    assert "$6.88 + unpriced" in rows["p"] and "unpriced" not in rows["q"]


def test_no_budget_note_when_everything_is_priced() -> None:
    rep = price_usage(
        parse_records(_recs()[1:]),
        now=dt.datetime(2026, 12, 1, 6, tzinfo=UTC),
        budgets={"p": 100.0},
    )
    assert not [n for n in rep.notes if n.startswith("budget of ")]
