"""Peak dense BF16 throughput of the device, for model-FLOPs utilization (MFU).

Looked up in the planning catalog (``aistack/planning/catalog/accelerators.yaml``, with its
sources) when it is installed, else in the small table below. CPUs have no entry: MFU is
then reported as unknown unless the config gives ``peak_tflops``.
"""

from __future__ import annotations

import logging
from importlib import resources

log = logging.getLogger(__name__)

# dense BF16 (FP16 for V100/T4) tensor TFLOP/s per GPU, from the vendors' datasheets
PEAK_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100": 989.0,  # SXM; PCIe is 756
    "H100 PCIE": 756.0,
    "GH200": 989.0,
    "B200": 2250.0,
    "A100": 312.0,
    "A10G": 125.0,  # NVIDIA A10 datasheet (A10G: AWS variant)
    "A10": 125.0,
    "L40S": 362.0,
    "L4": 121.0,
    "V100": 125.0,
    "T4": 65.0,
    "RTX 4090": 165.0,
    "MI300X": 1307.0,
}


def _from_catalog(name: str) -> float | None:
    try:
        import yaml

        text = (
            resources.files("aistack.planning")
            .joinpath("catalog/accelerators.yaml")
            .read_text(encoding="utf-8")
        )
        data = yaml.safe_load(text) or {}
    except Exception:  # noqa: BLE001 - the catalog is optional here
        return None
    up = name.upper()
    best: tuple[int, float] | None = None
    for acc in data.get("accelerators", []) or []:
        tf = acc.get("bf16_tflops")
        if not tf:
            continue
        for alias in [acc.get("name", ""), *(acc.get("aliases") or [])]:
            a = str(alias).upper()
            if a and (a == up or a in up):
                if best is None or len(a) > best[0]:
                    best = (len(a), float(tf))
    return best[1] if best else None


def peak_flops(device_name: str | None) -> float | None:
    """Peak FLOP/s of one device by its name (``torch.cuda.get_device_name()``), or None."""
    if not device_name:
        return None
    tf = _from_catalog(device_name)
    if tf is None:
        up = device_name.upper()
        matches = [(len(k), v) for k, v in PEAK_TFLOPS.items() if k in up]
        tf = max(matches)[1] if matches else None
    return tf * 1e12 if tf else None
