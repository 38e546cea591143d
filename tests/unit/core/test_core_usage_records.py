from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from aistack.planning.usage import parse_records
from aistack.server.db.models import AllocationRow, Base
from aistack.server.services.usage import allocation_records


def test_cpu_util_above_100_percent_is_capped_for_the_cost_report(tmp_path: Path) -> None:
    # a job's processes can briefly use more than their allocated cores; a stored average of
    # 100.4 % must not make the cost report refuse the whole project
    # plain SQLite (no foreign-key pragma): allocation rows without their job row
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        for util in (100.4, 37.5, None):
            s.add(
                AllocationRow(
                    job_id="j1",
                    attempt=1,
                    project="demo",
                    user="u",
                    node="n0",
                    gpus=[],
                    cpus=[0, 1],
                    start=dt.datetime(2026, 11, 1, 8),
                    end=dt.datetime(2026, 11, 1, 9),
                    cpu_util_avg=util,
                )
            )
        s.commit()
        recs = allocation_records(s, project="demo")
    assert [r["cpu_util"] for r in recs] == [100.0, 37.5, None]
    assert [r.cpu_util for r in parse_records(recs)] == [100.0, 37.5, None]
