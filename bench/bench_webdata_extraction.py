"""Extraction quality: word-level F1 of `quality` mode, `fast` mode and raw trafilatura on a
held-out set of generated pages whose main text is known (aistack.webdata.evaluation).

Raw trafilatura is called the way its README shows (``trafilatura.extract(html)``, defaults:
comments kept), the way datatrove calls it (``favor_precision=True, include_comments=False,
deduplicate=True``) and with comments and deduplication off; `quality` mode is trafilatura with
``deduplicate=False``, comments off, tables kept. The issue's goal: `quality` matches trafilatura's F1.

    .venv/bin/python bench/bench_webdata_extraction.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="60 pages instead of 400")
    ap.add_argument(
        "--seed",
        type=int,
        default=10_000,
        help="first page seed (held out from tests, which use 0-99)",
    )
    args = ap.parse_args()
    import trafilatura

    from aistack.webdata.evaluation import generate_page, token_prf
    from aistack.webdata.extract import extract_text

    n = 60 if args.quick else 400
    pages = [generate_page(args.seed + i) for i in range(n)]
    methods = {
        "aistack quality (trafilatura, deduplicate off)": lambda h: extract_text(h, mode="quality"),
        "aistack fast (resiliparse main_content)": lambda h: extract_text(h, mode="fast"),
        "trafilatura.extract(html) defaults": lambda h: trafilatura.extract(h) or "",
        "trafilatura as datatrove calls it (favor_precision, no comments, dedup on)": lambda h: (
            trafilatura.extract(h, favor_precision=True, include_comments=False, deduplicate=True)
            or ""
        ),
        "trafilatura, comments off, deduplicate off": lambda h: (
            trafilatura.extract(h, include_comments=False, deduplicate=False) or ""
        ),
    }
    rows = []
    extra: dict[str, object] = {"pages": n}
    for name, fn in methods.items():
        fn(pages[0].html)  # warm-up
        ps, rs, fs = [], [], []
        t = time.perf_counter()
        for p in pages:
            pr, rc, f1 = token_prf(fn(p.html), p.main_text)
            ps.append(pr)
            rs.append(rc)
            fs.append(f1)
        dt = time.perf_counter() - t
        rows.append(
            [
                name,
                round(statistics.mean(ps), 4),
                round(statistics.mean(rs), 4),
                round(statistics.mean(fs), 4),
                round(n / dt, 1),
            ]
        )
        extra[name] = {
            "precision": statistics.mean(ps),
            "recall": statistics.mean(rs),
            "f1": statistics.mean(fs),
            "pages_per_s": n / dt,
        }
    report(
        "webdata_extraction",
        f"main-text extraction on {n} generated pages (word-level, mean per page)",
        ["method", "precision", "recall", "F1", "pages/s (1 core)"],
        rows,
        extra,
    )


if __name__ == "__main__":
    main()
