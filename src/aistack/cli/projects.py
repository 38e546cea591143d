"""`aistack projects`: GPU quotas, fair-share weights and monthly budgets."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from aistack.cli._common import _Command, client, console, err_console, esc, print_json

app = typer.Typer(help="Project quotas, shares and budgets.", no_args_is_help=True)


def _usd(amount: float) -> str:
    """US dollars with their cents, and an amount under $1 with its significant digits: a
    $0.0005 budget read "$0.00" (and "0.0005 USD/month" or "1e-05 USD/month" elsewhere)."""
    if 0 < abs(amount) < 1:
        from aistack.planning.numfmt import money

        return f"${money(amount)}"
    return f"${amount:,.2f}"


def _unused_shares_note(c: Any) -> str | None:
    """Why the fair-share weights do nothing on this server (its scheduling policy is not
    ``fairshare``, the only one that reads them), or None (they are used, or the policy is
    not known: no scheduling loop, the cluster view unavailable)."""
    try:
        policy = (c.cluster().get("scheduler") or {}).get("policy")
    except Exception:  # noqa: BLE001 - a note; never a reason to fail the command
        return None
    if not isinstance(policy, str) or policy == "fairshare":
        return None
    return (
        f"note: this server schedules with the {policy!r} policy, which does not use fair-share "
        "weights; they take effect with the fairshare policy (AISTACK_POLICY=fairshare, then "
        "restart the server)"
    )


@app.command("ls", cls=_Command)
def ls(as_json: bool = typer.Option(False, "--json")) -> None:
    """List the projects: those with settings and those that only have jobs (no GPU quota, no
    budget, fair-share weight 1)."""
    api = client()
    rows = api.projects()
    if as_json:
        print_json(rows)
        return
    t = Table(title="projects")
    # "share" alone read as a fraction or a count of GPUs: it is a relative fair-share weight
    for c in ("project", "GPU quota", "fair-share weight", "monthly budget"):
        t.add_column(c)
    for p in rows:
        t.add_row(
            esc(p["name"]),
            "unlimited" if p["gpu_quota"] is None else esc(f"{p['gpu_quota']} GPUs"),
            f"{p['share']:g}",
            "-" if p["monthly_budget_usd"] is None else _usd(p["monthly_budget_usd"]),
        )
    console.print(t)
    note = _unused_shares_note(api) if any(p["share"] != 1 for p in rows) else None
    if note:
        err_console.print(note, markup=False, soft_wrap=True)


@app.command("set", cls=_Command)
def set_(
    name: str = typer.Argument(..., metavar="NAME"),
    gpu_quota: int = typer.Option(None, help="max GPUs at once"),
    no_gpu_quota: bool = typer.Option(
        False, "--no-gpu-quota", help="remove the GPU quota (unlimited GPUs)"
    ),
    budget: float = typer.Option(
        None,
        help="monthly budget in USD: `aistack cost report` compares the month's spend with "
        "it (a report: jobs are not stopped over it)",
    ),
    no_budget: bool = typer.Option(False, "--no-budget", help="remove the monthly budget"),
    share: float = typer.Option(
        None, help="fair-share weight (new projects: 1); used by the fairshare policy only"
    ),
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
    c = client()
    try:
        p = c.set_project(name, **changes)
    except ValidationError as exc:
        raise _by_flag(exc, name, changes) from None
    note = _unused_shares_note(c) if share is not None else None
    if note:  # (--share was accepted and changed nothing the scheduler does)
        err_console.print(note, markup=False, soft_wrap=True)
    if as_json:
        print_json(p)
    else:
        quota = "unlimited" if p["gpu_quota"] is None else f"{p['gpu_quota']} GPUs"
        budget_s = (
            "none" if p["monthly_budget_usd"] is None else f"{_usd(p['monthly_budget_usd'])}/month"
        )
        console.print(
            f"project {p['name']}: quota {quota}, fair-share weight {p['share']:g}, "
            f"budget {budget_s}",
            markup=False,
        )


# the API's field → the option of `aistack projects set` that sets it, and an example value
_FLAGS = {"gpu_quota": ("--gpu-quota", "4"), "monthly_budget_usd": ("--budget", "500")}
_FLAGS["share"] = ("--share", "2")


def _by_flag(exc: Any, name: str, changes: dict[str, Any]) -> Any:
    """The API's (or the client's) error about a field, told in terms of this command's
    options: ``--gpu-quota -1: must be ...``, not ``gpu_quota: Input should be ...`` and a
    pointer to the API docs. Other errors (e.g. a bad project name) are returned as they are."""
    import re

    from aistack.errors import ValidationError

    problems = exc.details.get("problems") or [exc.message]
    pattern = re.compile(rf"^(?:invalid request: )?({'|'.join(_FLAGS)}): (.*)$")
    named = [m for m in map(pattern.match, problems) if m]
    if not named:
        return exc
    said = "; ".join(
        f"{_FLAGS[m[1]][0]} {_typed(changes.get(m[1]))}: "
        + m[2].replace("Input should be", "must be").removesuffix(f", got {changes.get(m[1])}")
        for m in named
    )
    flag, example = _FLAGS[named[0][1]]
    return ValidationError(
        said,
        hint=f"e.g. `aistack projects set {name} {flag} {example}`; --no-gpu-quota and "
        "--no-budget remove a limit",
    )


def _typed(value: Any) -> str:
    """An option's value as it was typed: ``--budget -1``, not ``-1.0`` (typer's float)."""
    return f"{value:g}" if isinstance(value, float) else str(value)
