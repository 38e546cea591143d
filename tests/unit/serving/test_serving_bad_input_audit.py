"""Hostile input to aistack.serving and /api/v1/services: a clear error naming the field,
never a traceback or a 500, and nothing stored or running is lost."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ConnectionFailed, NotFoundError, ValidationError
from aistack.serving import manager


@pytest.fixture
def no_controller(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    spawned: list[str] = []
    monkeypatch.setattr(
        manager, "_spawn_controller", lambda d, name, env=None: spawned.append(name)
    )
    return spawned


def _post(api: Any, path: str, body: dict[str, Any]) -> Any:
    from aistack.server.app import API_PREFIX

    return api.http.post(f"{API_PREFIX}{path}", json=body)


# -- model paths: item 1 of the REST fuzz sweep ---------------------------------------------------


@pytest.mark.parametrize("ref", ["../../etc/passwd", "./model", "file:model", "file:"])
def test_the_api_refuses_a_relative_model_path(
    api: Any, no_controller: list[str], ref: str
) -> None:
    """A relative path was read against the server's working directory, and its 404 said
    whether that directory held an MLflow model."""
    r = _post(api, "/services", {"model": ref, "name": "p", "launcher": "process"})
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["message"].startswith(f"model: {ref!r} is a relative path"), err
    assert err["details"] == {"field": "model"} and "absolute path" in err["hint"]
    assert no_controller == [] and manager.list_services() == []


def test_the_api_refuses_a_relative_update_target(api: Any, no_controller: list[str]) -> None:
    d = manager.service_dir("s")
    (d / "logs").mkdir(parents=True)
    spec = {"name": "s", "model": "builtin:echo", "model_uri": "builtin:echo"}
    (d / "spec.json").write_text(json.dumps(spec))
    before = (d / "spec.json").read_bytes()
    r = _post(api, "/services/s/update", {"to": "../../etc"})
    assert r.status_code == 422, r.text
    assert r.json()["details"] == {"field": "to"}
    assert (d / "spec.json").read_bytes() == before


def test_every_absolute_path_that_is_no_model_gets_the_same_answer(
    api: Any, no_controller: list[str], tmp_path: Path
) -> None:
    """Missing, a file, a folder without MLmodel, a name too long for the file system: one
    404 naming the field. The name too long was an OSError, a 500."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    refs = ["/" + "a" * 300, "/no/such/dir", str(tmp_path / "afile"), str(tmp_path / "adir")]
    answers = []
    for ref in refs:
        r = _post(api, "/services", {"model": ref, "name": "p", "launcher": "process"})
        assert r.status_code == 404, (ref[:40], r.text[:300])
        err = r.json()
        assert err["details"] == {"field": "model"}
        answers.append((err["message"].replace(repr(ref), "REF"), err["hint"]))
    assert len(set(answers)) == 1, answers
    assert answers[0][0] == (
        "model: REF is not an MLflow model directory (no MLmodel file that can be read there, "
        "or no such directory)"
    )
    assert no_controller == []


def test_file_uris_are_read_as_mlflow_reads_them(tmp_path: Path) -> None:
    """file:/abs (one slash) was read as the relative path 'file:/abs', and percent-escapes
    were not decoded; a file: URI of another host is refused."""
    from aistack.serving.models import resolve_model

    model = tmp_path / "my model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    for ref in (f"file:{model}", f"file://{model}", f"file://localhost{model}"):
        assert resolve_model(ref.replace(" ", "%20")).uri == str(model), ref
    with pytest.raises(ValidationError, match="names a file on the host 'elsewhere'") as ei:
        resolve_model("file://elsewhere/srv/model")
    assert ei.value.details == {"field": "model"}


# -- model references that no replica could load ------------------------------------------------


@pytest.mark.parametrize("ref", ["runs:/", "runs://x/model", "runs:/../../x", "runs:/abc/../m"])
def test_a_runs_uri_without_a_run_id_is_refused(
    aistack_home: Path, no_controller: list[str], ref: str
) -> None:
    """These were stored, then every replica start failed in MLflow."""
    with pytest.raises(ValidationError, match="as a run's model") as ei:
        manager.deploy(ref, name="r", launcher="process", wait_ready_s=None)
    assert ei.value.details == {"field": "model"} and "runs:/RUN_ID/PATH" in (ei.value.hint or "")
    assert no_controller == [] and manager.list_services() == []


def test_a_run_that_is_not_in_the_tracking_store_is_not_found(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_controller: list[str]
) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    (tmp_path / "mlflow.db").touch()
    with pytest.raises(NotFoundError, match="no run '0123abcd' in the tracking store") as ei:
        manager.deploy("runs:/0123abcd/model", name="r", launcher="process", wait_ready_s=None)
    assert ei.value.details == {"field": "model"}
    assert no_controller == [] and manager.list_services() == []


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("builtin:echo?delay_ms=abc", "delay_ms='abc' is not a number"),
        ("builtin:echo?delay_ms=nan", "delay_ms=nan is out of range (0 to 600000)"),
        ("builtin:echo?delay_ms=-5", "delay_ms=-5 is out of range (0 to 600000)"),
        ("builtin:echo?delai_ms=5", "unknown option 'delai_ms'"),
        ("builtin:echo?fail=sometimes", "fail='sometimes' is not load or health"),
        ("builtin:tiny-gpt?layers=-1", "layers=-1 is out of range (1 to 64)"),
        ("builtin:tiny-gpt?dim=100000000", "dim=100000000 is out of range (1 to 8192)"),
        ("builtin:tiny-gpt?dim=30&heads=4", "dim=30 is not a multiple of heads=4"),
        ("builtin:tiny-gpt?seed=x", "seed='x' is not a whole number"),
    ],
)
def test_builtin_options_a_replica_cannot_load_with_are_refused(
    aistack_home: Path, no_controller: list[str], ref: str, why: str
) -> None:
    """They were stored; each replica start then failed with a ValueError (or built a model
    too large for the machine) until the service was marked failed."""
    with pytest.raises(ValidationError) as ei:
        manager.deploy(ref, name="b", launcher="process", wait_ready_s=None)
    assert ei.value.message == f"model: {ref!r}: {why}"
    assert ei.value.details == {"field": "model"} and "fail=load" in (ei.value.hint or "")
    assert no_controller == [] and manager.list_services() == []


def test_builtin_options_in_use_still_deploy(aistack_home: Path, no_controller: list[str]) -> None:
    for i, ref in enumerate(
        [
            "builtin:echo?delay_ms=1000",
            "builtin:echo?seed=2&token_ms=0.5&fail=health",
            "builtin:tiny-gpt?layers=1&dim=32&heads=2&seed=1",
        ]
    ):
        assert manager.deploy(ref, name=f"b{i}", launcher="process", wait_ready_s=None)
    assert no_controller == ["b0", "b1", "b2"]


@pytest.mark.parametrize("name", ["", "   "])
def test_an_empty_service_name_is_refused(
    aistack_home: Path, no_controller: list[str], name: str
) -> None:
    """It deployed the service under the model's name ('echo'), or said that name was taken."""
    with pytest.raises(ValidationError, match="name: the service name is empty") as ei:
        manager.deploy("builtin:echo", name=name, launcher="process", wait_ready_s=None)
    assert ei.value.details == {"field": "name"}
    assert no_controller == [] and manager.list_services() == []


# -- the autoscaler and the batcher ---------------------------------------------------------------


@pytest.mark.parametrize("metric", ["inflight", "queue_delay"])
def test_a_tiny_target_scales_to_the_maximum_instead_of_crashing_the_tick(metric: str) -> None:
    """target 1e-320 is > 0, so the config took it; inflight / target was infinite and
    math.ceil raised OverflowError in every control-loop tick."""
    from aistack.serving.autoscaler import Autoscaler, LoadSample
    from aistack.serving.spec import AutoscaleConfig

    cfg = AutoscaleConfig(
        metric=metric,  # type: ignore[arg-type]
        target_inflight=1e-320,
        target_queue_delay_ms=1e-320,
        upscale_delay_s=0,
        max_replicas=7,
    )
    scaler = Autoscaler(cfg=cfg)
    scaler.observe(LoadSample(t=0.0, inflight=3.0, queue_delay_ms=5.0))
    d = scaler.decide(0.0, 1)
    assert (d.action, d.desired) == ("up", 7), d.reason
    assert d.reason.endswith("replicas, held to the maximum of 7")


@pytest.mark.parametrize("wait", [math.inf, math.nan, -1.0, 10_001.0, "5"])
def test_the_batcher_refuses_a_wait_it_cannot_keep(wait: Any) -> None:
    """An infinite wait held a lone request until the batch filled (forever under light
    load); NaN and negative waits became 0 without a word."""
    from aistack.serving.batching import DynamicBatcher

    with pytest.raises(ValueError, match="max_wait_ms must be a number of milliseconds from 0"):
        DynamicBatcher(lambda items: items, max_batch_size=4, max_wait_ms=wait)


def test_the_batcher_refuses_a_batch_size_that_is_not_a_count() -> None:
    from aistack.serving.batching import DynamicBatcher

    for size in (2.5, True, "4"):
        with pytest.raises(ValueError, match="max_batch_size must be a whole number"):
            DynamicBatcher(lambda items: items, max_batch_size=size)  # type: ignore[arg-type]

    b = DynamicBatcher(lambda items: items, max_batch_size=2, max_wait_ms=0)
    assert b.max_wait_s == 0.0


def test_the_replica_refuses_an_infinite_max_wait(tmp_path: Path) -> None:
    """It loaded the model and served with a batcher that never sent a lone request."""
    proc = subprocess.run(
        [sys.executable, "-m", "aistack.serving.replica", "--model", "builtin:echo"]
        + ["--max-wait-ms", "inf", "--ready-file", str(tmp_path / "ready.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "--max-wait-ms must be from 0 to 10000 milliseconds" in proc.stderr
    assert not (tmp_path / "ready.json").exists()


# -- delete -------------------------------------------------------------------------------------


def _stored(name: str) -> Path:
    d = manager.service_dir(name)
    (d / "logs").mkdir(parents=True)
    spec = {"name": name, "model": "builtin:echo", "model_uri": "builtin:echo"}
    (d / "spec.json").write_text(json.dumps(spec))
    (d / "state.json").write_text(json.dumps({"name": name, "replicas": []}))
    return d


def test_a_delete_that_loses_the_race_to_another_is_not_found(aistack_home: Path) -> None:
    """Two deletes at once: the second's move found nothing (FileNotFoundError, a 500)."""
    d = _stored("s")
    manager._bury(d)
    with pytest.raises(NotFoundError, match="no service named 's': it was deleted meanwhile"):
        manager._bury(d)


def test_a_service_deleted_twice_in_one_second_keeps_both_folders(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second folder was moved inside the first one's (shutil.move into a folder)."""
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.0)
    kept = []
    for model in ("first", "second"):
        d = _stored("s")
        (d / "model.txt").write_text(model)
        kept.append(Path(manager.delete("s")["kept_at"]))
    assert [p.name for p in kept] == ["s-1700000000", "s-1700000000-1"]
    assert [(p / "model.txt").read_text() for p in kept] == ["first", "second"]
    assert sorted(p.name for p in kept[0].iterdir()) == [
        "logs",
        "model.txt",
        "spec.json",
        "state.json",
    ]


def test_delete_of_a_controller_that_exits_meanwhile(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller's shutdown call failed because it had just exited (another delete):
    os.kill then raised ProcessLookupError, a 500, and the service was left half deleted."""
    _stored("s")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # an exited, reaped process: its pid answers ProcessLookupError
    ctl = {"pid": gone.pid, "url": "http://127.0.0.1:9"}
    monkeypatch.setattr(manager, "_controller", lambda name: ctl)

    def refused(*_a: Any, **_k: Any) -> Any:
        raise ConnectionFailed("cannot reach the service controller")

    monkeypatch.setattr(manager, "_post", refused)
    monkeypatch.setattr(manager, "_get", refused)
    out = manager.delete("s", timeout_s=1)
    assert out["deleted"] is True and manager.list_services() == []
