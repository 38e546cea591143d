"""TCO chart: cumulative cost vs month per scenario, as PNG (matplotlib, Agg backend).

The path is checked before the plan is computed (:func:`check_chart_path`): it must end in
``.png`` and must not be a folder; missing parent folders are created (as ``aistack sim run
--plot`` does), and a path that cannot be written (a parent is a file, a read-only or special
file system) is a ValidationError that names it.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from aistack.errors import ValidationError
from aistack.planning.tco import TcoResult

_HINT = "choose another path, e.g. tco.png"


def check_chart_path(path: str | Path) -> Path:
    """Fail before the plan is computed, not after, when the chart cannot be written to
    ``path``; creates its missing parent folders (module docstring). Returns the path."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValidationError(
            f"path: {str(out)!r} must end in .png", hint="e.g. tco.png", field="path"
        )
    if out.is_dir():
        raise ValidationError(
            f"path: {str(out)!r} is a folder",
            hint=f"give a file name, e.g. {out / 'tco.png'}",
            field="path",
        )
    missing: list[Path] = []
    for parent in out.parents:
        if parent.is_dir():
            break
        if os.path.lexists(parent):
            raise ValidationError(
                f"path: cannot write {str(out)!r}: {str(parent)!r} is a file, not a folder",
                hint=_HINT,
                field="path",
            )
        missing.append(parent)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"path: cannot create the folder {str(out.parent)!r} ({exc.strerror or exc})",
            hint=_HINT,
            field="path",
        ) from None
    try:
        if out.exists():
            if not out.is_file() or not os.access(out, os.W_OK):
                raise PermissionError(13, "not a writable file")
        else:  # create and remove it: the only sure test on /proc, read-only mounts, ...
            with open(out, "xb"):
                pass
            out.unlink()
    except OSError as exc:
        for folder in missing:  # the deepest first: leave nothing behind
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise ValidationError(
            f"path: cannot write {str(out)!r} ({exc.strerror or exc})", hint=_HINT, field="path"
        ) from None
    return out


def tco_chart_png(result: TcoResult, path: str | Path) -> Path:
    """Write the cumulative-cost chart of ``result`` to ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    out = check_chart_path(path)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        months = list(range(result.horizon_months + 1))
        for s in result.scenarios:
            ax.plot(
                months,
                s.cumulative_usd,
                label=s.name,
                linewidth=2 if s.name in ("on-prem", "cloud on-demand") else 1.3,
            )
        be = result.breakeven_month
        if be is not None and be > result.horizon_months:
            # past the horizon the curves stop short of it: say so instead of a line off the plot
            ax.text(
                0.99,
                0.02,
                f"break-even {be:.1f} mo (after the {result.horizon_months}-month horizon)",
                transform=ax.transAxes,
                ha="right",
                fontsize=8,
                color="grey",
            )
        elif be is not None:
            ax.axvline(be, color="grey", linestyle=":", linewidth=1)
            ax.annotate(
                f"break-even {be:.1f} mo",
                (be, 0),
                xytext=(4, 8),
                textcoords="offset points",
                fontsize=8,
                color="grey",
            )
        ax.set_xlabel("month")
        ax.set_ylabel("cumulative cost (USD)")
        ax.yaxis.set_major_formatter(
            FuncFormatter(
                lambda v, _: (
                    f"${v / 1e6:.2f}M" if abs(v) >= 1e6 else (f"${v / 1e3:.0f}k" if v else "$0")
                )
            )
        )
        ax.set_title(f"{result.gpus} x {result.gpu} at {result.utilization:.0%} utilization")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        try:
            fig.savefig(out, format="png")
        except OSError as exc:
            raise ValidationError(
                f"path: cannot write {str(out)!r} ({exc.strerror or exc})",
                hint=_HINT,
                field="path",
            ) from None
    finally:
        plt.close(fig)
    return out
