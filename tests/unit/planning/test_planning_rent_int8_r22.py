"""Round 22: the cost report's hybrid sentence rents whole instances, says what its peak is,
int8 runs at the INT8 peak, and one choice of the default cloud instance."""

from __future__ import annotations

import datetime as dt

import pytest

from aistack.errors import ValidationError
from aistack.planning.catalog import load_catalog
from aistack.planning.inference import plan_serving
from aistack.planning.training import plan_training
from aistack.planning.usage import AllocationRecord, PriceSheet, _on_demand_instance, price_usage
from aistack.planning.whatif import hybrid_sweep

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 1, 8, tzinfo=UTC)


def _rec(job: str, gpus: int, minutes: float) -> AllocationRecord:
    return AllocationRecord(
        job_id=job,
        project="p",
        user="u",
        node="n",
        gpus=gpus,
        gpu_type="H100",
        cpus=8,
        start=T0,
        end=T0 + dt.timedelta(minutes=minutes),
        gpu_util=50.0,
        cpu_util=None,
    )


def test_sweep_rents_the_burst_on_whole_instances() -> None:
    # 4 GPUs wanted for 10 hours, nothing owned: one whole p5.48xlarge (8 GPUs) is paid
    sweep = hybrid_sweep([4.0] * 10, gpu="H100")
    c = sweep.all_cloud
    assert c.burst_gpu_hours == pytest.approx(40.0)
    assert c.rented_gpu_hours == pytest.approx(80.0)
    assert c.cost_usd == pytest.approx(80.0 * sweep.cloud_usd_per_gpu_hour)


def test_short_window_peak_is_gpus_at_once() -> None:
    # one GPU for 88 seconds in an hour: the hourly mean is 0.0244 GPUs, the peak 1 GPU
    rep = price_usage([_rec("j1", 1, 88 / 60)], now=T0 + dt.timedelta(hours=1))
    text = rep.recommendation
    assert "peak 1 GPU at once" in text
    assert "peak 0.0244" not in text
    # renting everything pays a whole 8-GPU p5.48xlarge while the job runs
    d = rep.recommendation_detail
    assert d["cloud_rented_gpus"] == 8
    gh = 88 / 3600
    assert d["all_cloud_usd_per_month"] == pytest.approx(gh * 730 * 6.88 * 8)
    assert "$982 a month" in text


def test_profile_peak_reads_as_busiest_step_mean() -> None:
    sweep = hybrid_sweep([0.0244], gpu="H100")
    assert "busiest hour 0.0244 GPUs on average" in sweep.sentence()
    with pytest.raises(ValidationError, match="peak_gpus"):
        hybrid_sweep([3.0], gpu="H100", peak_gpus=2)


def test_int8_on_a100_at_int8_peak() -> None:
    cat = load_catalog(include_user=False)
    assert cat.accelerator("A100").int8_tops == 624
    assert cat.accelerator("H100").int8_tops == 1979
    assert cat.accelerator("L40S").int8_tops == 733
    assert cat.accelerator("V100").int8_tops is None
    kw = dict(params=7e9, concurrency=1, context=2048)
    bf16 = plan_serving(gpu="A100", precision="bf16", **kw)
    int8 = plan_serving(gpu="A100", precision="int8", **kw)
    # prefill is compute bound: 2 N p / (peak MFU); int8 at 624 TOPS is twice BF16's 312
    assert int8.prefill_ms == pytest.approx(bf16.prefill_ms / 2)
    assert int8.prefill_ms == pytest.approx(2 * 7e9 * 1024 / (624e12 * 0.5) * 1000)
    # training has no int8
    with pytest.raises(ValidationError, match="training precision 'int8'"):
        plan_training(params=7e9, tokens=1e11, gpu="A100", gpus=8, precision="int8")
    rows = {(r.name, r.field) for r in cat.figures()}
    assert ("A100-80GB", "int8_tops") in rows


def test_memory_hint_names_a_precision_the_gpu_has() -> None:
    with pytest.raises(ValidationError) as exc:
        plan_serving(params=70e9, gpu="A100", concurrency=512)  # (64 fits on 4: GQA's KV)
    assert "int8 or int4" in (exc.value.hint or "")
    assert "fp8" not in (exc.value.hint or "")


def test_one_instance_choice_for_sheet_and_report(tmp_path) -> None:
    f = tmp_path / "extra.yaml"
    price = "{usd_per_hour: 8.0, source: test, as_of: 2026-11-01}"
    f.write_text(
        "instances:\n"
        + "".join(
            f"  - {{name: {n}, provider: {p}, accelerator: H100, gpus: 1, vcpus: 8, "
            f"memory_gb: 64, prices: {{on_demand: {price}}}}}\n"
            for n, p in (("zz-gcp-h100", "gcp"), ("b-aws-h100", "aws"), ("a-lambda-h100", "lambda"))
        )
    )
    cat = load_catalog([f], include_user=False)
    # AWS first (by name: b-aws-h100 before p5.48xlarge), a provider's own first by name
    assert PriceSheet.cloud(cat).sources["H100-SXM"] == "b-aws-h100 on_demand"
    assert _on_demand_instance(cat, "H100", None) == (cat.instance("b-aws-h100"), False)
    assert PriceSheet.cloud(cat, provider="lambda").sources["H100-SXM"] == (
        "a-lambda-h100 on_demand"
    )
    assert _on_demand_instance(cat, "H100", "lambda")[0].name == "a-lambda-h100"
    assert _on_demand_instance(cat, "H100", "gcp")[0].name == "a3-highgpu-8g"
