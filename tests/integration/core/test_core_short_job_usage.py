"""A job shorter than the server's monitor interval still gets its usage samples: the loop
stores every sample taken since the last stored one, and reads the rest when the job ends
(before, only the latest sample of each monitor pass was kept, and a 1-s job had none but the
supervisor's first, which psutil reports as 0 % CPU)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import select

from aistack.executors.local import LocalExecutor
from aistack.server.db.models import AllocationRow, Job, UsageSampleRow
from aistack.server.services.jobs import submit_job
from aistack.settings import Settings
from aistack.testing.loop import scheduler_loop

BUSY = "import time; t = time.monotonic()\nwhile time.monotonic() - t < 1.6: pass"


def test_short_job_keeps_its_usage_samples(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, executor="local", mlflow_enabled=False, monitor_interval_s=3600
    )
    loop = scheduler_loop(settings, LocalExecutor(cpus=2))
    (tmp_path / "busy.py").write_text(BUSY)
    with loop.sessions() as s:
        job = submit_job(
            s,
            {"command": f"{sys.executable} {tmp_path / 'busy.py'}", "resources": {"cpus": 1}},
            nodes=loop.nodes(),
        )
        s.commit()
        jid = job.id
    loop.run_once()  # starts it; the one monitor pass of this test runs now
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        loop.run_once()
        with loop.sessions() as s:
            if s.get(Job, jid).state == "SUCCEEDED":  # type: ignore[union-attr]
                break
        time.sleep(0.2)
    with loop.sessions() as s:
        assert s.get(Job, jid).state == "SUCCEEDED"  # type: ignore[union-attr]
        rows = s.execute(select(UsageSampleRow).where(UsageSampleRow.job_id == jid)).scalars().all()
        alloc = s.execute(select(AllocationRow).where(AllocationRow.job_id == jid)).scalar_one()
        # the supervisor samples at 0.25 s and then every second: 2 samples in 1.6 s of work
        assert len(rows) >= 2, [(r.t, r.cpu_percent) for r in rows]
        assert max(r.cpu_percent for r in rows) > 50  # a busy loop, not psutil's first 0 %
        assert len({r.t for r in rows}) == len(rows)  # none stored twice
        assert alloc.samples == len(rows) and (alloc.cpu_util_avg or 0) > 25


def test_usage_since_skips_torn_lines_and_older_samples(tmp_path: Path) -> None:
    (tmp_path / "usage.jsonl").write_text(
        '{"t": 10.0, "cpu_percent": 5, "rss_mb": 1}\n'
        '{"t": 11.0, "cpu_percent": 90, "rss_mb": 2}\n'
        '{"t": 12.0, "cpu_perc'  # a line being written
    )
    ex = LocalExecutor(cpus=1)
    assert [u.t for u in ex.usage_since(str(tmp_path), None)] == [10.0, 11.0]
    assert [u.cpu_percent for u in ex.usage_since(str(tmp_path), 10.0)] == [90.0]
    assert ex.usage_since(str(tmp_path), 11.0) == []
    assert ex.usage(str(tmp_path)).t == 11.0  # type: ignore[union-attr]
