"""End to end through the real `aistack up`: a job reading a dataset version logs to MLflow with
plain mlflow.* calls and the buffered logger; its run carries params, metrics, system metrics,
tags and the dataset input; the model is registered, a gate refuses, lineage reaches the dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("mlflow")

from aistack.mlops.testing import free_port  # noqa: E402

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

JOB = textwrap.dedent(
    """
    import tempfile
    import mlflow
    from aistack.mlops import BufferedMetricsLogger

    mlflow.log_param("lr", 0.01)
    with BufferedMetricsLogger() as ml:
        for i in range(3000):
            ml.log("val_loss", 4.0 - i / 1000, step=i)
    d = tempfile.mkdtemp()
    open(d + "/w.bin", "w").write("weights")
    mlflow.log_artifacts(d, "model")
    import time
    x, t0 = 0, time.monotonic()
    # busy for longer than the supervisor's sampling (1 s) plus the server's monitor pass (2 s),
    # whatever the machine's speed: a fixed loop count ended before the first sample on a
    # fast run, and the run then had no system metrics
    while time.monotonic() - t0 < 4.0:
        x += 1
    """
)


def _cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aistack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
    )


def test_job_run_through_aistack_up(tmp_path):
    home = tmp_path / "home"
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AISTACK_", "MLFLOW_", "_MLFLOW"))
    }
    env.update(AISTACK_HOME=str(home), AISTACK_PORT=str(port), MLFLOW_DISABLE_TELEMETRY="true")
    (tmp_path / "corpus.txt").write_text("hello world\n" * 100)
    _cli(env, "data", "add", "corpus", str(tmp_path / "corpus.txt"), "--json")
    (tmp_path / "job.py").write_text(JOB)
    (tmp_path / "job.yaml").write_text(
        "name: e2e\nproject: mlops-e2e\ncommand: python job.py\n"
        f"workdir: {tmp_path}\ninputs: [corpus@v1]\n"
    )
    _cli(env, "up", "--detach", "--port", str(port), "--timeout", "240")
    try:
        out = _cli(env, "submit", str(tmp_path / "job.yaml"), "--json")
        job_id = json.loads(out.stdout)["id"]
        waited = _cli(env, "wait", job_id, check=False)
        assert waited.returncode == 0, (
            waited.stdout + waited.stderr + _cli(env, "logs", job_id).stdout
        )

        import mlflow

        client = mlflow.MlflowClient(f"http://127.0.0.1:{port}/mlflow")
        os.environ["MLFLOW_TRACKING_TOKEN"] = (home / "token").read_text().strip()
        try:
            exp = client.get_experiment_by_name("mlops-e2e")
            (run,) = client.search_runs([exp.experiment_id])
            assert run.data.tags["aistack.job_id"] == job_id
            assert run.data.tags["aistack.project"] == "mlops-e2e"
            assert run.data.params["lr"] == "0.01"
            hist = client.get_metric_history(run.info.run_id, "val_loss")
            assert sorted(m.step for m in hist) == list(range(3000))
            assert any(k.startswith("system/") for k in run.data.metrics)
            (ds,) = run.inputs.dataset_inputs
            assert (ds.dataset.name, ds.dataset.digest) == ("corpus", "v1")
            assert run.info.status == "FINISHED"
        finally:
            os.environ.pop("MLFLOW_TRACKING_TOKEN", None)

        rid = run.info.run_id
        reg = _cli(env, "models", "register", "--run", rid, "--name", "e2e-model", "--json")
        assert json.loads(reg.stdout)["version"] == 1
        refused = _cli(
            env,
            "models",
            "promote",
            "e2e-model",
            "--version",
            "1",
            "--to",
            "production",
            "--require",
            "val_loss<0.5",
            check=False,
        )
        assert refused.returncode == 2
        assert "val_loss=1.001 does not satisfy val_loss<0.5" in " ".join(refused.stderr.split())
        ok = _cli(env, "models", "promote", "e2e-model", "--version", "1", "--to", "production")
        assert "production" in ok.stdout
        lin = json.loads(
            _cli(env, "models", "lineage", "e2e-model", "--version", "1", "--json").stdout
        )
        assert lin["job"]["id"] == job_id
        assert [(d["name"], d["version"]) for d in lin["datasets"]] == [("corpus", "v1")]
        # and forward: dataset → job → run → model version, in the CLI and the API
        fwd = json.loads(_cli(env, "data", "lineage", "corpus@v1", "--json").stdout)
        edges = {(e["src"], e["dst"]) for e in fwd["edges"]}
        assert ("dataset:corpus@v1", f"job:{job_id}") in edges
        assert (f"job:{job_id}", f"run:{rid}") in edges
        assert (f"run:{rid}", "model:e2e-model@v1") in edges
        import httpx

        api = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/datasets/corpus/versions/1/lineage",
            headers={"Authorization": f"Bearer {(home / 'token').read_text().strip()}"},
        ).json()
        assert {"src": f"run:{rid}", "dst": "model:e2e-model@v1"} in api["edges"]
    finally:
        _cli(env, "down", check=False)
