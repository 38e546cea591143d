"""Follow-ups to the audit of the planning REST API: a JSON true, false or a number in quotes
where a number is wanted is refused by the request schema itself (no router dependency that
scanned the body), with a message that names the field and says how to fix it."""

from __future__ import annotations

from typing import Any

import pytest

_TCO = {"gpus": 8, "gpu": "H100"}
_TRAIN = {"params": 7e9, "tokens": 1e12, "gpu": "H100"}
_SERVE = {"params": 7e9, "gpu": "H100"}


@pytest.mark.parametrize(
    ("path", "body", "where", "got"),
    [
        # a number in quotes was read as the number ("gpus": "8" planned for 8 GPUs)
        ("/plan/tco", {"gpus": "8", "gpu": "H100"}, "gpus", '"8"'),
        ("/plan/tco", {**_TCO, "utilization": "0.8"}, "utilization", '"0.8"'),
        ("/plan/tco", {**_TCO, "cloud_usd_per_hour": "84"}, "cloud_usd_per_hour", '"84"'),
        ("/plan/train", {**_TRAIN, "params": "7e9"}, "params", '"7e9"'),
        ("/plan/serve", {**_SERVE, "context": "4096"}, "context", '"4096"'),
        ("/plan/hybrid", {"profile": [1, "2"], "gpu": "H100"}, "profile.1", '"2"'),
        ("/plan/hybrid", {"intervals": [["0", 3600, 8]], "gpu": "H100"}, "intervals.0.0", '"0"'),
        (
            "/plan/hybrid",
            {"profile": [1], "step_minutes": "60", "gpu": "H100"},
            "step_minutes",
            '"60"',
        ),
        # booleans, as the router's dependency refused them (now the schema does)
        ("/plan/tco", {"gpus": True, "gpu": "H100"}, "gpus", "true"),
        ("/plan/tco", {**_TCO, "utilization": True}, "utilization", "true"),
        ("/plan/tco", {**_TCO, "spot_overhead": False}, "spot_overhead", "false"),
        ("/plan/hybrid", {"profile": [True, 2], "gpu": "H100"}, "profile.0", "true"),
        ("/plan/hybrid", {"intervals": [[0, 3600, True]], "gpu": "H100"}, "intervals.0.2", "true"),
        ("/plan/train", {**_TRAIN, "mfu": True}, "mfu", "true"),
        ("/plan/serve", {**_SERVE, "target_tokens_per_s": False}, "target_tokens_per_s", "false"),
    ],
)
def test_rest_a_number_is_a_json_number(
    api: Any, path: str, body: dict[str, Any], where: str, got: str
) -> None:
    r = api.http.post(f"/api/v1{path}", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["code"] == "invalid"
    [problem] = err["details"]["problems"]
    assert problem.startswith(f"{where}: must be a number, got {got}"), problem
    assert err["hint"].startswith("send a JSON number, e.g. 8 or 0.8"), err  # how to fix it


@pytest.mark.parametrize(
    ("path", "body"),
    [
        # valid input is read as before: an int where a float is wanted, a whole float count
        ("/plan/tco", {"gpus": 8, "gpu": "H100", "utilization": 1, "spot_overhead": 0}),
        ("/plan/tco", {"gpus": 8.0, "gpu": "H100", "cloud_usd_per_hour": 84}),
        ("/plan/train", {"params": 7000000000, "tokens": 10**12, "gpu": "H100", "gpus": 64}),
        ("/plan/serve", {"params": 7e9, "gpu": "H100", "concurrency": 8.0}),
        ("/plan/hybrid", {"profile": [0, 8, 16.5], "gpu": "H100", "step_minutes": 30}),
        ("/plan/hybrid", {"intervals": [[0.5, 7200, 8.0]], "gpu": "H100"}),
    ],
)
def test_rest_valid_numbers_still_plan(api: Any, path: str, body: dict[str, Any]) -> None:
    r = api.http.post(f"/api/v1{path}", json=body)
    assert r.status_code == 200, r.text


def test_rest_a_fractional_count_is_still_refused(api: Any) -> None:
    r = api.http.post("/api/v1/plan/tco", json={"gpus": 8.5, "gpu": "H100"})
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith("invalid request: gpus: ")


def test_the_router_has_no_body_scanning_dependency() -> None:
    """The schema refuses what the regex over field annotations used to."""
    from aistack.server.routers import planning as router_mod

    assert not hasattr(router_mod, "_no_bool_numbers")
    for route in router_mod.router.routes:
        assert not getattr(route, "dependencies", []), route
