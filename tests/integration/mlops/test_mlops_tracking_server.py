"""Real MLflow embedded in a FastAPI app (aistack.mlops.server) served by uvicorn on 127.0.0.1.

Covers: UI and REST under /mlflow behind the token, a job run with params, metrics, system
metrics, tags and dataset inputs; the buffered logger (10,000 points, none lost, also across a
server restart); registry register/alias/promote (refused with the reason)/lineage through the
Python API, the CLI and the /models router.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

pytest.importorskip("mlflow")

from aistack.errors import ConflictError, NotFoundError, ValidationError  # noqa: E402
from aistack.mlops import registry, tracking  # noqa: E402
from aistack.mlops.logger import BufferedMetricsLogger  # noqa: E402
from aistack.mlops.testing import TrackingServer  # noqa: E402

pytestmark = [pytest.mark.mlflow]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    home = tmp_path_factory.mktemp("mlflow-home")
    with TrackingServer(home, token="t0ken") as s:
        yield s


@pytest.fixture()
def env(srv, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", srv.token)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    return srv


def _git_repo(path: Path) -> str:
    path.mkdir(parents=True, exist_ok=True)
    run = lambda *a: subprocess.run(  # noqa: E731
        ["git", "-C", str(path), *a], check=True, capture_output=True, text=True
    )
    run("init", "-q")
    (path / "train.py").write_text("print('hi')\n")
    run("add", "train.py")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return run("rev-parse", "HEAD").stdout.strip()


def _job_run(srv, tmp_path, *, job_id="job-1", val_loss=3.0) -> str:
    _git_repo(tmp_path / "code")
    rid = tracking.create_job_run(
        srv.tracking_uri,
        job_id=job_id,
        name="gpt-small",
        project="nlp",
        user="alice",
        inputs=["webtext@3", "s3://bucket/datasets/code/7"],
        params={"lr": 3e-4, "layers": 4},
        token=srv.token,
        code_dir=str(tmp_path / "code"),
    )
    import mlflow

    c = mlflow.MlflowClient(srv.tracking_uri)
    c.log_metric(rid, "val_loss", val_loss)
    c.log_metric(rid, "accuracy", 0.93)
    d = tmp_path / "model"
    d.mkdir(exist_ok=True)
    (d / "weights.bin").write_bytes(b"\0" * 64)
    c.log_artifacts(rid, str(d), "model")
    tracking.end_job_run(srv.tracking_uri, rid, "FINISHED", token=srv.token)
    return rid


def test_ui_and_api_behind_token(srv):
    assert httpx.get(f"{srv.tracking_uri}/health").status_code == 401
    r = httpx.get(f"{srv.tracking_uri}/", headers=srv.headers())
    assert r.status_code == 200 and "<html" in r.text.lower()
    scripts = re.findall(r'src="\.?/?(static-files/[^"]+\.js)"', r.text)
    assert scripts, "the UI page references its JS bundle"
    js = httpx.get(f"{srv.tracking_uri}/{scripts[0]}", headers=srv.headers())
    assert js.status_code == 200 and len(js.content) > 10_000
    r = httpx.get(
        f"{srv.tracking_uri}/api/2.0/mlflow/experiments/search",
        params={"max_results": 10},
        headers=srv.headers(),
    )
    assert r.status_code == 200
    assert "Default" in [e["name"] for e in r.json()["experiments"]]
    # the cookie works too (browser sessions)
    r = httpx.get(f"{srv.tracking_uri}/health", cookies={"aistack_token": srv.token})
    assert r.status_code == 200


def test_job_run_has_params_metrics_system_metrics_tags_inputs(env, tmp_path, monkeypatch):
    srv = env
    rid = tracking.create_job_run(
        srv.tracking_uri,
        job_id="job-42",
        name="train",
        project="vision",
        user="bob",
        inputs=["imagenet@5"],
        params={"lr": 0.1, "opt": {"name": "adamw"}},
        token=srv.token,
        commit="a" * 40,
    )
    import mlflow

    start_s = mlflow.MlflowClient().get_run(rid).info.start_time / 1000
    samples = [
        {"t": start_s + i, "cpu_percent": 10.0 * i, "rss_mb": 100 + i, "gpu_util": [50, 60]}
        for i in range(5)
    ]
    assert tracking.log_system_metrics(srv.tracking_uri, rid, samples, token=srv.token) == 20
    # user code in the job: MLFLOW_RUN_ID from job_env makes start_run() resume the job's run
    for k, v in tracking.job_env(srv.tracking_uri, rid, token=srv.token).items():
        monkeypatch.setenv(k, v)
    with mlflow.start_run() as active:
        assert active.info.run_id == rid
        mlflow.log_metric("loss", 1.5, step=1)
    # the job failed after its code ended the run: the server's verdict replaces FINISHED
    tracking.end_job_run(srv.tracking_uri, rid, "FAILED", token=srv.token, replace=True)

    run = mlflow.MlflowClient().get_run(rid)
    assert run.info.status == "FAILED"
    assert run.data.params == {"lr": "0.1", "opt": '{"name": "adamw"}'}
    assert run.data.metrics["loss"] == 1.5
    assert run.data.tags["aistack.job_id"] == "job-42"
    assert run.data.tags["aistack.project"] == "vision"
    assert run.data.tags["mlflow.user"] == "bob"
    assert run.data.tags["mlflow.source.git.commit"] == "a" * 40
    exp = mlflow.MlflowClient().get_experiment(run.info.experiment_id)
    assert exp.name == "vision"
    hist = mlflow.MlflowClient().get_metric_history(rid, "system/cpu_utilization_percentage")
    assert sorted((m.step, m.value) for m in hist) == [(i, 10.0 * i) for i in range(5)]
    gpu1 = mlflow.MlflowClient().get_metric_history(rid, "system/gpu_1_utilization_percentage")
    assert [m.value for m in gpu1] == [60.0] * 5
    assert {m.timestamp for m in hist} == {int((start_s + i) * 1000) for i in range(5)}
    (ds,) = run.inputs.dataset_inputs
    assert (ds.dataset.name, ds.dataset.digest) == ("imagenet", "5")
    assert json.loads(ds.dataset.source)["ref"] == "imagenet@5"


def test_end_job_run_rejects_unknown_status(srv):
    with pytest.raises(ValidationError, match="FINISHED, FAILED or KILLED"):
        tracking.end_job_run(srv.tracking_uri, "x", "DONE")  # type: ignore[arg-type]


def test_wrong_token_is_an_auth_error(srv, monkeypatch):
    from aistack.errors import AuthError

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(AuthError, match="token"):
        tracking.create_job_run(
            srv.tracking_uri, job_id="j", name="n", project="p", user="u", inputs=[], token="bad"
        )


def test_buffered_logger_10000_points_none_lost(env):
    import mlflow

    c = mlflow.MlflowClient()
    rid = c.create_run(c.create_experiment("buffered")).info.run_id
    t0 = time.perf_counter()
    with BufferedMetricsLogger(run_id=rid, flush_every=1000, flush_interval_s=0.5) as ml:
        for i in range(5000):
            ml.log_many({"loss": 1.0 / (i + 1), "lr": i * 1e-6}, step=i)
    elapsed = time.perf_counter() - t0
    assert ml.pending == 0 and ml.sent == 10_000
    assert ml.requests == 10  # 10 batches of 1,000
    for key in ("loss", "lr"):
        hist = c.get_metric_history(rid, key)
        assert sorted(m.step for m in hist) == list(range(5000))
    assert elapsed < 120


def test_buffered_logger_flushes_at_exit_to_real_server(env):
    """A job script that logs and exits without close(): every point reaches the server."""
    import os
    import sys

    import mlflow

    c = mlflow.MlflowClient()
    rid = c.create_run(c.create_experiment("atexit")).info.run_id
    script = (
        "from aistack.mlops.logger import BufferedMetricsLogger\n"
        "ml = BufferedMetricsLogger(flush_every=10**9, flush_interval_s=3600)\n"
        "for i in range(2500):\n"
        "    ml.log('m', i, step=i)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "MLFLOW_RUN_ID": rid},
        check=True,
        timeout=120,
    )
    assert sorted(m.step for m in c.get_metric_history(rid, "m")) == list(range(2500))


@pytest.mark.slow
def test_buffered_logger_survives_server_restart(tmp_path, monkeypatch):
    """Points logged while the server is down are retried and arrive after it comes back."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    s = TrackingServer(tmp_path / "home", token="tok").start()
    try:
        import mlflow

        c = mlflow.MlflowClient(s.tracking_uri)
        rid = c.create_run(c.create_experiment("restart")).info.run_id
        ml = BufferedMetricsLogger(
            run_id=rid, tracking_uri=s.tracking_uri, flush_interval_s=0.1, max_backoff_s=0.5
        )
        for i in range(1500):
            ml.log("m", float(i), step=i)
        ml.flush(timeout_s=60)
        s.stop()
        for i in range(1500, 3000):
            ml.log("m", float(i), step=i)
        time.sleep(1.0)
        assert ml.pending == 1500 and ml.retries >= 1  # buffered, not dropped
        s.start()
        ml.close()
        hist = c.get_metric_history(rid, "m")
        assert sorted(int(m.value) for m in hist) == list(range(3000))
    finally:
        s.stop()


def test_registry_promote_alias_lineage(env, tmp_path):
    srv = env
    rid = _job_run(srv, tmp_path, job_id="job-7", val_loss=3.0)
    with pytest.raises(NotFoundError, match="no model or artifact at 'nope'"):
        registry.register_from_run(rid, "gpt", "nope")
    mv = registry.register_from_run(rid, "gpt", "model")
    assert mv["version"] >= 1 and mv["run_id"] == rid
    assert mv["tags"]["aistack.job_id"] == "job-7"
    v = mv["version"]

    with pytest.raises(ValidationError, match="not a condition"):
        registry.promote("gpt", v, "production", ["val_loss < abc"])
    with pytest.raises(ConflictError) as ei:
        registry.promote("gpt", v, "production", ["val_loss<2.5", "accuracy>=0.9"])
    assert "val_loss=3 does not satisfy val_loss<2.5" in str(ei.value)
    assert "accuracy" not in ei.value.message.split(":", 1)[1]  # the passing one is not blamed
    assert "production" not in registry.show_model("gpt")["aliases"]  # alias unchanged

    res = registry.promote("gpt", v, "production", ["val_loss<3.2", "accuracy>=0.9"])
    assert res.alias == "production" and [c.passed for c in res.checks] == [True, True]
    registry.set_alias("gpt", "staging", v)
    shown = registry.show_model("gpt")
    assert shown["aliases"] == {"production": v, "staging": v}
    registry.delete_alias("gpt", "staging")
    assert registry.show_model("gpt")["aliases"] == {"production": v}
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        registry.delete_alias("gpt", "staging")

    lin = registry.lineage("gpt", v)
    assert lin["model"]["aliases"] == ["production"]
    assert lin["run"]["id"] == rid and lin["run"]["metrics"]["val_loss"] == 3.0
    assert lin["job"] == {"id": "job-7", "project": "nlp"}
    head = subprocess.run(
        ["git", "-C", str(tmp_path / "code"), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert lin["code"]["git_commit"] == head
    assert [(d["name"], d["version"]) for d in lin["datasets"]] == [
        ("webtext", "3"),
        ("code", "7"),
    ]
    with pytest.raises(NotFoundError, match="no version 99"):
        registry.lineage("gpt", 99)


def test_cli_models(env, tmp_path):
    from typer.testing import CliRunner

    from aistack.cli.models import app

    rid = _job_run(env, tmp_path, job_id="job-cli", val_loss=2.0)
    runner = CliRunner()
    r = runner.invoke(app, ["register", "--run", rid, "--name", "cli-model", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["version"] == 1
    r = runner.invoke(
        app,
        ["promote", "cli-model", "--version", "1", "--to", "production"]
        + ["--require", "val_loss<1.0", "--json"],
    )
    assert isinstance(r.exception, ConflictError)
    assert "val_loss=2 does not satisfy val_loss<1.0" in str(r.exception)
    r = runner.invoke(
        app,
        ["promote", "cli-model", "--version", "1", "--to", "production"]
        + ["--require", "val_loss<3.2", "--json"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["checks"][0]["actual"] == 2.0
    r = runner.invoke(app, ["ls", "--json"])
    models = {m["name"]: m for m in json.loads(r.stdout)}
    assert models["cli-model"]["aliases"] == {"production": 1}
    r = runner.invoke(app, ["show", "cli-model"])
    assert r.exit_code == 0 and "production" in r.output
    r = runner.invoke(app, ["lineage", "cli-model", "--version", "1", "--json"])
    assert json.loads(r.stdout)["job"]["id"] == "job-cli"
    r = runner.invoke(app, ["lineage", "cli-model", "--version", "1"])
    assert r.exit_code == 0 and "job-cli" in r.output and "webtext" in r.output
    r = runner.invoke(app, ["alias", "cli-model", "staging", "--version", "1", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["version"] == 1


def test_cli_register_bad_name_and_path_over_http(env, tmp_path):
    """Through the tracking server: `--path ../../etc` was "400 Client Error: BAD REQUEST for
    url: ..."; `--name 'm@x'` registered a model `serve deploy` cannot name."""
    from typer.testing import CliRunner

    from aistack.cli.models import app

    rid = _job_run(env, tmp_path, job_id="job-bad-input", val_loss=2.0)
    runner = CliRunner()
    r = runner.invoke(app, ["register", "--run", rid, "--name", "m-ok", "--path", "../../etc"])
    assert isinstance(r.exception, ValidationError), r.output
    assert str(r.exception).startswith("path: '../../etc' points outside the run's artifacts")
    assert "Client Error" not in str(r.exception)
    r = runner.invoke(app, ["register", "--run", rid, "--name", "m@x"])
    assert isinstance(r.exception, ValidationError), r.output
    assert "'m@x' is not a valid registered model name" in str(r.exception)
    r = runner.invoke(app, ["ls", "--json"])
    assert not {"m-ok", "m@x"} & {m["name"] for m in json.loads(r.stdout)}


def test_models_router(env, tmp_path):
    """The /models router reads the same MLflow store directly (no HTTP to itself)."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from fastapi.testclient import TestClient

    from aistack.errors import AistackError
    from aistack.server.routers.models import router
    from aistack.settings import Settings

    rid = _job_run(env, tmp_path, job_id="job-api", val_loss=1.0)
    registry.register_from_run(rid, "api-model", "model")
    app = FastAPI()
    app.state.ctx = SimpleNamespace(settings=Settings(home=env.home))

    @app.exception_handler(AistackError)
    async def _err(request, exc):  # the lead's app has the same mapping
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    app.include_router(router, prefix="/api/v1")
    with TestClient(app) as tc:
        names = [m["name"] for m in tc.get("/api/v1/models").json()]
        assert "api-model" in names
        d = tc.get("/api/v1/models/api-model").json()
        assert d["versions"][0]["run_id"] == rid
        r = tc.post(
            "/api/v1/models/api-model/promote",
            json={"version": 1, "to": "production", "require": ["val_loss>5"]},
        )
        assert r.status_code == 409 and "val_loss=1 does not satisfy val_loss>5" in r.text
        r = tc.post(
            "/api/v1/models/api-model/promote", json={"version": 1, "to": "prod", "bogus": 1}
        )
        assert r.status_code == 422
        r = tc.post(
            "/api/v1/models/api-model/promote",
            json={"version": 1, "to": "production", "require": ["val_loss<5"]},
        )
        assert r.status_code == 200 and r.json()["alias"] == "production"
        lin = tc.get("/api/v1/models/api-model/versions/1/lineage").json()
        assert lin["job"]["id"] == "job-api"
        # the services deployed with it (lineage edges): none here, and the API says so
        assert lin["services"] == [] and lin["services_error"] is None
        assert tc.get("/api/v1/models/missing").status_code == 404


def test_register_logged_model_and_load_by_alias(env):
    """MLflow 3 models (log_model(name=...)) register by name and load as models:/NAME@alias."""
    import mlflow
    import mlflow.pyfunc

    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    mlflow.set_tracking_uri(env.tracking_uri)
    with mlflow.start_run() as run:
        mlflow.log_metric("val_loss", 1.0)
        info = mlflow.pyfunc.log_model(name="echo", python_model=Echo(), pip_requirements=[])
    mv = registry.register_from_run(run.info.run_id, "echo-model", "echo")
    assert mv["source"] == f"models:/{info.model_id}"
    registry.promote("echo-model", mv["version"], "production", ["val_loss<2"])
    model = mlflow.pyfunc.load_model("models:/echo-model@production")
    assert list(model.predict([1, 2, 3])) == [1, 2, 3]


def test_listings_read_every_page_through_the_server(env, tmp_path, monkeypatch):
    """Page tokens through MLflow's REST API: 2 models or versions a page, every one listed."""
    import mlflow

    c = mlflow.MlflowClient(env.tracking_uri)
    mine = [f"paged-{i}" for i in range(5)]
    for n in mine:
        c.create_registered_model(n)
    everything = sorted(rm.name for rm in c.search_registered_models(max_results=1000))
    assert set(mine) <= set(everything)
    listed = [m["name"] for m in registry.list_models(page_size=2)]
    assert listed == everything

    rid = _job_run(env, tmp_path, job_id="job-paged")
    for _ in range(3):
        registry.register_from_run(rid, "paged-0", "model")
    monkeypatch.setattr(registry, "MODEL_VERSIONS_PAGE", 2)
    assert [v["version"] for v in registry.show_model("paged-0")["versions"]] == [3, 2, 1]
    from aistack.mlops.lineage import model_versions_of_runs

    assert model_versions_of_runs([rid]) == {rid: [("paged-0", 1), ("paged-0", 2), ("paged-0", 3)]}
