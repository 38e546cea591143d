"""Offline parts of per-job tracking: dataset refs, system-metric mapping, server config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from aistack.errors import ValidationError  # noqa: E402
from aistack.mlops import tracking  # noqa: E402
from aistack.mlops.server import artifacts_destination, backend_store_uri, server_env  # noqa: E402
from aistack.settings import Settings  # noqa: E402


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("webtext@3", ("webtext", "3")),
        ("webtext:v2", ("webtext", "v2")),
        ("s3://bucket/datasets/code/7", ("code", "7")),
        ("file:///data/ds/abc123", ("ds", "abc123")),
        ("plain", ("plain", "latest")),
        ("org/name@1.2", ("org/name", "1.2")),
    ],
)
def test_parse_input(ref, expected):
    assert tracking.parse_input(ref) == expected


def test_parse_input_empty():
    with pytest.raises(ValidationError, match="inputs: empty dataset reference"):
        tracking.parse_input("  ")


def test_dataset_entities_long_version_is_hashed():
    (short, long_) = tracking.dataset_entities(["a@1", "b@" + "f" * 64])
    assert short.dataset.digest == "1"
    assert len(long_.dataset.digest) == 36
    assert json.loads(long_.dataset.source)["version"] == "f" * 64
    assert {t.key: t.value for t in short.tags}["mlflow.data.context"] == "input"


def test_system_metric_entities():
    samples = [
        {"t": 1000.0, "cpu_percent": 50, "rss_mb": 128.5, "gpu_util": None, "gpu_mem_mb": 900},
        {"t": 1002.7, "cpu_percent": 75.5, "gpu_util": [10, None, 30]},
    ]
    ms = tracking.system_metric_entities(samples, start_s=999.5)
    got = sorted((m.key, m.value, m.step, m.timestamp) for m in ms)
    assert got == sorted(
        [
            ("system/cpu_utilization_percentage", 50.0, 0, 1_000_000),
            ("system/process_memory_rss_megabytes", 128.5, 0, 1_000_000),
            ("system/gpu_memory_usage_megabytes", 900.0, 0, 1_000_000),
            ("system/cpu_utilization_percentage", 75.5, 3, 1_002_700),
            ("system/gpu_0_utilization_percentage", 10.0, 3, 1_002_700),
            ("system/gpu_2_utilization_percentage", 30.0, 3, 1_002_700),
        ]
    )


@pytest.mark.parametrize(
    ("sample", "match"),
    [
        ({"cpu_percent": 1}, r"samples\[0\]\.t"),
        ({"t": "now"}, r"samples\[0\]\.t"),
        ({"t": 1.0, "cpu_percent": "high"}, r"samples\[0\]\.cpu_percent"),
        ({"t": 1.0, "gpu_util": [1, float("inf")]}, r"samples\[0\]\.gpu_util\[1\]"),
    ],
)
def test_bad_samples_name_the_field(sample, match):
    with pytest.raises(ValidationError, match=match):
        tracking.system_metric_entities([sample], start_s=0)


def test_job_env():
    env = tracking.job_env("http://h:1/mlflow/", "r1", token="tk")
    assert env == {
        "MLFLOW_TRACKING_URI": "http://h:1/mlflow",
        "MLFLOW_RUN_ID": "r1",
        "MLFLOW_TRACKING_TOKEN": "tk",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    assert "MLFLOW_TRACKING_TOKEN" not in tracking.job_env("http://h:1/mlflow", "r1")


def test_create_job_run_validates_before_contacting_server():
    with pytest.raises(ValidationError, match="project: must not be empty"):
        tracking.create_job_run(
            "http://127.0.0.1:9/mlflow", job_id="j", name="n", project=" ", user="u", inputs=[]
        )


LONG_COMMAND = (
    "python -m aistack.train.run --data /data/webtext/shard_*.tok --run-name gpt-small "
    "--seq-len 256 --n-layer 4 --n-head 4 --n-embd 256 --micro-batch-size 16 --grad-accum 2 "
    "--max-steps 200 --lr 3e-4 --min-lr 3e-5 --warmup-steps 5 --checkpoint-every 50 "
    "--log-every 5 --register-as gpt-small --tokenizer /data/webtext/tokenizer.json"
)


@pytest.mark.parametrize("how", ["command", "params"])
def test_create_job_run_keeps_the_whole_command(tmp_path, monkeypatch, how):
    """The `command` param is cut at 250 characters, visibly ("…"); the aistack.command tag
    has all of it."""
    import mlflow

    assert len(LONG_COMMAND) > 300
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    kw = {"command": LONG_COMMAND} if how == "command" else {"params": {"command": LONG_COMMAND}}
    rid = tracking.create_job_run(
        uri, job_id="j1", name="n", project="p", user="u", inputs=[], **kw
    )
    data = mlflow.tracking.MlflowClient(uri).get_run(rid).data
    assert data.tags[tracking.TAG_COMMAND] == LONG_COMMAND
    param = data.params["command"]
    assert len(param) == 250 and param.endswith("…")
    assert LONG_COMMAND.startswith(param[:-1])


def test_create_job_run_short_command_and_long_params(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    rid = tracking.create_job_run(
        uri,
        job_id="j2",
        name="n",
        project="p",
        user="u",
        inputs=[],
        params={"lr": 0.1, "notes": "x" * 7000},
        command="python train.py",
    )
    data = mlflow.tracking.MlflowClient(uri).get_run(rid).data
    assert data.params["command"] == "python train.py"  # short: not cut, no "…"
    assert data.tags[tracking.TAG_COMMAND] == "python train.py"
    assert data.params["lr"] == "0.1"
    assert len(data.params["notes"]) == 6000 and data.params["notes"].endswith("…")


def test_shorten():
    assert tracking.shorten("abc", 3) == "abc"
    assert tracking.shorten("abcd", 3) == "ab…"


def test_git_commit(tmp_path):
    assert tracking.git_commit(str(tmp_path)) is None


def test_server_env_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("AISTACK_MLFLOW_BACKEND_URI", raising=False)
    s = Settings(home=tmp_path)
    env = server_env(s)
    assert env["_MLFLOW_SERVER_FILE_STORE"] == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert env["_MLFLOW_STATIC_PREFIX"] == "/mlflow"
    assert env["_MLFLOW_SERVER_ARTIFACT_ROOT"] == "mlflow-artifacts:/"
    assert env["_MLFLOW_SERVER_SERVE_ARTIFACTS"] == "true"
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["_MLFLOW_SERVER_ARTIFACT_DESTINATION"] == str(
        tmp_path.resolve() / "objects" / "mlflow-artifacts"
    )


def test_artifacts_destination_follows_storage_url(tmp_path, monkeypatch):
    assert (
        artifacts_destination(Settings(home=tmp_path, storage_url="s3://bkt/aistack/"))
        == "s3://bkt/aistack/mlflow-artifacts"
    )
    mem = artifacts_destination(Settings(home=tmp_path, storage_url="memory://x"))
    assert Path(mem) == tmp_path.resolve() / "mlflow-artifacts"
    monkeypatch.setenv("AISTACK_MLFLOW_BACKEND_URI", "postgresql+psycopg://u@h/db")
    assert backend_store_uri(Settings(home=tmp_path)) == "postgresql+psycopg://u@h/db"


def test_s3_endpoint_passed_to_mlflow(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AISTACK_S3_ENDPOINT_URL", "http://127.0.0.1:8333")
    env = server_env(Settings(home=tmp_path, storage_url="s3://b/p"))
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:8333"
    assert "MLFLOW_S3_ENDPOINT_URL" not in server_env(Settings(home=tmp_path))
