"""/api/v1/jobs in process (the `api` fixture): input the server must refuse with a 4xx that
names the field, and logs that come back byte for byte."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from aistack.server.db.models import Job


def _post_raw(api, body: str):  # type: ignore[no-untyped-def]
    return api.http.post("/api/v1/jobs", content=body, headers={"content-type": "application/json"})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"command": "x", "max_runtime": NaN}', "max_runtime"),
        ('{"command": "x", "max_runtime": Infinity}', "max_runtime"),
        ('{"command": "x", "max_runtime": 1e308}', "max_runtime"),
        ('{"command": "x", "priority": 100000000000000000000000}', "priority"),
        ('{"command": "x", "priority": -99999999999999999999}', "priority"),
        ('{"command": "x", "resources": {"gpus": 99999999999999999999}}', "resources.gpus"),
        ('{"command": "x", "resources": {"nodes": 99999999999999999999}}', "resources.nodes"),
        ('{"command": "x", "procs_per_node": 99999999999999999999}', "procs_per_node"),
        ('{"command": "   "}', "command"),
    ],
)
def test_out_of_range_and_non_finite_values_are_422(api, body: str, field: str) -> None:  # type: ignore[no-untyped-def]
    r = _post_raw(api, body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid" and field in r.json()["message"]
    assert api.http.get("/api/v1/jobs").json() == []


def test_priority_at_the_int32_limits_is_stored(api) -> None:  # type: ignore[no-untyped-def]
    for p in (2**31 - 1, -(2**31)):
        r = api.http.post("/api/v1/jobs", json={"command": "x", "priority": p})
        assert r.status_code == 201, r.text
        assert r.json()["priority"] == p


def test_state_filter_rejects_unknown_states_and_ignores_case(api) -> None:  # type: ignore[no-untyped-def]
    jid = api.http.post("/api/v1/jobs", json={"command": "x"}).json()["id"]
    r = api.http.get("/api/v1/jobs", params={"state": "BOGUS"})
    assert r.status_code == 422 and "unknown state 'BOGUS'" in r.json()["message"]
    assert "QUEUED" in r.json()["hint"]
    r = api.http.get("/api/v1/jobs", params={"state": ["queued"]})
    assert [j["id"] for j in r.json()] == [jid]


def _job_with_log(api, data: bytes, *, state: str = "SUCCEEDED") -> str:  # type: ignore[no-untyped-def]
    jid = api.http.post("/api/v1/jobs", json={"command": "x"}).json()["id"]
    with api.ctx.sessions() as s:
        s.execute(update(Job).where(Job.id == jid).values(state=state))
        s.commit()
    d = api.ctx.settings.jobs_dir / jid / "0"
    d.mkdir(parents=True)
    (d / "output.log").write_bytes(data)
    return jid


@pytest.mark.parametrize("state", ["SUCCEEDED", "RUNNING"])
def test_logs_keep_multibyte_characters_across_chunks(api, state: str) -> None:  # type: ignore[no-untyped-def]
    text = "a" + "é" * 600_000 + "\n€😀"  # 1.2 MB: chunk ends fall inside characters
    jid = _job_with_log(api, text.encode(), state=state)
    parts, offset = [], 0
    while True:
        chunk = api.client.logs(jid, offset=offset)
        parts.append(chunk["text"])
        if chunk["next_offset"] == offset:
            break
        offset = chunk["next_offset"]
    assert "".join(parts) == text
    assert offset == len(text.encode())


def test_logs_of_a_running_job_leave_a_half_written_character_for_later(api) -> None:  # type: ignore[no-untyped-def]
    data = "ok €".encode()
    jid = _job_with_log(api, data[:-1], state="RUNNING")  # the writer is mid-character
    chunk = api.client.logs(jid)
    assert chunk["text"] == "ok " and chunk["next_offset"] == 3
    (api.ctx.settings.jobs_dir / jid / "0" / "output.log").write_bytes(data)
    assert api.client.logs(jid, offset=3)["text"] == "€"


def test_logs_of_an_attempt_that_does_not_exist(api) -> None:  # type: ignore[no-untyped-def]
    jid = _job_with_log(api, b"hi\n")
    assert api.client.logs(jid, attempt=0)["text"] == "hi\n"
    for bad in (5, -1):
        r = api.http.get(f"/api/v1/jobs/{jid}/logs", params={"attempt": bad})
        assert r.status_code == 422, r.text
        assert r.json()["message"] == f"attempt {bad}: job {jid} has only attempt 0"


def test_jobs_page_on_with_before_and_never_repeat_a_job(api) -> None:  # type: ignore[no-untyped-def]
    ids = [api.http.post("/api/v1/jobs", json={"command": "x"}).json()["id"] for _ in range(7)]
    newest_first = ids[::-1]
    page1 = [j["id"] for j in api.http.get("/api/v1/jobs", params={"limit": 3}).json()]
    assert page1 == newest_first[:3]
    # a job submitted between two pages does not shift the next page
    api.http.post("/api/v1/jobs", json={"command": "x"})
    page2 = api.http.get("/api/v1/jobs", params={"limit": 3, "before": page1[-1]}).json()
    assert [j["id"] for j in page2] == newest_first[3:6]
    assert [j["id"] for j in api.client.iter_jobs(page_size=2)][1:] == newest_first
    r = api.http.get("/api/v1/jobs", params={"before": "nope"})
    assert r.status_code == 404 and "nope" in r.json()["message"]


def test_input_env_names_each_dataset() -> None:
    from aistack.server.services.scheduling import input_env

    assert input_env([]) == {}
    assert input_env(["corpus@v3", "web-2024.clean@v1"]) == {
        "AISTACK_INPUTS": "corpus@v3,web-2024.clean@v1",
        "AISTACK_INPUT_CORPUS": "corpus@v3",
        "AISTACK_INPUT_WEB_2024_CLEAN": "web-2024.clean@v1",
    }


def test_a_resource_key_at_the_top_level_says_where_it_belongs_over_the_api(api) -> None:  # type: ignore[no-untyped-def]
    r = api.http.post("/api/v1/jobs", json={"command": "x", "gpus": 1})
    assert r.status_code == 422, r.text
    assert "it belongs under resources" in r.json()["message"], r.text


def test_env_values_over_the_api_as_in_a_job_file(api) -> None:  # type: ignore[no-untyped-def]
    """Numbers are their text, as docker compose has them; a boolean is refused naming the key
    (it was pydantic's "Input should be a valid string" for both)."""
    r = api.http.post("/api/v1/jobs", json={"command": "x", "env": {"A": 1, "B": 0.5}})
    assert r.status_code == 201, r.text
    with api.ctx.sessions() as s:
        assert s.get(Job, r.json()["id"]).spec["env"] == {"A": "1", "B": "0.5"}
    r = api.http.post("/api/v1/jobs", json={"command": "x", "env": {"A": 1, "DEBUG": True}})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"] == (
        'invalid job spec (request body): env.DEBUG: true is a YAML boolean; quote it ("true") '
        "if you mean the string"
    )
    assert "environment values are strings" in body["hint"]


def test_a_job_lists_its_max_runtime_and_preemptible(api) -> None:  # type: ignore[no-untyped-def]
    """They were missing from GET /jobs (and `aistack jobs --json`): `aistack sim whatif` on
    the server's history could never replay the estimates users gave."""
    a = api.http.post("/api/v1/jobs", json={"command": "x", "max_runtime": "2h"}).json()
    b = api.http.post("/api/v1/jobs", json={"command": "x", "preemptible": False}).json()
    assert (a["max_runtime_s"], a["preemptible"]) == (7200.0, True)
    assert (b["max_runtime_s"], b["preemptible"]) == (None, False)
    listed = {j["id"]: j for j in api.http.get("/api/v1/jobs").json()}
    assert listed[a["id"]]["max_runtime_s"] == 7200.0
