"""TCO chart: cumulative cost vs month per scenario, as PNG (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

from aistack.errors import ValidationError
from aistack.planning.tco import TcoResult


def tco_chart_png(result: TcoResult, path: str | Path) -> Path:
    """Write the cumulative-cost chart of ``result`` to ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    out = Path(path)
    if out.suffix.lower() != ".png":
        raise ValidationError(f"chart: {str(out)!r} must end in .png", hint="e.g. --chart tco.png")
    out.parent.mkdir(parents=True, exist_ok=True)
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
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
    return out
