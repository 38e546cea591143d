"""Planner accuracy vs published training runs, and planner speed.

Accuracy: predicted GPU-hours with the DEFAULT efficiencies (no per-run tuning) against the
GPU-hours each paper/model card reports. The reference runs come from
../shared/data/planning/reference_runs.csv; the further published runs below are not used for
calibration (they show where a single per-generation default holds and where it does not).

Speed: plans per second for training, serving and TCO (the API answers each request with one).

    .venv/bin/python bench/bench_planning_accuracy.py [--quick]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402

from aistack.planning.catalog import load_catalog  # noqa: E402
from aistack.planning.inference import plan_serving  # noqa: E402
from aistack.planning.tco import plan_tco  # noqa: E402
from aistack.planning.training import plan_training  # noqa: E402

REFERENCE = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "planning" / "reference_runs.csv"
)

# name, params_total, params_active, tokens, gpu, gpus_used, reported_gpu_hours, source
OTHER_RUNS: list[tuple[str, float, float, float, str, int | None, float, str]] = [
    (
        "LLaMA-7B",
        6.7e9,
        6.7e9,
        1.0e12,
        "A100-80GB",
        2048,
        82_432,
        "Touvron et al. 2023, LLaMA, Table 15",
    ),
    (
        "LLaMA-13B",
        13.0e9,
        13.0e9,
        1.0e12,
        "A100-80GB",
        2048,
        135_168,
        "Touvron et al. 2023, LLaMA, Table 15",
    ),
    (
        "LLaMA-33B",
        32.5e9,
        32.5e9,
        1.4e12,
        "A100-80GB",
        2048,
        530_432,
        "Touvron et al. 2023, LLaMA, Table 15",
    ),
    (
        "Llama-2-7B",
        7e9,
        7e9,
        2.0e12,
        "A100-80GB",
        None,
        184_320,
        "Touvron et al. 2023, Llama 2, Table 2",
    ),
    (
        "Llama-2-13B",
        13e9,
        13e9,
        2.0e12,
        "A100-80GB",
        None,
        368_640,
        "Touvron et al. 2023, Llama 2, Table 2",
    ),
    (
        "Llama-2-34B",
        34e9,
        34e9,
        2.0e12,
        "A100-80GB",
        None,
        1_038_336,
        "Touvron et al. 2023, Llama 2, Table 2",
    ),
    (
        "BLOOM-176B",
        176e9,
        176e9,
        366e9,
        "A100-80GB",
        384,
        1_082_990,
        "Luccioni et al. 2022, BLOOM carbon footprint",
    ),
    ("Llama-3.1-8B", 8e9, 8e9, 15.6e12, "H100-80GB", None, 1_460_000, "Llama 3.1 model card"),
    ("Llama-3.1-70B", 70e9, 70e9, 15.6e12, "H100-80GB", None, 7_000_000, "Llama 3.1 model card"),
    (
        "DeepSeek-V3",
        671e9,
        37e9,
        14.8e12,
        "H800",
        2048,
        2_664_000,
        "DeepSeek-V3 technical report, Table 1 (pre-training)",
    ),
]


def accuracy_rows() -> tuple[list[list[object]], int, int]:
    runs: list[tuple[str, float, float, float, str, int | None, float, str, str]] = []
    if REFERENCE.is_file():
        with REFERENCE.open() as f:
            for r in csv.DictReader(f):
                runs.append(
                    (
                        r["name"],
                        float(r["params_total"]),
                        float(r["params_active"]),
                        float(r["tokens"]),
                        r["gpu"],
                        int(r["gpus_used"]) if r["gpus_used"] else None,
                        float(r["reported_gpu_hours"]),
                        r["source"],
                        "reference",
                    )
                )
    else:
        print(f"note: {REFERENCE} not found; showing the other published runs only")
    runs += [(*r, "other") for r in OTHER_RUNS]
    cat = load_catalog(include_user=False)
    rows: list[list[object]] = []
    inside = ref_inside = 0
    for name, n, na, d, gpu, g, hours, _src, kind in runs:
        p = plan_training(params=n, active_params=na, tokens=d, gpu=gpu, gpus=g, catalog=cat)
        err = p.gpu_hours / hours - 1
        ok = abs(err) <= 0.10
        inside += ok
        ref_inside += ok and kind == "reference"
        implied = 6 * na * d / (hours * 3600) / (p.peak_tflops_per_gpu * 1e12)
        rows.append(
            [
                kind,
                name,
                p.gpu,
                f"{hours:,.0f}",
                f"{p.gpu_hours:,.0f}",
                f"{err:+.1%}",
                "yes" if ok else "no",
                f"{implied:.1%}",
                f"{p.mfu * p.goodput:.1%}",
            ]
        )
    return rows, inside, ref_inside


def speed(n: int) -> list[list[object]]:
    cat = load_catalog(include_user=False)
    out = []
    for label, fn in (
        (
            "plan_training",
            lambda: plan_training(params=70e9, tokens=2e12, gpu="H100", days=30, catalog=cat),
        ),
        (
            "plan_serving",
            lambda: plan_serving(
                params=70e9,
                gpu="H100",
                kv_heads=8,
                concurrency=32,
                target_tokens_per_s=5000,
                catalog=cat,
            ),
        ),
        (
            "plan_tco (36 months)",
            lambda: plan_tco(gpus=64, gpu="H100", utilization=0.6, catalog=cat),
        ),
    ):
        fn()
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        out.append([label, n, f"{dt / n * 1e3:.3f} ms", f"{n / dt:,.0f} /s"])
    t = time.perf_counter()
    load_catalog(include_user=False)
    out.append(["load_catalog (3 YAML files)", 1, f"{(time.perf_counter() - t) * 1e3:.1f} ms", "-"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer timing iterations (< 60 s)")
    args = ap.parse_args()
    rows, inside, ref_inside = accuracy_rows()
    report(
        "planning_accuracy",
        "Predicted vs reported GPU-hours (default efficiencies)",
        [
            "set",
            "run",
            "GPU",
            "reported GPU-h",
            "predicted GPU-h",
            "error",
            "within 10%",
            "implied MFU x goodput",
            "default",
        ],
        rows,
        {"within_10pct": inside, "runs": len(rows), "reference_within_10pct": ref_inside},
    )
    report(
        "planning_speed",
        "Planner speed (one call = one API request)",
        ["function", "calls", "per call", "rate"],
        speed(200 if args.quick else 2000),
    )


if __name__ == "__main__":
    main()
