"""`aistack projects`: GPU quotas, fair-share weights and monthly budgets."""

from __future__ import annotations

import typer
from rich.table import Table

from aistack.cli._common import client, console, print_json

app = typer.Typer(help="Project quotas, shares and budgets.", no_args_is_help=True)


@app.command("ls")
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


@app.command("set")
def set_(
    name: str,
    gpu_quota: int = typer.Option(None, help="max GPUs at once"),
    budget: float = typer.Option(None, help="monthly budget in USD"),
    share: float = typer.Option(1.0, help="fair-share weight"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    p = client().set_project(name, gpu_quota=gpu_quota, monthly_budget_usd=budget, share=share)
    if as_json:
        print_json(p)
    else:
        console.print(
            f"project {p['name']}: quota {p['gpu_quota']} GPUs, share {p['share']}, budget {p['monthly_budget_usd']} USD/month"
        )
