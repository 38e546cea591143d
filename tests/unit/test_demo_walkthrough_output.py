"""`make demo` as a first-time user reads it: what each line says is true, Ctrl-C says what became
of the job (no traceback), a rerun after Ctrl-C follows the training job instead of training a
second model, and the fresh home is owner-only (the server warned it had to tighten it)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from aistack import demo


@pytest.fixture
def out(monkeypatch: pytest.MonkeyPatch) -> Console:
    con = Console(record=True, width=250, force_terminal=False)
    monkeypatch.setattr(demo, "console", con)
    return con


REPORT = {
    "steps": {
        "read": {"in": 301, "out": 150},
        "language": {"in": 150, "out": 141},
        "dedup_hashing": {"in": 100, "out": 100},
        "dedup": {"in": 100, "out": 99},
    },
    "drops": {"language/low_language_score": 6, "language/other_language": 3},
    "skipped_records": {"request": 150, "warcinfo": 1},
    "duplicates": {"exact_duplicates": 0, "near_duplicates": 1, "near_duplicate_clusters": 1},
    "documents_out": 99,
    "tokens": 83396,
    "vocab_size": 2048,
    "shard_dtype": "uint16",
    "languages": {"en": 147, "pcm": 2},
}


def _row(text: str, step: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"│ {step} "))


def test_report_reasons_come_from_the_report(out: Console) -> None:
    demo._print_report(REPORT)
    text = out.export_text()
    read = _row(text, "read")
    # the records the reader skipped, by type, as counted (the old line said "robots.txt": the
    # crawl's WARC holds request and warcinfo records, no robots.txt response)
    assert "request records (not HTML pages) 150" in read
    assert "warcinfo records (not HTML pages) 1" in read
    assert "robots.txt" not in text
    # the one document dedup dropped has its reason (the column was empty)
    assert "near duplicates (MinHash) 1" in _row(text, "dedup")
    assert "exact duplicates" not in text  # zero: not listed
    assert "low_language_score 6, other_language 3" in _row(text, "language")
    assert "99 documents, 83,396 tokens" in text


class FakeClient:
    """The few Client calls the demo's job steps make; ``states`` is what get_job returns, in
    turn (an exception instance is raised: KeyboardInterrupt is Ctrl-C)."""

    url = "http://127.0.0.1:1"
    token = "t"

    def __init__(self, states: list[Any], names: dict[str, str] | None = None) -> None:
        self.states = states
        self.names = names or {}
        self.cancelled: list[str] = []
        self.submitted: list[dict[str, Any]] = []

    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        self.submitted.append(spec)
        return {"id": "job123"}

    def get_job(self, job_id: str) -> dict[str, Any]:
        if job_id in self.names:
            return {"id": job_id, "name": self.names[job_id], "state": "SUCCEEDED"}
        st = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(st, BaseException):
            raise st
        return {"id": job_id, "state": st, "name": "demo-train"}

    def logs(self, job_id: str) -> dict[str, Any]:
        return {"text": "step 10/120\n"}

    def cancel(self, job_id: str, reason: str | None = None) -> dict[str, Any]:
        self.cancelled.append(job_id)
        return {}

    def request(self, method: str, path: str, **kw: Any) -> Any:
        assert path == "/cost/report"
        row = {"cpu_hours": 0.0095, "gpu_hours": 0.0, "cost_usd": 0.00048}
        return {
            "by_job": [{"key": "aaa", **row}, {"key": "bbb", **row}],
            "total": {"cpu_hours": 0.019, "gpu_hours": 0.0, "cost_usd": 0.00096},
            "cloud_on_demand_usd": 0.00096,
            "onprem_usd": 0.0002,
        }


def _ctrl_c(c: FakeClient, **kw: Any) -> str:
    """run_job under a Ctrl-C: the one line it exits with (a traceback fails the test)."""
    try:
        demo.run_job(c, {"name": "demo-x"}, "x", **kw)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped as a KeyboardInterrupt traceback")
    except SystemExit as e:
        return str(e.code)
    pytest.fail("run_job returned after Ctrl-C")


def test_ctrl_c_on_the_crawl_cancels_its_job_and_says_so(out: Console) -> None:
    c = FakeClient(["RUNNING", KeyboardInterrupt()])
    msg = _ctrl_c(c)
    assert c.cancelled == ["job123"]
    assert msg == "interrupted: cancelled job job123; `make demo` again starts this step over"


def test_ctrl_c_on_the_training_leaves_the_job_running_and_says_so(out: Console) -> None:
    c = FakeClient([KeyboardInterrupt()])
    msg = _ctrl_c(c, on_interrupt="keep")
    assert c.cancelled == []
    assert msg.startswith("interrupted: job job123 keeps running on the platform")
    assert "`make demo` again follows it" in msg and "aistack cancel job123" in msg


def _main_with_fakes(
    monkeypatch: pytest.MonkeyPatch, home: Path, c: FakeClient
) -> tuple[list[Any], list[Any]]:
    monkeypatch.setenv("AISTACK_HOME", str(home))
    from aistack.settings import reset_settings_cache

    reset_settings_cache()
    trained: list[Any] = []
    registered: list[Any] = []
    monkeypatch.setattr(demo, "ensure_server", lambda: c)
    monkeypatch.setattr(demo, "step_corpus", lambda c, work: "demo-corpus@v1")

    def step_train(c: Any, work: Path, corpus: str, on_submit: Any = None) -> dict[str, Any]:
        trained.append(corpus)
        if on_submit is not None:
            on_submit("newjob", "120 steps on CPU")
        raise SystemExit("interrupted: job newjob keeps running")

    monkeypatch.setattr(demo, "step_train", step_train)

    def step_register(c: Any, job: dict[str, Any]) -> dict[str, Any]:
        registered.append(job["id"])
        return {"version": 1}

    monkeypatch.setattr(demo, "step_register", step_register)
    monkeypatch.setattr(demo, "_model_exists", lambda c, v: False)
    monkeypatch.setattr(demo, "step_promote_serve", lambda *a, **k: None)
    monkeypatch.setattr(demo, "step_lineage", lambda *a, **k: None)
    monkeypatch.setattr(demo, "step_cost", lambda *a, **k: None)
    return trained, registered


def test_training_job_is_recorded_as_soon_as_it_is_submitted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: Console
) -> None:
    home = tmp_path / "home"
    trained, _ = _main_with_fakes(monkeypatch, home, FakeClient(["RUNNING"]))
    with pytest.raises(SystemExit):
        demo.main()  # Ctrl-C while the training job runs
    assert trained == ["demo-corpus@v1"]
    state = json.loads((home / "demo" / "state.json").read_text())
    assert state == {"corpus": "demo-corpus@v1", "job": "newjob", "trained": "120 steps on CPU"}


def test_rerun_after_ctrl_c_follows_the_training_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: Console
) -> None:
    home = tmp_path / "home"
    (home / "demo").mkdir(parents=True)
    (home / "demo" / "state.json").write_text(
        json.dumps({"corpus": "demo-corpus@v1", "job": "oldjob", "trained": "120 steps on CPU"})
    )
    c = FakeClient(["RUNNING", "RUNNING", "SUCCEEDED"])
    monkeypatch.setattr(demo.time, "sleep", lambda s: None)
    trained, registered = _main_with_fakes(monkeypatch, home, c)
    demo.main()
    assert trained == []  # no second training job
    assert c.submitted == []
    assert registered == ["oldjob"]
    state = json.loads((home / "demo" / "state.json").read_text())
    assert state["job"] == "oldjob" and state["model_version"] == 1
    assert "c. the training job oldjob of an earlier run is RUNNING" in out.export_text()


@pytest.mark.parametrize("earlier", ["FAILED", "CANCELLED"])
def test_rerun_trains_again_when_the_earlier_job_did_not_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: Console, earlier: str
) -> None:
    home = tmp_path / "home"
    (home / "demo").mkdir(parents=True)
    (home / "demo" / "state.json").write_text(
        json.dumps({"corpus": "demo-corpus@v1", "job": "oldjob"})
    )
    trained, _ = _main_with_fakes(monkeypatch, home, FakeClient([earlier]))
    with pytest.raises(SystemExit):
        demo.main()
    assert trained == ["demo-corpus@v1"]


def test_fresh_home_is_created_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, out: Console
) -> None:
    home = tmp_path / "fresh-home"
    monkeypatch.setenv("AISTACK_HOME", str(home))
    from aistack.settings import reset_settings_cache

    reset_settings_cache()

    def stop() -> None:
        raise SystemExit("stop before the server")

    monkeypatch.setattr(demo, "ensure_server", stop)
    old = os.umask(0o022)
    try:
        with pytest.raises(SystemExit):
            demo.main()
    finally:
        os.umask(old)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_cost_table_names_each_job(out: Console) -> None:
    c = FakeClient(["SUCCEEDED"], names={"aaa": "demo-train", "bbb": "serve-demo-gpt-r1"})
    demo.step_cost(c)  # type: ignore[arg-type]
    text = out.export_text()
    assert "aaa" in text and "demo-train" in text
    assert "bbb" in text and "serve-demo-gpt-r1" in text
    assert "0.0190" in text and "0.0190 h" not in text and "$0.00096" in text


def test_completion_line_says_how_the_model_was_trained(
    monkeypatch: pytest.MonkeyPatch, out: Console
) -> None:
    import httpx

    from aistack.mlops import registry
    from aistack.serving import manager

    class Promoted:
        def to_dict(self) -> dict[str, Any]:
            return {
                "checks": [{"condition": "loss<7.5", "actual": 4.603483200073242, "passed": True}]
            }

    monkeypatch.setattr(registry, "promote", lambda *a, **k: Promoted())
    monkeypatch.setattr(manager, "status", lambda name: {"url": "http://127.0.0.1:9"})
    monkeypatch.setattr(manager, "update", lambda name, ref: {"url": "http://127.0.0.1:9"})

    class Resp:
        def raise_for_status(self) -> None:
            return None

        def json(self) -> dict[str, Any]:
            return {"choices": [{"text": " hello world"}]}

    monkeypatch.setattr(httpx, "post", lambda *a, **k: Resp())
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "AISTACK_URL"):
        monkeypatch.setenv(var, "")  # the demo sets them: restored (unset) after the test
    c = FakeClient(["SUCCEEDED"])
    demo.step_promote_serve(c, {"version": 1}, "120 steps on GPU")  # type: ignore[arg-type]
    demo.step_promote_serve(c, {"version": 1}, None)  # type: ignore[arg-type]
    text = out.export_text()
    assert "loss<7.5: actual 4.603 → pass" in text
    assert "a tiny model trained for 120 steps on GPU)" in text
    assert "on CPU" not in text  # a model trained on a GPU, or one we know nothing of
    assert "a tiny model): The Python standard library hello world" in text
