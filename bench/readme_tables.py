"""Render every bench/results/*.json as a Markdown table (what the README's "Measured numbers"
section shows): ``python bench/readme_tables.py [--write README.md]``."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, END = "<!-- BENCH-TABLES -->", "<!-- /BENCH-TABLES -->"

# bench name prefix → (section title, script that produced it)
SECTIONS = [
    ("core_", "Platform core"),
    ("bench_scheduler", "Scheduler"),
    ("scheduler_", "Scheduler"),
    ("sim_", "Scheduler simulator"),
    # the per-policy ITP table (all slices × policies) is long: docs/scheduler.md shows it
    ("bench_sim_itp_goals", "Scheduler simulator"),
    ("bench_sim_philly", "Scheduler simulator"),  # a trace from another cluster (held out)
    ("bench_sim_speed", "Scheduler simulator"),
    ("executors_", "Executors (local, Ray, Slurm)"),
    ("storage_", "Storage"),
    ("webdata_", "Web data"),
    ("launch_", "Distributed launch"),
    ("train_", "Training"),
    ("mlops_", "Tracking"),
    ("serving_", "Serving"),
    ("planning_", "Planning"),
]


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 100 else f"{v:,.1f}" if abs(v) < 10000 else f"{v:,.0f}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def render() -> str:
    out: list[str] = []
    files = sorted((HERE / "results").glob("*.json"))
    done: set[Path] = set()
    last_title = ""
    for prefix, title in SECTIONS:
        group = [f for f in files if f.name.startswith(prefix) and f not in done]
        if not group:
            continue
        if title != last_title:
            out.append(f"### {title}\n")
            last_title = title
        for f in group:
            done.add(f)
            try:
                d = json.loads(f.read_text())
            except ValueError:
                continue
            if not isinstance(d, dict) or "columns" not in d or "rows" not in d:
                continue
            m = d.get("machine", {})
            out.append(
                f"**{d.get('title', f.stem)}** — `{f.name}`, {m.get('cpu_count', '?')} cores, "
                f"{m.get('memory_gb', '?')} GiB, GPUs: {', '.join(m.get('gpus') or []) or 'none'}, {m.get('date', '')}\n"
            )
            cols = [str(c) for c in d["columns"]]
            out.append("| " + " | ".join(cols) + " |")
            out.append("|" + "---|" * len(cols))
            for r in d["rows"][:40]:
                out.append("| " + " | ".join(_fmt(v) for v in r) + " |")
            out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--write", type=Path, help="replace the section between the markers in this file"
    )
    a = ap.parse_args()
    text = render()
    if a.write:
        readme = a.write.read_text()
        block = f"{START}\n\n{text}\n{END}"
        if END in readme:
            readme = re.sub(
                re.escape(START) + ".*?" + re.escape(END), lambda _m: block, readme, flags=re.S
            )
        else:
            readme = readme.replace(START, block)
        a.write.write_text(readme)
    else:
        print(text)


if __name__ == "__main__":
    main()
