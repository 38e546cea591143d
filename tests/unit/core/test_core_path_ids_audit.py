"""Names from REST requests that become paths on the server (a path-traversal audit): a job id
or attempt never names a file outside the job's folder, a service name never one outside
services/. These held before the audit; the tests keep them."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "job_id", ["..%2F..%2Fetc", "..", "%2Fetc%2Fpasswd", "a%00b", "..%5C..%5Cx"]
)
def test_hostile_job_ids_are_unknown_jobs(api, job_id: str) -> None:  # type: ignore[no-untyped-def]
    r = api.http.get(f"/api/v1/jobs/{job_id}/logs")
    assert r.status_code in (404, 422), r.text
    assert "text" not in r.json()


def test_an_attempt_outside_the_jobs_attempts_is_refused(api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    job = api.client.submit({"name": "t", "command": "true"})
    jid = job["id"] if isinstance(job, dict) else job.id
    for att in ("-1", "1", "99", "..", "1e3"):
        r = api.http.get(f"/api/v1/jobs/{jid}/logs", params={"attempt": att})
        assert r.status_code == 422, (att, r.text)


def test_attempt_dir_stays_in_the_jobs_folder(tmp_path: Path) -> None:
    from aistack.server.services.jobs import attempt_dir

    d = attempt_dir(tmp_path, "0123456789ab", 0)
    assert d == tmp_path / "0123456789ab" / "0"


@pytest.mark.parametrize("name", ["..", "../x", ".deleted", "a/b", "A", "x%00"])
def test_hostile_service_names_never_reach_the_filesystem(
    name: str, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from aistack.errors import NotFoundError
    from aistack.serving import manager

    monkeypatch.setenv("AISTACK_HOME", str(tmp_path))
    with pytest.raises(NotFoundError):
        manager.service_dir(name)


@pytest.mark.parametrize(
    ("job_id", "attempt"),
    [("..", 0), ("a/b", 0), ("", 0), ("a\0b", 0), ("..\\x", 0), ("abc", -1), ("abc", True)],
)
def test_attempt_dir_stays_inside_the_jobs_folder(
    tmp_path: Path, job_id: str, attempt: int
) -> None:
    from aistack.errors import ValidationError
    from aistack.server.services.jobs import attempt_dir

    with pytest.raises(ValidationError):
        attempt_dir(tmp_path, job_id, attempt)
    assert attempt_dir(tmp_path, "0123456789ab", 2) == tmp_path / "0123456789ab" / "2"
