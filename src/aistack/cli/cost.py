"""``aistack cost``: price measured usage and check project budgets."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import typer

from aistack.cli._common import (
    _Command,
    as_options,
    client,
    load_catalog_option,
    notes_as_options,
    options_for,
    print_json,
    read_json_file,
)
from aistack.errors import NotFoundError, ValidationError

app = typer.Typer(
    help="Cost of measured usage: GPU-hours, money, budgets, buy-vs-rent advice.",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Cost of measured usage: GPU-hours, money, budgets, buy-vs-rent advice."""


def _time(value: str | None, field: str, now: dt.datetime) -> dt.datetime | None:
    """ISO 8601, a date, or a relative '30d' / '12h' before now."""
    if value is None:
        return None
    v = value.strip()
    if v[-1:] in ("d", "h") and v[:-1].replace(".", "", 1).isdigit():
        n = float(v[:-1])
        try:
            return now - (dt.timedelta(days=n) if v.endswith("d") else dt.timedelta(hours=n))
        except OverflowError:  # e.g. 99999999999d: before year 1 (or too large a timedelta)
            raise ValidationError(
                f"{field}: {value!r} reaches back before the year 1",
                hint="use a shorter span such as 30d or 12h, or a date such as 2026-11-01",
            ) from None
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationError(
            f"{field}: cannot read {value!r}", hint="use 2026-11-01, 2026-11-01T08:00:00Z or 30d"
        ) from exc
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def _project_names(data: object) -> set[str]:
    """The names in a projects list (GET /projects, a budgets file, an export's "projects")."""
    if isinstance(data, dict):
        data = data.get("projects")
    if not isinstance(data, list):
        return set()
    return {str(p["name"]) for p in data if isinstance(p, dict) and "name" in p}


# price_usage's arguments that `cost report` takes as options: its errors and notes name them
_REPORT_OPTIONS = {
    "sheet": "--sheet",
    "now": "--now",
    "since": "--since",
    "project": "--project",
    "default_gpu_type": "--gpu",
    "strict": "--strict",
}


@app.command("report", cls=_Command)
def report(
    project: str = typer.Option(None, "--project", help="only this project"),
    since: str = typer.Option(
        None, "--since", help="start of the window: ISO date/time or 30d (default: first record)"
    ),
    records: Path = typer.Option(
        None, "--records", help="price an exported JSON file offline instead of asking the server"
    ),
    budgets: Path = typer.Option(
        None,
        "--budgets",
        help="projects JSON ([{name, gpu_quota, monthly_budget_usd}]) for offline use",
    ),
    sheet: str = typer.Option(
        "on-demand",
        "--sheet",
        help="onprem | on-demand | committed_1y | committed_3y | spot | <provider>[:<tier>]",
    ),
    gpu: str = typer.Option(None, "--gpu", help="GPU type for records that do not name one"),
    now: str = typer.Option(None, "--now", help="end of the window (default: now, UTC)"),
    catalog: list[Path] = typer.Option(None, "--catalog", help="extra catalog YAML file(s)"),
    strict: bool = typer.Option(
        False, "--strict", help="fail on a GPU type the price sheet cannot price"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """GPU/CPU-hours and cost per project, user and job; spend vs monthly budget; buy-vs-rent advice."""
    from aistack.planning.report import render_usage
    from aistack.planning.usage import parse_budgets, parse_records, price_usage

    now_t = _time(now, "--now", dt.datetime.now(dt.UTC)) or dt.datetime.now(dt.UTC)
    since_t = _time(since, "--since", now_t)
    budget_map: dict[str, float] = {}
    known: set[str] = set()  # projects the records, the budgets or the server know
    if records is not None:
        data = read_json_file(records, "--records")
        recs = parse_records(data)
        known = {r.project for r in recs}
        if isinstance(data, dict) and "projects" in data:
            budget_map = parse_budgets(data["projects"])
            known |= _project_names(data["projects"])
    else:
        params: dict[str, str] = {}
        if project:
            params["project"] = project
        if since_t:
            # budgets are for the calendar month: fetch from its first day when --since is later
            month_start = now_t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            params["since"] = min(since_t, month_start).isoformat()
        c = client()
        recs = parse_records(c.request("GET", "/usage/allocations", params=params))
        projects = c.request("GET", "/projects")  # every project with settings or jobs
        known = _project_names(projects)
        if budgets is None:
            budget_map = parse_budgets(projects)
    if budgets is not None:
        budget_data = read_json_file(budgets, "--budgets")
        budget_map = parse_budgets(budget_data)
        known |= _project_names(budget_data)
    # a mistyped --project priced nothing with a note; the server lists every project, an
    # offline file the projects it names (one naming none cannot tell)
    if project is not None and project not in known and (records is None or known):
        raise NotFoundError(
            f"--project: unknown project {project!r}"
            + (" on the server" if records is None else f" in {records}"),
            hint=f"known projects: {', '.join(sorted(known))}"
            if known
            else "the server has no projects yet (they come with jobs or PUT /api/v1/projects/NAME)",
            field="--project",
        )
    with options_for(_REPORT_OPTIONS):
        rep = price_usage(
            recs,
            sheet=sheet,
            now=now_t,
            since=since_t,
            project=project,
            budgets=budget_map,
            default_gpu_type=gpu,
            strict=strict,
            catalog=load_catalog_option(catalog),
        )
    rep = dataclasses.replace(
        notes_as_options(rep, _REPORT_OPTIONS),
        recommendation=as_options(rep.recommendation, _REPORT_OPTIONS),
    )
    if as_json:
        print_json(rep.to_dict())
    else:
        typer.echo(render_usage(rep), nl=False)
