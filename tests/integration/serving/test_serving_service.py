"""A real service: controller process, router, replica processes on 127.0.0.1.

Failure handling (SIGKILL mid-load), failed updates, autoscaling and the CLI, with the fake
echo model (fast to start); the rolling update runs the tiny torch GPT.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from aistack.errors import ConflictError, NotFoundError
from aistack.serving import manager
from aistack.serving.launcher import handle_pid


def wait_for(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last={last!r}")


class Load:
    """Closed-loop load from a few threads until stopped; records every status code."""

    def __init__(
        self, url: str, payload: dict, workers: int = 4, path: str = "/v1/completions"
    ) -> None:
        self.url = url + path
        self.payload = payload
        self.workers = workers
        self.codes: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        with httpx.Client(timeout=30) as c:
            while not self._stop.is_set():
                try:
                    r = c.post(self.url, json=self.payload)
                    self.codes.append(r.status_code)
                    if r.status_code != 200:
                        self.errors.append(r.text[:300])
                except httpx.HTTPError as exc:
                    self.codes.append(-1)
                    self.errors.append(repr(exc))

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


@pytest.fixture
def home(aistack_home: Path):
    yield aistack_home
    for st in manager.list_services():  # never leave processes behind
        manager.delete(st["name"])


def test_sigkill_replica_mid_load_no_failed_request_and_replacement(home: Path) -> None:
    st = manager.deploy(
        "builtin:echo?delay_ms=20", name="echo", min_replicas=2, max_replicas=2, wait_ready_s=60
    )
    url = st["url"]
    victim = next(r for r in st["replicas"] if r["state"] == "ready")
    with Load(url, {"prompt": "hello", "max_tokens": 4}, workers=6) as load:
        wait_for(lambda: len(load.codes) >= 40, 30, "load to start")
        os.kill(handle_pid(victim["handle"]), signal.SIGKILL)
        n_at_kill = len(load.codes)
        wait_for(lambda: len(load.codes) >= n_at_kill + 100, 30, "load after the kill")
    assert load.codes and set(load.codes) == {200}, load.errors[:3]

    def replaced():
        s = manager.status("echo")
        states = {r["id"]: r["state"] for r in s["replicas"]}
        return s if states.get(victim["id"]) == "failed" and s["ready_replicas"] == 2 else None

    s = wait_for(replaced, 60, "a replacement replica")
    dead = next(r for r in s["replicas"] if r["id"] == victim["id"])
    assert "SIGKILL" in dead["reason"]
    assert any(
        r["id"] not in (victim["id"],) and r["state"] == "ready" and int(r["id"][1:]) > 2
        for r in s["replicas"]
    )
    assert s["metrics"]["retries_total"] >= 1
    metrics = httpx.get(url + "/metrics").text
    assert 'aistack_serve_requests_total{service="echo",code="200"}' in metrics
    assert "aistack_serve_retries_total" in metrics
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f for f in text_string_to_metric_families(metrics)}
    assert fams["aistack_serve_replicas_ready"].samples[0].value == 2
    assert fams["aistack_serve_batch_size"].samples  # batch sizes gathered from the replicas
    assert "aistack_serve_qps" in fams


def test_failed_update_keeps_old_version_serving(home: Path) -> None:
    st = manager.deploy(
        "builtin:echo",
        name="keep",
        min_replicas=1,
        max_replicas=2,
        wait_ready_s=60,
        extra={"ready_timeout_s": 20},
    )
    with Load(st["url"], {"prompt": "abc", "max_tokens": 3}, workers=2) as load:
        with pytest.raises(ConflictError, match="keeps serving"):
            manager.update("keep", "builtin:echo?fail=load", wait_s=60)
        with pytest.raises(ConflictError, match="health check"):
            manager.update("keep", "builtin:echo?fail=health", wait_s=60)
        time.sleep(0.5)
    assert load.codes and set(load.codes) == {200}, load.errors[:3]
    s = manager.status("keep")
    assert s["model_uri"] == "builtin:echo"
    assert s["rollout"]["state"] == "failed"
    assert s["ready_replicas"] == 1
    with pytest.raises(NotFoundError, match="built-in models"):
        manager.update("keep", "builtin:nope")
    with pytest.raises(NotFoundError, match="no service named"):
        manager.status("nope")


def test_autoscaler_scales_up_under_load_and_back_down(home: Path) -> None:
    autoscale = {
        "min_replicas": 1,
        "max_replicas": 3,
        "target_inflight": 2.0,
        "upscale_delay_s": 0.5,
        "downscale_cooldown_s": 3.0,
        "metric_window_s": 1.0,
    }
    st = manager.deploy(
        "builtin:echo?delay_ms=40",
        name="auto",
        max_batch_size=1,
        wait_ready_s=60,
        extra={"autoscale": autoscale},
    )
    with Load(st["url"], {"prompt": "x", "max_tokens": 1}, workers=8) as load:
        wait_for(lambda: manager.status("auto")["ready_replicas"] >= 2, 60, "scale up")
    assert set(load.codes) == {200}, load.errors[:3]

    def scaled_down():
        s = manager.status("auto")
        drained = any(e["message"].endswith("drained, stopping") for e in s["events"])
        return s if s["desired_replicas"] == 1 and s["ready_replicas"] == 1 and drained else None

    s = wait_for(scaled_down, 40, "scale down with a drained replica")
    actions = [d["action"] for d in s["autoscaler"]["decisions"]]
    assert "up" in actions and "down" in actions
    assert any("requests in flight" in d["reason"] for d in s["autoscaler"]["decisions"])
    assert any(
        "draining: scaled down by the autoscaler of service auto (" in e["message"]
        for e in s["events"]
    )


def test_requests_beyond_the_queue_are_429_at_once_and_stay_out_of_the_latency(
    home: Path,
) -> None:
    """One replica working on one request at a time (1 s each), two may queue: of six sent
    together three are served and three refused at once (they waited into a 504 before)."""
    st = manager.deploy(
        "builtin:echo?delay_ms=1000",
        name="full",
        min_replicas=1,
        max_replicas=1,
        max_batch_size=1,
        max_queued_requests=2,
        wait_ready_s=60,
    )
    url = st["url"] + "/v1/completions"
    results: list[tuple[float, int, str | None, dict]] = []
    lock = threading.Lock()
    t0 = time.monotonic()

    def send() -> None:
        r = httpx.post(url, json={"prompt": "abc", "max_tokens": 2}, timeout=30)
        with lock:
            results.append(
                (time.monotonic() - t0, r.status_code, r.headers.get("retry-after"), r.json())
            )

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    codes = sorted(code for _, code, _, _ in results)
    assert codes == [200, 200, 200, 429, 429, 429], results
    refused = [r for r in results if r[1] == 429]
    served = [r for r in results if r[1] == 200]
    assert all(retry == "1" for _, _, retry, _ in refused)
    for _, _, _, body in refused:
        assert (body["error"]["type"], body["error"]["code"]) == ("requests", "rate_limit_exceeded")
        assert "max_queued_requests 2" in body["error"]["message"]
    # refused while the first request was still being served, not after waiting in line
    assert max(t for t, *_ in refused) < min(t for t, *_ in served)
    assert [b["choices"][0]["text"] for *_, b in served] == ["cb"] * 3

    m = manager.status("full")["metrics"]
    assert m["rejected_total"] == 3 and m["client_errors_window"] == 3
    assert m["requests_total"] == 6 and m["errors_total"] == 0
    # p50 is that of the served requests (each took 1 s of the model or more), not of the 429s
    assert m["p50_ms"] >= 1000.0, m
    text = httpx.get(st["url"] + "/metrics").text
    assert 'aistack_serve_requests_total{service="full",code="429"} 3' in text
    assert 'aistack_serve_request_duration_seconds_count{service="full"} 3' in text


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aistack.cli.main", "serve", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_cli_deploy_survives_cli_exit_and_bad_input_via_router(home: Path) -> None:
    p = _cli("deploy", "builtin:echo", "--name", "cli", "--min", "1", "--max", "2", "--json")
    assert p.returncode == 0, p.stderr
    st = json.loads(p.stdout)
    url = st["url"]
    # the CLI has exited; the service still answers
    r = httpx.post(url + "/v1/completions", json={"prompt": "abc", "max_tokens": 2})
    assert r.status_code == 200 and r.json()["choices"][0]["text"] == "cb"
    bad = httpx.post(
        url + "/v1/completions", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
    wrong = httpx.post(url + "/v1/completions", json={"prompt": "x", "max_tokens": "ten"})
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "max_tokens"
    big = httpx.post(url + "/v1/completions", json={"prompt": "x" * 2_000_000})
    assert big.status_code == 413
    assert httpx.post(url + "/v1/completions", json={"prompt": "ok"}).status_code == 200

    from typer.testing import CliRunner

    from aistack.cli.main import app

    def cli(*args: str):
        return CliRunner().invoke(app, ["serve", *args])

    ls = json.loads(cli("ls", "--json").stdout)
    assert [s["name"] for s in ls] == ["cli"]
    status = json.loads(cli("status", "cli", "--json").stdout)
    assert status["metrics"]["client_errors_total"] >= 2
    assert status["metrics"]["errors_total"] == 0
    logs = json.loads(cli("logs", "cli", "--json").stdout)
    assert "controller" in logs and "r1" in logs
    text = cli("status", "cli").stdout
    assert "req/s" in text and "ms" in text

    upd = cli("update", "cli", "--to", "builtin:echo?delay_ms=1", "--json")
    assert upd.exit_code == 0, (upd.stdout, upd.exception)
    assert json.loads(upd.stdout)["model_uri"] == "builtin:echo?delay_ms=1"
    status = json.loads(cli("status", "cli", "--json").stdout)

    again = cli("deploy", "builtin:echo", "--name", "cli")
    assert isinstance(again.exception, ConflictError) and "already running" in str(again.exception)
    unknown = cli("deploy", "builtin:nope")
    assert isinstance(unknown.exception, NotFoundError) and "built-in models" in str(
        unknown.exception
    )
    bad_bounds = cli("deploy", "builtin:echo", "--name", "x", "--min", "3", "--max", "1")
    assert "--min" in str(bad_bounds.exception)
    assert not (home / "services" / "x" / "controller.json").exists()

    pid = status["controller_pid"]
    out = cli("delete", "cli", "--json")
    assert out.exit_code == 0, out.stdout
    assert json.loads(out.stdout)["deleted"] is True
    wait_for(lambda: not manager._pid_alive(pid), 10, "controller exit")
    for r in status["replicas"]:
        assert not manager._pid_alive(handle_pid(r["handle"]))
    assert json.loads(cli("ls", "--json").stdout) == []


@pytest.mark.torch
def test_rolling_update_tiny_gpt_zero_failed_requests(home: Path) -> None:
    pytest.importorskip("torch")
    st = manager.deploy(
        "builtin:tiny-gpt?dim=64", name="gpt", min_replicas=2, max_replicas=2, wait_ready_s=120
    )
    payload = {"prompt": "The cluster", "max_tokens": 8, "temperature": 0}
    before = httpx.post(st["url"] + "/v1/completions", json=payload).json()["choices"][0]["text"]
    with Load(st["url"], payload, workers=4) as load:
        s = manager.update("gpt", "builtin:tiny-gpt?dim=64&seed=1", wait_s=180)
        time.sleep(0.5)
    assert len(load.codes) > 20
    assert set(load.codes) == {200}, load.errors[:3]
    assert s["model_uri"] == "builtin:tiny-gpt?dim=64&seed=1"
    assert s["rollout"]["state"] == "succeeded"
    after = httpx.post(st["url"] + "/v1/completions", json=payload).json()["choices"][0]["text"]
    assert after != before
    live = [r for r in manager.status("gpt")["replicas"] if r["state"] in ("ready", "starting")]
    assert {r["model"] for r in live} == {"builtin:tiny-gpt?dim=64&seed=1"}


def test_controller_killed_then_redeployed_adopts_running_replicas(home: Path) -> None:
    st = manager.deploy(
        "builtin:echo", name="adopt", min_replicas=1, max_replicas=1, wait_ready_s=60
    )
    rep = next(r for r in st["replicas"] if r["state"] == "ready")
    time.sleep(0.6)  # one tick writes state.json with the ready replica
    os.kill(st["controller_pid"], signal.SIGKILL)
    wait_for(lambda: not manager._pid_alive(st["controller_pid"]), 10, "controller death")
    down = manager.status("adopt")
    assert down["status"] == "controller down" and down["ready_replicas"] == 0
    assert manager._pid_alive(handle_pid(rep["handle"]))  # the replica outlived its controller
    again = manager.restart("adopt", wait_ready_s=60)
    ready = [r for r in again["replicas"] if r["state"] == "ready"]
    assert [r["handle"] for r in ready] == [rep["handle"]]  # adopted, not restarted
    assert any("adopted running replica" in e["message"] for e in again["events"])
    assert again["url"] == st["url"]  # clients keep the service's URL
    r = httpx.post(again["url"] + "/v1/completions", json={"prompt": "ok", "max_tokens": 2})
    assert r.status_code == 200


def test_a_short_wait_says_the_service_is_deployed_and_keeps_starting(home: Path) -> None:
    """`serve deploy ... --wait 0.5` said "0 of 1 replicas ready after 0.5 s" (exit 2) as if
    nothing was deployed; a second deploy then said "already running"."""
    with pytest.raises(ConflictError) as ei:
        manager.deploy("builtin:echo?delay_ms=1", name="slow", wait_ready_s=0.01)
    assert ei.value.message.startswith("service 'slow' is deployed and still starting: 0 of 1")
    assert "`aistack serve status slow`" in (ei.value.hint or "")
    assert "`aistack serve delete slow`" in (ei.value.hint or "")
    # as the message says: it is there and keeps starting
    assert [s["name"] for s in manager.list_services()] == ["slow"]
    wait_for(lambda: manager.status("slow")["ready_replicas"] == 1, 60, "the replica")
