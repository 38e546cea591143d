"""Naive ISO times in traces are wall-clock times in a zone: by default this machine's local
zone (as ``sacct`` prints them), or the one named with ``tz``; across a daylight-saving
change the runtime is the real time that passed."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.scheduler.simulator import history_from_rows, load_csv, load_history, read_csv_trace

HEADER = "JobID|User|Account|Submit|Start|End|AllocTRES|Timelimit\n"
# Europe/Berlin: clocks jump 02:00 → 03:00 on 2026-03-29 and go back 03:00 → 02:00 on
# 2026-10-25; both jobs run from 01:30 to 03:30 on the clock
DST = (
    HEADER
    + "1|alice|vision|2026-03-29T01:00:00|2026-03-29T01:30:00|2026-03-29T03:30:00|gres/gpu=1|\n"
    + "2|bob|nlp|2026-10-25T01:00:00|2026-10-25T01:30:00|2026-10-25T03:30:00|gres/gpu=1|\n"
)


@pytest.fixture
def sacct_dst(tmp_path: Path) -> Path:
    p = tmp_path / "sacct.txt"
    p.write_text(DST)
    return p


@pytest.fixture
def local_zone() -> Iterator[object]:
    """Set this process's local zone (TZ + time.tzset()); the old one is restored after."""
    old = os.environ.get("TZ")

    def set_zone(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    try:
        yield set_zone
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def _runtimes(path: Path, **kw: object) -> dict[str, float]:
    jobs, _ = read_csv_trace(path, fmt="slurm", **kw)  # type: ignore[arg-type]
    return {j.id: j.duration for j in jobs}


def test_sacct_times_across_a_dst_change_in_the_named_zone(sacct_dst: Path) -> None:
    # spring: 01:30 CET → 03:30 CEST is one real hour; autumn: 01:30 CEST → 03:30 CET three
    assert _runtimes(sacct_dst, tz="Europe/Berlin") == {"1": 3600.0, "2": 10800.0}
    # the same file read as UTC: two hours each
    assert _runtimes(sacct_dst, tz="UTC") == {"1": 7200.0, "2": 7200.0}
    assert _runtimes(sacct_dst, tz="utc") == {"1": 7200.0, "2": 7200.0}
    # submit offsets shift with the zone too: 01:00 CET is 00:00Z
    [berlin, _] = load_csv(sacct_dst, fmt="slurm", tz="Europe/Berlin")
    [utc, _] = load_csv(sacct_dst, fmt="slurm", tz="UTC")
    assert utc.submit - berlin.submit == 3600.0
    assert berlin.submit == 1774742400.0  # 2026-03-29T00:00:00Z


def test_default_is_this_machines_local_zone(sacct_dst: Path, local_zone) -> None:  # type: ignore[no-untyped-def]
    """sacct prints the local time of the machine it runs on: by default it is read so."""
    local_zone("Europe/Berlin")
    assert _runtimes(sacct_dst) == {"1": 3600.0, "2": 10800.0}
    assert _runtimes(sacct_dst, tz="local") == {"1": 3600.0, "2": 10800.0}
    assert _runtimes(sacct_dst, tz="UTC") == {"1": 7200.0, "2": 7200.0}
    local_zone("UTC")
    assert _runtimes(sacct_dst) == {"1": 7200.0, "2": 7200.0}
    assert _runtimes(sacct_dst, tz="Europe/Berlin") == {"1": 3600.0, "2": 10800.0}


def test_ambiguous_and_skipped_local_times_read_with_fold_0(tmp_path: Path, local_zone) -> None:  # type: ignore[no-untyped-def]
    """02:30 is skipped in spring (read with the offset before: 01:30Z) and occurs twice in
    autumn (the first time, summer time: 00:30Z); the local default agrees."""
    p = tmp_path / "fold.txt"
    p.write_text(
        HEADER
        + "1|a|p|2026-03-29T00:00:00|2026-03-29T00:30:00|2026-03-29T02:30:00|gres/gpu=1|\n"
        + "2|a|p|2026-10-25T00:00:00|2026-10-25T00:30:00|2026-10-25T02:30:00|gres/gpu=1|\n"
    )
    want = {"1": 7200.0, "2": 7200.0}  # 00:30 CET → 01:30Z; 00:30 CEST → 00:30Z
    assert _runtimes(p, tz="Europe/Berlin") == want
    local_zone("Europe/Berlin")
    assert _runtimes(p) == want


def test_times_with_an_offset_keep_it(tmp_path: Path, local_zone) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "offsets.txt"
    p.write_text(
        HEADER
        # 01:30+05:00 is 2026-03-28T20:30Z; 03:30Z: seven hours whatever the zone
        + "1|a|p|2026-03-29T01:00:00+05:00|2026-03-29T01:30:00+05:00|2026-03-29T03:30:00Z"
        + "|gres/gpu=1|\n"
        # a naive start (Berlin, 01:30 CET = 00:30Z) and an end with its offset (01:30Z)
        + "2|a|p|2026-03-29T01:00:00|2026-03-29T01:30:00|2026-03-29T01:30:00+00:00"
        + "|gres/gpu=1|\n"
    )
    assert _runtimes(p, tz="Europe/Berlin") == {"1": 25200.0, "2": 3600.0}
    assert _runtimes(p, tz="UTC") == {"1": 25200.0, "2": 0.0}
    local_zone("Asia/Tokyo")  # the naive start is 01:30 JST = 16:30Z the day before
    assert _runtimes(p) == {"1": 25200.0, "2": 32400.0}
    subs = {j.id: j.submit for j in load_csv(p, fmt="slurm", tz="Asia/Tokyo")}
    assert subs == {
        "1": 1774728000.0,  # 2026-03-28T20:00:00Z, from its own offset
        "2": 1774713600.0,  # 01:00 JST = 2026-03-28T16:00:00Z
    }


@pytest.mark.parametrize("zone", ["Mars/Olympus", "europe/berlin", "Europe", "../etc/passwd", ""])
def test_an_unknown_zone_is_a_clear_error(sacct_dst: Path, zone: str) -> None:
    with pytest.raises(ValidationError) as err:
        read_csv_trace(sacct_dst, fmt="slurm", tz=zone)
    assert f"time zone {zone!r} is not known" in str(err.value)
    assert "IANA name such as Europe/Berlin or UTC" in (err.value.hint or "")
    # before the file is opened: a missing file with a bad zone names the zone
    with pytest.raises(ValidationError, match="Mars/Olympus"):
        read_csv_trace(sacct_dst.with_name("missing.txt"), fmt="slurm", tz="Mars/Olympus")


def test_numeric_traces_ignore_the_zone(tmp_path: Path) -> None:
    p = tmp_path / "itp.csv"
    p.write_text("job_id,submission_time,duration,num_gpu\na,100,3600,1\n")
    for tz in (None, "UTC", "Europe/Berlin"):
        [j] = load_csv(p, tz=tz)
        assert (j.submit, j.duration) == (100.0, 3600.0)


def test_history_naive_times_are_utc_unless_a_zone_is_named(tmp_path: Path, local_zone) -> None:  # type: ignore[no-untyped-def]
    """The platform stores UTC (and writes it with +00:00): a naive time in its history is
    UTC whatever this machine's zone; tz names another."""
    rows = [
        {
            "id": "1",
            "submitted_at": "2026-03-29T01:00:00",
            "started_at": "2026-03-29T01:30:00",
            "finished_at": "2026-03-29T03:30:00",
            "resources": {"gpus": 1},
        },
        {
            "id": "2",
            "submitted_at": "2026-10-25T01:00:00+00:00",
            "started_at": "2026-10-25T01:30:00+00:00",
            "finished_at": "2026-10-25T03:30:00Z",
            "resources": {"gpus": 1},
        },
    ]
    p = tmp_path / "jobs.json"
    p.write_text(json.dumps(rows))
    local_zone("Europe/Berlin")
    for jobs, _ in (load_history(p), history_from_rows(rows)):
        assert [j.duration for j in jobs] == [7200.0, 7200.0]
    for jobs, _ in (load_history(p, tz="Europe/Berlin"), history_from_rows(rows, tz="local")):
        assert [j.duration for j in jobs] == [3600.0, 7200.0]  # the offsets stay
    with pytest.raises(ValidationError, match="time zone 'Mars' is not known"):
        load_history(p, tz="Mars")
