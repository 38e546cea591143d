"""The planners speak of their fields, not of CLI options, and refuse absurd values naming the
field. A REST sweep (tests/unit/core/test_core_api_fuzz.py) found API errors telling users to
"lower --tp/--pp" or "raise --gpus", flags they do not have, and /plan/* answering a
feasibility verdict ("one replica needs 2,000,000,000,000,000,000,000 GB") or a plan for
10**30 GPUs instead of naming the field. `aistack plan` says the fields as its options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.cli.plan import app as plan_app
from aistack.errors import AistackError, ValidationError
from aistack.planning.catalog import load_catalog
from aistack.planning.chart import check_chart_path
from aistack.planning.inference import plan_serving
from aistack.planning.tco import plan_tco
from aistack.planning.training import plan_training
from aistack.planning.whatif import hybrid_sweep

runner = CliRunner()


def _no_gpu_catalog(tmp_path: Path) -> Any:
    f = tmp_path / "c.yaml"
    f.write_text(
        "accelerators:\n  - {name: X1, vendor: x, generation: hopper, bf16_tflops: 100,"
        " memory_gb: 80, memory_bw_tbs: 3, tdp_w: 700, interconnect: x, nvlink_gbs: 100,"
        ' network_gbs: 50, source: "x", as_of: 2026-01-01}\n'
    )
    return load_catalog([f], include_user=False)


# -- (a) the domain's errors and notes name fields ----------------------------------------------
CASES: dict[str, tuple[Callable[[Path], Any], str, str]] = {
    # label: (call, field, a piece of the hint or message in field words)
    "tp x pp": (
        lambda _: plan_training(params=7e9, tokens=1e12, gpu="H100", gpus=8, tp=8, pp=2),
        "tp",
        "lower `tp` or `pp`, or raise `gpus`",
    ),
    "pp": (
        lambda _: plan_training(params=7e9, tokens=1e12, gpu="H100", pp=1000),
        "pp",
        "`pp` must be at most the number of layers",
    ),
    "batch": (
        lambda _: plan_training(params=7e9, tokens=1e12, gpu="H100", gpus=8, batch_tokens=100),
        "batch_tokens",
        "raise `batch_tokens` to at least 4,096",
    ),
    "zero_stage": (
        lambda _: plan_training(params=7e9, tokens=1e12, gpu="H100", zero_stage=5),
        "zero_stage",
        "stage 3 shards everything",
    ),
    "gpus and days": (
        lambda _: plan_training(params=7e9, tokens=1e12, gpu="H100", gpus=8, days=3),
        "gpus",
        "`gpus` computes the days",
    ),
    "days": (
        lambda _: plan_training(params=7e9, tokens=1e12, gpu="H100", days=1e-9),
        "days",
        "or a larger `max_batch_tokens`",
    ),
    "train params": (
        lambda _: plan_training(params=-1, tokens=1e12, gpu="H100"),
        "params",
        "e.g. 70e9",
    ),
    "fp8": (
        lambda _: plan_training(params=7e9, tokens=1e12, gpu="A100", precision="fp8"),
        "precision",
        "use bf16, or pick an accelerator with FP8",
    ),
    "serve too big": (
        lambda _: plan_serving(params=7e9, gpu="H100", concurrency=100_000, context=100_000),
        "",
        "lower `concurrency` or `context`, quantize (`precision` fp8 or int4)",
    ),
    "prompt": (
        lambda _: plan_serving(params=7e9, gpu="H100", context=100, prompt=200),
        "prompt",
        "`context` = prompt + output tokens",
    ),
    "active": (
        lambda _: plan_serving(params=7e9, gpu="H100", active_params=8e9),
        "active_params",
        "`active_params` is per token",
    ),
    "tco gpus": (lambda _: plan_tco(gpus=0, gpu="H100"), "gpus", "e.g. 16"),
    "tco months": (
        lambda _: plan_tco(gpus=8, gpu="H100", horizon_months=5000),
        "horizon_months",
        "e.g. 36 or 60",
    ),
    "tco name": (lambda _: plan_tco(gpus=8), "gpu", "e.g. `gpu` H100 or `instance` p5.48xlarge"),
    "no instance": (
        lambda p: plan_tco(gpus=8, gpu="X1", catalog=_no_gpu_catalog(p)),
        "instance",
        "name an instance (`instance`)",
    ),
    "hybrid name": (lambda _: hybrid_sweep([8.0]), "gpu", "e.g. `gpu` H100"),
    "chart": (lambda p: check_chart_path(p / "x.svg"), "path", "e.g. tco.png"),
    "catalog": (lambda p: load_catalog([p], include_user=False), "paths", "catalog file"),
}


@pytest.mark.parametrize("label", CASES)
def test_the_planners_errors_name_fields_not_cli_options(tmp_path: Path, label: str) -> None:
    call, field, words = CASES[label]
    with pytest.raises(AistackError) as e:
        call(tmp_path)
    said = f"{e.value.message} ({e.value.hint})"
    assert " --" not in said and "(--" not in said, said
    assert words in said, said
    if field:
        assert e.value.details.get("field") == field, e.value.details


def test_the_planners_notes_name_fields() -> None:
    p = plan_training(
        params=70e9, tokens=2e12, gpu="H100", days=30, seq_len=8192, layers=80, hidden=8192
    )
    q = plan_training(params=7e9, tokens=1e12, gpu="H100")
    notes = [*p.notes, *q.notes]
    assert not [n for n in notes if "--" in n], notes
    assert any("raise `batch_tokens` to at least 8,847,360, or `tp` or `pp`" in n for n in notes)
    assert any(n.startswith("no `gpus` or `days` given") for n in notes)
    assert any("(give `seq_len`)" in n for n in notes)


def test_rest_errors_name_fields(api: Any) -> None:
    body = {"params": 7e9, "tokens": 1e12, "gpu": "H100", "gpus": 8, "tp": 8, "pp": 2}
    r = api.http.post("/api/v1/plan/train", json=body)
    assert r.status_code == 422, r.text
    assert r.json() == {
        "code": "invalid",
        "message": "tp x pp: a model replica needs 8 x 2 = 16 GPUs but `gpus` is 8",
        "hint": "lower `tp` or `pp`, or raise `gpus`",
        "details": {"field": "tp"},
    }


# -- (a) the CLI says them as its options -------------------------------------------------------
TRAIN = ["train", "--params", "7B", "--tokens", "1T", "--gpu", "H100"]


@pytest.mark.parametrize(
    ("args", "message", "hint", "field"),
    [
        (
            [*TRAIN, "--gpus", "8", "--tp", "8", "--pp", "2"],
            "tp x pp: a model replica needs 8 x 2 = 16 GPUs but --gpus is 8",
            "lower --tp or --pp, or raise --gpus",
            "--tp",
        ),
        (
            [*TRAIN, "--gpus", "64", "--batch-tokens", "100"],
            "--batch-tokens: a global batch of 100 tokens is smaller than one 4,096-token sequence",
            "raise --batch-tokens to at least 4,096 (e.g. 4194304) or lower --seq-len",
            "--batch-tokens",
        ),
        (
            [*TRAIN, "--gpus", "2000000"],
            "--gpus: must be at most 1,000,000, got 2,000,000",
            "the largest clusters hold about 200,000 GPUs",
            "--gpus",
        ),
        (
            [*TRAIN, "--zero-stage", "7"],
            "--zero-stage: must be 0, 1, 2 or 3, got 7",
            "stage 3 shards everything",
            "--zero-stage",
        ),
        (
            ["serve", "--params", "7B", "--gpu", "H100", "--hidden", "1"],
            "--hidden: must be at least 32, got 1",
            "hidden sizes are 32 to 1,048,576 (70B models have 8,192)",
            "--hidden",
        ),
        (
            ["serve", "--params", "7B", "--gpu", "H100", "--concurrency", "5000"]
            + ["--context", "100000"],
            "one replica needs",
            "lower --concurrency or --context, quantize (--precision fp8 or int4), or pick a GPU "
            "with more memory",
            None,
        ),
        (
            ["tco", "--gpus", "8", "--gpu", "H100", "--cloud-price", "1e9"],
            "--cloud-price: must be at most 1e+06, got 1e+09",
            "USD per instance-hour: 8-GPU instances cost up to about $100/h",
            "--cloud-price",
        ),
        (
            ["tco", "--gpus", "8", "--gpu", "H100", "--chart", "x.svg"],
            "--chart: 'x.svg' must end in .png",
            "e.g. tco.png",
            "--chart",
        ),
    ],
)
def test_the_cli_says_fields_as_its_options(
    args: list[str], message: str, hint: str, field: str | None
) -> None:
    res = runner.invoke(plan_app, args)
    exc = res.exception
    assert isinstance(exc, ValidationError), (res.output, exc)
    assert exc.message.startswith(message), exc.message
    assert exc.hint == hint
    assert exc.details.get("field") == field


def test_the_cli_says_notes_as_its_options() -> None:
    args = ["train", "--params", "70B", "--tokens", "2T", "--gpu", "H100", "--days", "30"]
    args += ["--seq-len", "8192", "--layers", "80", "--hidden", "8192"]
    res = runner.invoke(plan_app, args)
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())  # the table wraps long lines
    assert "raise --batch-tokens to at least 8,847,360, or --tp or --pp" in out
    assert "`" not in res.output
    res = runner.invoke(plan_app, TRAIN)
    assert res.exit_code == 0, res.output
    assert "no --gpus or --days given" in " ".join(res.output.split())


def test_the_cli_names_the_catalog_option(tmp_path: Path) -> None:
    res = runner.invoke(plan_app, ["catalog", "--catalog", str(tmp_path)])
    assert isinstance(res.exception, ValidationError)
    assert str(res.exception).startswith(f"--catalog: {str(tmp_path)!r} is a folder, not a file")


# -- (b) absurd values are refused naming the field; real ones plan -----------------------------
TRAIN_BODY = {"params": 7e9, "tokens": 1e12, "gpu": "H100", "gpus": 8}
SERVE_BODY = {"params": 7e9, "gpu": "H100"}
TCO_BODY = {"gpus": 8, "gpu": "H100"}
ABSURD = [
    ("serve", SERVE_BODY, "params", 10**30),
    ("serve", SERVE_BODY, "params", 1e16),
    ("serve", SERVE_BODY, "hidden", 1),
    ("serve", SERVE_BODY, "layers", 10**30),
    ("serve", SERVE_BODY, "context", 10**30),
    ("serve", SERVE_BODY, "concurrency", 10**30),
    ("serve", SERVE_BODY, "target_tokens_per_s", 1e300),
    ("serve", SERVE_BODY, "kv_heads", 10**30),
    ("serve", SERVE_BODY, "head_dim", 1),
    ("serve", SERVE_BODY, "head_dim", 10**30),
    ("train", TRAIN_BODY, "params", 10**30),
    ("train", TRAIN_BODY, "tokens", 1e300),
    ("train", TRAIN_BODY, "gpus", 10**30),
    ("train", TRAIN_BODY, "gpus", 10**400),  # past float: math.isfinite raised OverflowError
    ("train", TRAIN_BODY, "hidden", 1),
    ("train", TRAIN_BODY, "hidden", 64),  # 7e9 parameters at hidden 64: 142 million layers
    ("train", {**TRAIN_BODY, "params": 1e15}, "layers", 1),  # a hidden size of 9 million
    ("train", TRAIN_BODY, "heads", 10**30),
    ("train", TRAIN_BODY, "tp", 10**30),
    ("train", {**TRAIN_BODY, "gpus": None}, "days", 1e300),
    ("train", TRAIN_BODY, "seq_len", 10**30),
    ("train", TRAIN_BODY, "micro_batch", 10**30),
    ("train", TRAIN_BODY, "batch_tokens", 10**30),
    ("train", TRAIN_BODY, "checkpoint_seconds", 1e-300),
    ("train", TRAIN_BODY, "mfu", 1e-300),
    ("tco", TCO_BODY, "gpus", 10**30),
    ("tco", TCO_BODY, "hybrid_base_gpus", 10**30),
    ("tco", TCO_BODY, "cloud_usd_per_hour", 1e300),
    ("tco", TCO_BODY, "server_price_usd", 1e300),
]


def _shown(v: float) -> str:
    return f"10**{len(str(v)) - 1}" if isinstance(v, int) and v > 10**6 else str(v)


@pytest.mark.parametrize(
    ("route", "base", "field", "value"),
    ABSURD,
    ids=[f"{r}-{f}={_shown(v)}" for r, _, f, v in ABSURD],
)
def test_absurd_values_are_a_422_naming_the_field(
    api: Any, route: str, base: dict[str, Any], field: str, value: float
) -> None:
    body = {k: v for k, v in {**base, field: value}.items() if v is not None}
    r = api.http.post(f"/api/v1/plan/{route}", json=body)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["message"].startswith(f"{field}: "), err
    assert err["details"] == {"field": field}
    assert err["hint"]


REAL = [
    # Llama 3 405B on 16,384 H100 (its published run), with its shape and 8k context
    (
        "train",
        {
            "params": 405e9,
            "tokens": 15.6e12,
            "gpu": "H100",
            "gpus": 16_384,
            "layers": 126,
            "hidden": 16_384,
            "seq_len": 8192,
            "tp": 8,
            "pp": 16,
            "batch_tokens": 16 * 1024 * 1024,
        },
    ),
    # a 1.8T mixture-of-experts model on 200,000 GPUs (the largest clusters), 100k-token context
    (
        "train",
        {
            "params": 1.8e12,
            "active_params": 2.8e11,
            "tokens": 3.6e13,
            "gpu": "B200",
            "gpus": 200_000,
            "seq_len": 131_072,
            "tp": 8,
            "pp": 32,
            "max_batch_tokens": 10**9,
            "batch_tokens": 10**9,
        },
    ),
    # a toy model: 1M parameters, hidden 64 (TinyStories-1M), on one GPU
    ("train", {"params": 1e6, "tokens": 1e9, "gpu": "A100", "gpus": 1, "hidden": 64}),
    (
        "serve",
        {
            "params": 405e9,
            "gpu": "H200",
            "precision": "fp8",
            "layers": 126,
            "hidden": 16_384,
            "kv_heads": 8,
            "context": 131_072,
            "concurrency": 8,
            "target_tokens_per_s": 1e6,
        },
    ),
    ("serve", {"params": 1e6, "gpu": "L40S", "hidden": 64, "head_dim": 16, "concurrency": 256}),
    ("tco", {"gpus": 200_000, "gpu": "H100", "horizon_months": 60, "hybrid_base_gpus": 100_000}),
    ("tco", {"gpus": 8, "gpu": "H100", "cloud_usd_per_hour": 98.3, "server_price_usd": 4e6}),
]


@pytest.mark.parametrize(("route", "body"), REAL)
def test_realistic_inputs_still_plan(api: Any, route: str, body: dict[str, Any]) -> None:
    r = api.http.post(f"/api/v1/plan/{route}", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["gpus"] >= 1


# -- `aistack cost report` says price_usage's fields as its options, as `plan` does ---------------
def _one_record(tmp_path: Path) -> Path:
    import json

    recs = [
        {
            "job_id": "j1",
            "project": "p",
            "user": "u",
            "gpu_type": "H100",
            "gpus": 8,
            "cpus": 8,
            "start": "2026-11-30T07:00:00+00:00",
            "end": "2026-11-30T11:00:00+00:00",
            "node": "n",
        }
    ]
    path = tmp_path / "recs.json"
    path.write_text(json.dumps(recs))
    return path


def test_cost_report_says_its_options_in_errors_and_advice(tmp_path: Path) -> None:
    from aistack.cli.cost import app as cost_app

    base = ["report", "--records", str(_one_record(tmp_path)), "--now", "2026-11-30T12:00:00Z"]
    res = runner.invoke(cost_app, [*base, "--since", "2026-12-05"])
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert res.exception.hint == "give an earlier start of the window (--since)"
    res = runner.invoke(cost_app, [*base, "--json"])
    assert res.exit_code == 0, res.output
    # (5 hours of usage: the advice says to base a purchase on a longer --since)
    assert "at least 28 days (--since)." in res.output and "`since`" not in res.output
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    res = runner.invoke(cost_app, [*base, "--catalog", str(folder)])
    assert isinstance(res.exception, ValidationError), (res.output, res.exception)
    assert str(res.exception).startswith(f"--catalog: {str(folder)!r} is a folder")
