"""Every float of a service spec refuses NaN and infinity, saying it must be a finite number
and what it takes. ``max_wait_ms: nan`` said "Input should be less than or equal to 10000"
(NaN fails every comparison, so pydantic reported whichever bound it tried), and the fields
bounded only below took infinity (a request timeout, a health interval, a delay)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from aistack.errors import ValidationError
from aistack.serving import manager
from aistack.serving.spec import AutoscaleConfig, BatchingConfig, ServiceSpec

NAN, INF = float("nan"), float("inf")


def _msg(cls: type[pydantic.BaseModel], **kw: Any) -> str:
    if cls is ServiceSpec:
        kw = {"name": "s", "model": "m", "model_uri": "u", **kw}
    with pytest.raises(pydantic.ValidationError) as e:
        cls(**kw)
    err = e.value.errors()[0]
    return f"{'.'.join(map(str, err['loc']))}: {err['msg']}"


@pytest.mark.parametrize(
    ("cls", "field", "takes"),
    [
        (BatchingConfig, "max_wait_ms", "of milliseconds from 0 to 10000"),
        (AutoscaleConfig, "target_inflight", "> 0 and <= 1000000"),
        (AutoscaleConfig, "target_queue_delay_ms", "of milliseconds > 0 and <= 3600000"),
        (AutoscaleConfig, "upscale_delay_s", "of seconds from 0 to 86400"),
        (AutoscaleConfig, "downscale_cooldown_s", "of seconds from 0 to 86400"),
        (AutoscaleConfig, "metric_window_s", "of seconds > 0 and <= 3600"),
        (AutoscaleConfig, "drain_timeout_s", "of seconds from 0 to 86400"),
        (ServiceSpec, "request_timeout_s", "of seconds > 0 and <= 86400"),
        (ServiceSpec, "ready_timeout_s", "of seconds > 0 and <= 86400"),
        (ServiceSpec, "health_interval_s", "of seconds > 0 and <= 60"),
    ],
)
@pytest.mark.parametrize(("value", "shown"), [(NAN, "nan"), (INF, "inf"), (-INF, "-inf")])
def test_a_non_finite_float_field_says_it_must_be_finite(
    cls: type[pydantic.BaseModel], field: str, takes: str, value: float, shown: str
) -> None:
    assert _msg(cls, **{field: value}) == (f"{field}: must be a finite number {takes}, got {shown}")


def test_json_nan_is_refused_too() -> None:
    """JSON input (a spec.json, a request body) reads the string "NaN" as a float."""
    with pytest.raises(pydantic.ValidationError, match="must be a finite number"):
        BatchingConfig.model_validate_json('{"max_wait_ms": "NaN"}')
    with pytest.raises(pydantic.ValidationError, match="must be a finite number"):
        AutoscaleConfig.model_validate({"upscale_delay_s": " inf "})


def test_finite_values_and_the_bounds_are_as_before() -> None:
    assert BatchingConfig(max_wait_ms=10_000).max_wait_ms == 10_000.0
    assert AutoscaleConfig(target_inflight=2.5).target_inflight == 2.5
    # "2.5" was read as 2.5: a number in quotes is refused now (test_serving_strict_followups.py)
    assert _msg(AutoscaleConfig, target_inflight="2.5") == (
        'target_inflight: must be a number > 0 and <= 1000000, got the string "2.5"'
    )
    assert (
        ServiceSpec(name="s", model="m", model_uri="u", request_timeout_s=86_400).request_timeout_s
        == 86_400.0
    )
    # above the bound: the value and the unit too (see test_serving_spec_bounds.py)
    assert _msg(BatchingConfig, max_wait_ms=20_000) == (
        "max_wait_ms: must be a number of milliseconds from 0 to 10000, got 20000"
    )
    assert _msg(BatchingConfig, max_wait_ms="x") == (
        "max_wait_ms: Input should be a valid number, unable to parse string as a number"
    )
    # below the bound: the value and the range too (see test_serving_spec_lower_bounds.py)
    assert _msg(AutoscaleConfig, target_inflight=0) == (
        "target_inflight: must be a number > 0 and <= 1000000, got 0"
    )


def test_deploy_with_max_wait_ms_nan_says_finite(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Python API (and `serve deploy --max-wait-ms nan`): nothing is deployed."""
    spawned: list[str] = []
    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: spawned.append("x"))
    with pytest.raises(ValidationError) as e:
        manager.deploy(
            "builtin:echo", name="w", launcher="process", wait_ready_s=None, max_wait_ms=NAN
        )
    assert e.value.message == (
        "max_wait_ms: must be a finite number of milliseconds from 0 to 10000, got nan"
    )
    with pytest.raises(ValidationError) as e:
        manager.deploy(
            "builtin:echo", name="w", launcher="process", wait_ready_s=None, target_inflight=INF
        )
    assert e.value.message == (
        "target_inflight: must be a finite number > 0 and <= 1000000, got inf"
    )
    assert spawned == [] and manager.list_services() == []


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        (
            "--max-wait-ms",
            "nan",
            "--max-wait-ms nan: must be a finite number of milliseconds from 0 to 10000, got nan",
        ),
        (
            "--target-inflight",
            "inf",
            "--target-inflight inf: must be a finite number > 0 and <= 1000000, got inf",
        ),
        (
            "--cooldown",
            "nan",
            "--cooldown nan: must be a finite number of seconds from 0 to 86400, got nan",
        ),
    ],
)
def test_cli_deploy_names_the_flag_and_says_finite(
    aistack_home: Path, monkeypatch: pytest.MonkeyPatch, flag: str, value: str, message: str
) -> None:
    from typer.testing import CliRunner

    from aistack.cli import serve as serve_cli

    monkeypatch.setattr(manager, "_spawn_controller", lambda *a, **k: None)
    args = ["deploy", "builtin:echo", "--name", "w", "--launcher", "process", "--wait", "0"]
    res = CliRunner().invoke(serve_cli.app, [*args, flag, value])
    assert isinstance(res.exception, ValidationError), res.output
    assert res.exception.message == message
    assert manager.list_services() == []
