"""`aistack projects`: GPU quotas, fair-share weights and monthly budgets."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from aistack.cli._common import _Command, client, console, print_json

app = typer.Typer(help="Project quotas, shares and budgets.", no_args_is_help=True)


@app.command("ls", cls=_Command)
def ls(as_json: bool = typer.Option(False, "--json")) -> None:
    rows = client().projects()
    if as_json:
        print_json(rows)
        return
    t = Table(title="projects")
    for c in ("project", "GPU quota", "share", "monthly budget"):
        t.add_column(c)
    for p in rows:
        t.add_row(
            p["name"],
            "unlimited" if p["gpu_quota"] is None else f"{p['gpu_quota']} GPUs",
            f"{p['share']:g}",
            "-" if p["monthly_budget_usd"] is None else f"${p['monthly_budget_usd']:,.2f}",
        )
    console.print(t)


@app.command("set", cls=_Command)
def set_(
    name: str = typer.Argument(..., metavar="NAME"),
    gpu_quota: int = typer.Option(None, help="max GPUs at once"),
    no_gpu_quota: bool = typer.Option(
        False, "--no-gpu-quota", help="remove the GPU quota (unlimited GPUs)"
    ),
    budget: float = typer.Option(None, help="monthly budget in USD"),
    no_budget: bool = typer.Option(False, "--no-budget", help="remove the monthly budget"),
    share: float = typer.Option(None, help="fair-share weight (new projects: 1)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Change a project's settings; the options not given keep their value."""
    from aistack.errors import ValidationError

    if gpu_quota is not None and no_gpu_quota:
        raise ValidationError("give --gpu-quota N or --no-gpu-quota, not both")
    if budget is not None and no_budget:
        raise ValidationError("give --budget USD or --no-budget, not both")
    changes: dict[str, Any] = {}
    if gpu_quota is not None or no_gpu_quota:
        changes["gpu_quota"] = gpu_quota
    if budget is not None or no_budget:
        changes["monthly_budget_usd"] = budget
    if share is not None:
        changes["share"] = share
    p = client().set_project(name, **changes)
    if as_json:
        print_json(p)
    else:
        quota = "unlimited" if p["gpu_quota"] is None else f"{p['gpu_quota']} GPUs"
        budget_s = (
            "none" if p["monthly_budget_usd"] is None else f"{p['monthly_budget_usd']} USD/month"
        )
        console.print(
            f"project {p['name']}: quota {quota}, share {p['share']:g}, budget {budget_s}"
        )
