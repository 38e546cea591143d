"""Serving MLflow pyfunc model versions from a real registry (SQLite-backed MLflow store).

The test logs a small PythonModel (models-from-code, so the replica process can load it),
registers two versions and an alias, deploys version 1, checks /invocations and dynamic
batching, rejects unknown versions with a clear error, and rolls to the alias under load.
"""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from aistack.errors import NotFoundError
from aistack.serving import manager

pytestmark = pytest.mark.mlflow

MODEL_CODE = """
import mlflow
import pandas as pd


class Scale(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        self.factor = float(context.model_config["factor"])

    def predict(self, context, model_input, params=None):
        if "x" not in model_input.columns:
            raise ValueError("expected a column named x")
        return pd.DataFrame({"y": model_input["x"].astype(float) * self.factor})


mlflow.models.set_model(Scale())
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory):
    mlflow = pytest.importorskip("mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_DISABLE_TELEMETRY")}
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    code = root / "scale_model.py"
    code.write_text(textwrap.dedent(MODEL_CODE))
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("serving-test", artifact_location=str(root / "artifacts"))
    client = mlflow.MlflowClient(uri)
    for factor in (2, 10):
        with mlflow.start_run(experiment_id=exp):
            mlflow.pyfunc.log_model(
                name="model",
                python_model=str(code),
                model_config={"factor": factor},
                registered_model_name="scaler",
                pip_requirements=["pandas"],
            )
    client.set_registered_model_alias("scaler", "production", "2")
    yield uri
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def home(aistack_home: Path):
    yield aistack_home
    for st in manager.list_services():
        manager.delete(st["name"])


def test_unknown_versions_and_aliases_are_clear_errors(registry: str, home: Path) -> None:
    with pytest.raises(NotFoundError, match=r"no version 9 \(versions: 1, 2\)"):
        manager.deploy("scaler:9")
    with pytest.raises(NotFoundError, match="no alias 'staging'.*aliases: production"):
        manager.deploy("scaler@staging")
    with pytest.raises(NotFoundError, match="no registered model named 'nope'.*scaler"):
        manager.deploy("nope@production")
    assert manager.list_services() == []


def test_pyfunc_invocations_batching_and_rolling_update(registry: str, home: Path) -> None:
    st = manager.deploy(
        "scaler:1", min_replicas=1, max_replicas=1, max_wait_ms=20, wait_ready_s=120
    )
    assert st["name"] == "scaler" and st["model_uri"] == "models:/scaler/1"
    url = st["url"] + "/invocations"
    r = httpx.post(url, json={"dataframe_split": {"columns": ["x"], "data": [[1], [2]]}})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [{"y": 2.0}, {"y": 4.0}]
    bad = httpx.post(url, json={"dataframe_records": [{"z": 1}]})
    assert bad.status_code == 400 and "expected a column named x" in bad.json()["error"]["message"]

    import concurrent.futures

    with httpx.Client() as c, concurrent.futures.ThreadPoolExecutor(8) as pool:
        outs = list(
            pool.map(
                lambda i: c.post(url, json={"dataframe_records": [{"x": i}]}).json(), range(32)
            )
        )
    assert [o["predictions"][0]["y"] for o in outs] == [2.0 * i for i in range(32)]

    def batch_counts():  # replicas report batch stats with each health check (every 0.5 s)
        counts = manager.status("scaler")["metrics"]["batch_size_counts"]
        return counts if sum(int(k) * v for k, v in counts.items()) >= 33 else None

    deadline = time.monotonic() + 10
    while (counts := batch_counts()) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert counts, manager.status("scaler")["metrics"]
    assert max(int(k) for k in counts) > 1, counts  # concurrent requests shared model calls

    codes: list[int] = []
    stop = time.monotonic() + 600

    import threading

    done = threading.Event()

    def load() -> None:
        with httpx.Client(timeout=30) as c:
            while not done.is_set() and time.monotonic() < stop:
                codes.append(c.post(url, json={"dataframe_records": [{"x": 1}]}).status_code)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:  # the command: aistack serve update NAME --to production
        import json

        from typer.testing import CliRunner

        from aistack.cli.main import app

        res = CliRunner().invoke(app, ["serve", "update", "scaler", "--to", "production", "--json"])
        assert res.exit_code == 0, (res.stdout, res.exception)
        s = json.loads(res.stdout)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert codes and set(codes) == {200}
    assert s["model_uri"] == "models:/scaler/2"
    r = httpx.post(url, json={"dataframe_records": [{"x": 3}]})
    assert r.json()["predictions"] == [{"y": 30.0}]


@pytest.mark.torch
def test_reference_gpt_from_the_registry_answers_openai_completions(
    registry: str, home: Path, tmp_path: Path
) -> None:
    """aistack.train's GPT, logged with its tokenizer as a pyfunc, served at /v1/completions."""
    torch = pytest.importorskip("torch")
    tokenizers = pytest.importorskip("tokenizers")
    train_model = pytest.importorskip("aistack.train.model")
    export = pytest.importorskip("aistack.train.export")
    import mlflow

    tok = tokenizers.Tokenizer(tokenizers.models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel()
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, special_tokens=["[UNK]"])
    tok.train_from_iterator(["the cluster serves models", "hello world of gpus"] * 50, trainer)
    tok_path = tmp_path / "tokenizer.json"
    tok.save(str(tok_path))
    torch.manual_seed(0)
    cfg = train_model.GPTConfig(
        vocab_size=tok.get_vocab_size(), seq_len=64, n_layer=1, n_head=2, n_embd=32
    )
    gpt = train_model.GPT(cfg).eval()
    # in the fixture's experiment: the default one keeps artifacts in ./mlruns (the checkout)
    exp = mlflow.get_experiment_by_name("serving-test")
    assert exp is not None
    with mlflow.start_run(experiment_id=exp.experiment_id):
        uri = export.log_model(gpt, cfg, tokenizer=str(tok_path))
    mlflow.register_model(uri, "refgpt")

    st = manager.deploy("refgpt:1", min_replicas=1, max_replicas=1, wait_ready_s=180)
    body = {"prompt": ["hello world", "the cluster"], "max_tokens": 5, "temperature": 0}
    r = httpx.post(st["url"] + "/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    texts = [c["text"] for c in r.json()["choices"]]
    expected = []
    for p in body["prompt"]:
        ids = tok.encode(p).ids
        out = gpt.generate(torch.tensor([ids]), 5, temperature=0.0)
        expected.append(tok.decode(out[0, len(ids) :].tolist()))
    assert texts == expected
    # usage is in the tokenizer's tokens (it counted characters: 5 BPE tokens are ~20 of them)
    prompt_tokens = sum(len(tok.encode(p).ids) for p in body["prompt"])
    assert r.json()["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 2 * 5,
        "total_tokens": prompt_tokens + 10,
    }
