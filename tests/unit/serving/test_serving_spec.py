from __future__ import annotations

import pytest
from pydantic import ValidationError as PydanticValidationError

from aistack.errors import NotFoundError, ValidationError
from aistack.serving.models import ModelLoadError, load_model, resolve_model
from aistack.serving.spec import AutoscaleConfig, ServiceSpec, parse_model_ref, service_name_for


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("iris", ("registry", "models:/iris/latest")),
        ("iris@production", ("registry", "models:/iris@production")),
        ("iris:3", ("registry", "models:/iris/3")),
        ("models:/iris/7", ("registry", "models:/iris/7")),
        ("models:/iris@staging", ("registry", "models:/iris@staging")),
        ("runs:/abc/model", ("run", "runs:/abc/model")),
        ("builtin:tiny-gpt?seed=2", ("builtin", "builtin:tiny-gpt?seed=2")),
        ("/tmp/model", ("path", "/tmp/model")),
    ],
)
def test_parse_model_ref(ref: str, expected: tuple[str, str]) -> None:
    assert parse_model_ref(ref) == expected


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("", "empty"),
        ("iris:three", "not a number"),
        ("iris@", "empty alias"),
        ("models:/iris", "models:/NAME/VERSION"),
        ("bad name!", "not a valid"),
    ],
)
def test_parse_model_ref_errors_say_how_to_fix(ref: str, needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_model_ref(ref)
    assert needle in str(exc.value)


def test_service_name_for() -> None:
    assert service_name_for("iris@production") == "iris"
    assert service_name_for("builtin:tiny-gpt?seed=1") == "tiny-gpt"
    assert service_name_for("models:/My_Model/3") == "my-model"


def test_spec_rejects_bad_name_and_unknown_keys() -> None:
    with pytest.raises(PydanticValidationError, match="service name"):
        ServiceSpec(name="Bad Name", model="x", model_uri="x")
    with pytest.raises(PydanticValidationError, match="extra"):
        ServiceSpec.model_validate({"name": "ok", "model": "x", "model_uri": "x", "replicas": 3})


def test_a_services_env_reads_numbers_as_text_and_refuses_booleans(aistack_home) -> None:  # type: ignore[no-untyped-def]
    """The rule of a job's env (docker compose's): 1 is "1"; a boolean is an error naming the
    key, before anything is stored."""
    from aistack.serving import manager

    spec = ServiceSpec(name="s", model="x", model_uri="x", env={"A": 1, "B": 0.5, "C": "c"})
    assert spec.env == {"A": "1", "B": "0.5", "C": "c"}
    with pytest.raises(ValidationError) as ei:
        manager.deploy(
            "builtin:echo", launcher="process", env={"A": 1, "DEBUG": False}, wait_ready_s=None
        )
    assert ei.value.message == (
        'env.DEBUG: false is a YAML boolean; quote it ("false") if you mean the string'
    )
    assert "environment values are strings" in (ei.value.hint or "")
    with pytest.raises(ValidationError, match="env.A: must be a string, got a list"):
        manager.deploy("builtin:echo", launcher="process", env={"A": [1]}, wait_ready_s=None)
    assert not (aistack_home / "services" / "echo").exists()


def test_autoscale_min_above_max() -> None:
    with pytest.raises(PydanticValidationError, match="lower `min_replicas` or raise `max_"):
        AutoscaleConfig(min_replicas=5, max_replicas=2)


def test_resolve_builtin_and_unknown() -> None:
    assert resolve_model("builtin:echo").uri == "builtin:echo"
    with pytest.raises(NotFoundError, match="built-in models: echo, tiny-gpt"):
        resolve_model("builtin:nope")


def test_unreachable_registry_is_a_connection_error_saying_what_to_start(
    aistack_home, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    from aistack.errors import ConnectionFailed

    pytest.importorskip("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(
        ConnectionFailed, match="registry at http://127.0.0.1:.* does not answer"
    ) as ei:
        resolve_model("iris")  # was NotFoundError with MLflow's urllib3 text
    assert "aistack up" in (ei.value.hint or "")


def test_a_down_registry_is_reported_fast_at_deploy_time(
    aistack_home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the retries `aistack serve` sets (2, MLflow's backoff factor 2) resolving against
    a closed port took about 12 s (two MLflow calls, each retried with backoff)."""
    import os
    import socket
    import time

    from aistack.errors import ConnectionFailed

    pytest.importorskip("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed) as ei:
        resolve_model("iris@production")
    took = time.monotonic() - t0
    assert took < 5.0, f"took {took:.1f} s"
    assert f"registry at http://127.0.0.1:{port} does not answer" in ei.value.message
    assert "aistack up" in (ei.value.hint or "")
    # the patient settings are back for everything else (replicas, tracking)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "2"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_resolve_path_without_mlmodel(tmp_path) -> None:
    with pytest.raises(NotFoundError, match="no MLmodel file"):
        resolve_model(str(tmp_path))


def test_load_failures_raise_model_load_error() -> None:
    with pytest.raises(ModelLoadError, match="fail=load"):
        load_model("builtin:echo?fail=load")
    assert load_model("builtin:echo?fail=health").healthy is False


def test_launcher_choice_and_gpus_need_the_scheduler(aistack_home) -> None:
    from aistack.serving import manager

    assert manager.choose_launcher("auto") == "process"  # no server configured
    assert manager.choose_launcher("jobs") == "jobs"
    with pytest.raises(ValidationError, match="not one of"):
        manager.choose_launcher("k8s")
    with pytest.raises(ValidationError, match="gpus: local-process replicas") as exc:
        manager.deploy("builtin:echo", gpus=1, launcher="process")
    assert "aistack up" in str(exc.value) and "pass `launcher` jobs" in str(exc.value)
    assert exc.value.details == {"field": "gpus"}
    assert not (aistack_home / "services" / "echo").exists()


def test_update_target_refs() -> None:
    from aistack.serving.manager import target_ref

    st = {"model_uri": "models:/iris/3"}
    assert target_ref(st, "production") == "iris@production"
    assert target_ref(st, ":4") == "iris:4"
    assert target_ref(st, "other@staging") == "other@staging"
    assert target_ref(st, "builtin:echo") == "builtin:echo"
    assert target_ref({"model_uri": "builtin:echo"}, "builtin:tiny-gpt") == "builtin:tiny-gpt"


@pytest.mark.parametrize("ref", ["models:/iris/1", "models:/iris@production", "runs:/abc/model"])
def test_a_replica_fails_fast_when_the_registry_is_down(
    aistack_home, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], ref: str
) -> None:
    """A replica's load retried a refused connection with MLflow's backoff (minutes with its
    defaults; about 30 s with these) before it failed; now it fails within seconds, saying
    what does not answer and what to start, and the replica exits with its load-failed code."""
    import os
    import socket
    import time

    from aistack.serving.replica import EXIT_LOAD_FAILED, main

    pytest.importorskip("mlflow")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "4")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "2")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    t0 = time.monotonic()
    with pytest.raises(ModelLoadError) as ei:
        load_model(ref)
    took = time.monotonic() - t0
    assert took < 10.0, f"took {took:.1f} s"
    what = "model registry" if ref.startswith("models:") else "tracking server"
    assert f"cannot load {ref}: the {what} at http://127.0.0.1:{port} does not answer" in str(
        ei.value
    )
    assert "aistack up" in str(ei.value)
    # the patient settings are back (the process keeps them for everything else)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "4"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ
    # the replica process: exit code 3 and the message on stderr
    assert main(["--model", ref, "--port", "0"]) == EXIT_LOAD_FAILED
    assert f"at http://127.0.0.1:{port} does not answer" in capsys.readouterr().err


def test_a_service_or_model_name_with_a_trailing_newline_is_refused() -> None:
    """`$` also matches before a final newline: "chat\\n" passed as a service name."""
    from aistack.mlops.registry import valid_model_name

    with pytest.raises(PydanticValidationError, match="service name"):
        ServiceSpec(name="chat\n", model="x", model_uri="x")
    with pytest.raises(ValidationError):
        parse_model_ref("gpt\n@production")
    assert not valid_model_name("gpt\n") and valid_model_name("gpt")
