"""GET /usage/samples returns a job's newest samples (oldest first) when it has more than
``limit``: it returned the oldest, so the job page's usage chart of a job running past ~33
minutes (2,000 samples at one a second) stopped there."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aistack.server.db.models import AllocationRow, UsageSampleRow


def test_the_newest_samples_in_time_order(api: Any) -> None:
    r = api.http.post("/api/v1/jobs", json={"command": "x"})
    assert r.status_code == 201, r.text
    jid = r.json()["id"]
    t0 = dt.datetime(2026, 11, 1)
    with api.ctx.sessions() as s:
        a = AllocationRow(job_id=jid, attempt=0, project="default", user="u", node="mem0")
        s.add(a)
        s.flush()
        for i in range(10):
            s.add(
                UsageSampleRow(
                    allocation_id=a.id,
                    job_id=jid,
                    t=t0 + dt.timedelta(seconds=i),
                    cpu_percent=float(i),
                    rss_mb=1.0,
                )
            )
        s.commit()
    got = api.http.get("/api/v1/usage/samples", params={"job_id": jid, "limit": 3})
    assert got.status_code == 200, got.text
    assert [x["cpu_percent"] for x in got.json()] == [7.0, 8.0, 9.0]
    assert got.json()[0]["t"] == "2026-11-01T00:00:07+00:00"
    whole = api.http.get("/api/v1/usage/samples", params={"job_id": jid}).json()
    assert [x["cpu_percent"] for x in whole] == [float(i) for i in range(10)]
