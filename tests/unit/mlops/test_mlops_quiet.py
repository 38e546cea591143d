"""MLflow's known noise stays out of job logs: artifact progress bars, the pyfunc "Add type hints"
warning and SQLAlchemy's ``noload`` deprecation — and no other warning is hidden."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.mlops import quiet  # noqa: E402

JOB = textwrap.dedent(
    """
    import os, sys, warnings
    from pathlib import Path

    tmp = Path(sys.argv[1])
    uri = f"sqlite:///{tmp}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = uri

    def mark(text):
        print(f"=== {text}", file=sys.stderr, flush=True)

    mark("import")
    from aistack.train.export import log_model         # defines a PythonModel subclass
    from aistack.train.model import GPT, GPTConfig
    from aistack.mlops._client import mlflow_client
    import mlflow

    mark("store")
    client = mlflow_client(uri)                         # the SQL store starts here
    exp = client.create_experiment("e", artifact_location=(tmp / "art").as_uri())

    mark("log model")
    cfg = GPTConfig(vocab_size=16, seq_len=8, n_layer=1, n_head=1, n_embd=8)
    with mlflow.start_run(experiment_id=exp):
        model_uri = log_model(GPT(cfg), cfg)

    mark("download")
    out = mlflow.artifacts.download_artifacts(model_uri, dst_path=str(tmp / "dl"))
    print("downloaded:", sorted(os.listdir(out)))

    mark("other warnings")
    warnings.warn("an unrelated UserWarning")
    warnings.warn_explicit("another MLflow warning", UserWarning, "m.py", 1, module="mlflow.x")
    warnings.warn_explicit(
        "Add type hints to the `predict` method (not from MLflow)", UserWarning, "u.py", 2,
        module="userpkg",
    )
    warnings.warn_explicit(
        "some other deprecation", DeprecationWarning, "s.py", 3, module="sqlalchemy.orm"
    )
    mark("end")
    """
)


def test_logging_and_downloading_a_model_prints_none_of_mlflows_noise(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if k not in ("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "PYTHONWARNINGS")
    }
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    # -W default: show DeprecationWarnings too, as a job started with PYTHONWARNINGS or under
    # pytest does (the noload warning is one)
    r = subprocess.run(
        [sys.executable, "-W", "default", "-c", JOB, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "downloaded: ['MLmodel'," in r.stdout  # the model was logged and downloaded
    err = r.stderr
    noise, others = err.split("=== other warnings", 1)
    assert "Add type hints" not in noise
    assert "noload" not in noise
    assert "CloudPickle" not in noise  # the model is logged as code, not pickled
    assert "Downloading artifacts" not in noise and "it/s]" not in noise
    # everything else still shows
    assert "UserWarning: an unrelated UserWarning" in others
    assert "UserWarning: another MLflow warning" in others
    assert "UserWarning: Add type hints to the `predict` method (not from MLflow)" in others
    assert "DeprecationWarning: some other deprecation" in others


LOAD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path

    tmp = Path(sys.argv[1])
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
    import mlflow
    import torch
    from aistack.train.export import log_model
    from aistack.train.model import GPT, GPTConfig

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=16, seq_len=8, n_layer=1, n_head=1, n_embd=8)
    gpt = GPT(cfg).eval()
    exp = mlflow.create_experiment("e", artifact_location=(tmp / "art").as_uri())
    with mlflow.start_run(experiment_id=exp):
        print("=== log model", file=sys.stderr, flush=True)
        uri = log_model(gpt, cfg)
        print("=== logged", file=sys.stderr, flush=True)
    files = os.listdir(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp / "dl")))
    print("files:", sorted(files))
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"  # loads without unpickling
    got = mlflow.pyfunc.load_model(uri).predict({"tokens": [[1, 2, 3]], "max_new_tokens": 4})
    with torch.no_grad():
        want = gpt.generate(torch.tensor([[1, 2, 3]]), 4, temperature=0.0)[0].tolist()
    print("predicted:", got, "direct:", [want])
    """
)


def test_logged_model_is_not_pickled_and_predicts_like_the_trained_one(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = {**__import__("os").environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", None)
    r = subprocess.run(
        [sys.executable, "-c", LOAD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    # MLflow's "Passing a Python object as `python_model` ... CloudPickle" warning is not raised
    logging_model = r.stderr.split("=== log model", 1)[1].split("=== logged", 1)[0]
    assert "CloudPickle" not in logging_model and "python_model" not in logging_model
    lines = dict(x.split(": ", 1) for x in r.stdout.splitlines() if ": " in x)
    assert "python_model.pkl" not in lines["files"] and "gpt_pyfunc.py" in lines["files"]
    got, want = lines["predicted"].split(" direct: ")
    assert got == want and got.startswith("[[1, 2, 3, ")  # same greedy tokens as the GPT itself


def _define_pythonmodel() -> type:
    class Untyped(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input

    return Untyped


def test_without_mlflow_noise_holds_back_the_type_hints_warning_only() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _define_pythonmodel()  # control: MLflow does warn here
        assert [str(w.message) for w in seen if "Add type hints" in str(w.message)]
        seen.clear()
        with quiet.without_mlflow_noise():
            _define_pythonmodel()
            warnings.warn("keep me", UserWarning, stacklevel=1)
            warnings.warn("keep this deprecation", DeprecationWarning, stacklevel=1)
    assert [(str(w.message), w.category, Path(w.filename).name) for w in seen] == [
        ("keep me", UserWarning, "test_mlops_quiet.py"),
        ("keep this deprecation", DeprecationWarning, "test_mlops_quiet.py"),
    ]


def test_is_mlflow_noise() -> None:
    assert quiet.is_mlflow_noise("\x1b[33mAdd type hints to the `predict` method to enable ...")
    assert quiet.is_mlflow_noise("Add type hints to the `predict` method to enable ...")
    assert quiet.is_mlflow_noise("The ``noload`` loader strategy is deprecated and will be ...")
    assert not quiet.is_mlflow_noise("Type hint used in the model's predict function is not ...")
    assert not quiet.is_mlflow_noise("Passing a Python object as `python_model` ...")


def test_progress_bars_off_unless_the_user_turned_them_on(monkeypatch) -> None:
    monkeypatch.delenv(quiet.PROGRESS_BAR_ENV, raising=False)
    with warnings.catch_warnings():
        quiet.quiet_mlflow()
    from mlflow.environment_variables import MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR

    assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is False
    monkeypatch.setenv(quiet.PROGRESS_BAR_ENV, "true")
    with warnings.catch_warnings():
        quiet.quiet_mlflow()
    assert MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR.get() is True


def test_quiet_mlflow_adds_its_three_filters_once(monkeypatch) -> None:
    with warnings.catch_warnings():
        before = list(warnings.filters)
        quiet.quiet_mlflow()
        added = [f for f in warnings.filters if f not in before]
        assert [(f[0], f[1].pattern, f[2].__name__) for f in added] == [
            ("ignore", quiet.STARLETTE_WSGI_MESSAGE, "StarletteDeprecationWarning"),
            ("ignore", quiet.NOLOAD_MESSAGE, "SADeprecationWarning"),
            ("ignore", quiet.TYPE_HINTS_MESSAGE, "UserWarning"),
        ]
        calls: list[tuple] = []
        monkeypatch.setattr(warnings, "filterwarnings", lambda *a, **k: calls.append((a, k)))
        quiet.quiet_mlflow()  # changing the filters would make shown warnings show again
    assert calls == []
