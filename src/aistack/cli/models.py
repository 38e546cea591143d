"""``aistack models``: the model registry (MLflow) — list, register, aliases, promote, lineage."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

from aistack.cli._common import _Command, esc

app = typer.Typer(
    help="Model registry: register versions from runs, aliases, promotion gates, lineage.",
    no_args_is_help=True,
)


def _given(what: str, hint: str) -> Callable[..., Any]:
    """A parameter callback that refuses an empty or blank value (``""`` from an unset shell
    variable) before the registry is asked, naming the argument as `_refuse_empty_path` names
    a path: MLflow's own answer ("Missing value for required parameter 'name'", "Invalid value
    "" for parameter 'run_id' supplied") said neither which argument nor what to pass."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
        if ctx.resilient_parsing or value is None or value.strip():
            return value
        from aistack.errors import ValidationError

        name = param.opts[0] if param.param_type_name == "option" else (param.metavar or param.name)
        raise ValidationError(
            f"{name}: the {what} " + (f"{value!r} is only whitespace" if value else "is empty"),
            hint=f"{hint}; an unset shell variable expands to an empty argument",
            field=param.name,
        )

    return check


@contextlib.contextmanager
def _as_options(options: dict[str, str]) -> Iterator[None]:
    """A registry error in this command's words: its "field: " prefix becomes the option that
    set the field (``version: must be >= 1`` → ``--version: must be >= 1``, ``require[1]: …`` →
    ``--require: …``), as the other commands name their options."""
    from aistack.errors import ValidationError

    try:
        yield
    except ValidationError as exc:
        field, sep, rest = exc.message.partition(": ")
        option = options.get(re.sub(r"\[\d+\]$", "", field)) if sep else None
        if option is None:
            raise
        raise ValidationError(
            f"{option}: {rest}", hint=exc.hint, **{**exc.details, "field": option}
        ) from None


ModelName = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="registered model name",
        callback=_given(
            "model name", "give a registered model's name; list them with `aistack models ls`"
        ),
    ),
]
TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="MLflow server (default: the aistack server's /mlflow)",
    ),
]
Json = Annotated[bool, typer.Option("--json", help="print the result as JSON")]


@app.callback()
def _group() -> None:
    """Registered models live in the MLflow registry served by `aistack up` under /mlflow."""
    # fail fast when the server is down instead of MLflow's ~2 minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def _out(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _console() -> Any:
    from aistack.cli._common import make_console

    return make_console()


_URI_HINT = (
    "pass the tracking server's address, e.g. http://127.0.0.1:8000/mlflow as `aistack up` "
    "serves it, or a database URI such as sqlite:///PATH/mlflow.db, with --tracking-uri or "
    "$MLFLOW_TRACKING_URI"
)


def _uri(tracking_uri: str | None) -> str:
    """The tracking URI the command uses, checked: one MLflow cannot open (``notaurl``,
    ``foo://x``, ``sqlite:``) is a ValidationError that says what to pass, not MLflow's
    traceback. An http(s) server is only asked by the command itself."""
    from urllib.parse import urlsplit

    from aistack.errors import AistackError, ValidationError
    from aistack.mlops._client import mlflow_client, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    why = None
    try:
        parts = urlsplit(uri)
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError as exc:  # e.g. an unclosed '[' in the host
        scheme, host, why = "", None, f"cannot read it as a URL: {exc}"
    if why is not None:
        pass
    elif scheme in ("http", "https"):
        if host:
            return uri
        why = "the URL has no host"
    else:
        try:
            mlflow_client(uri)
        except AistackError:
            raise
        except Exception as exc:  # MlflowException, SQLAlchemy's ArgumentError, ...
            text = " ".join(str(getattr(exc, "message", None) or exc).split())
            if "filesystem tracking backend" in text:
                folder = "a local folder, a file store MLflow no longer opens by default"
                # a bare word or path (C: is a drive letter) was likely meant to be a URL
                why = f"not a URL: it reads as {folder}" if len(scheme) <= 1 else folder
            else:
                why = (text.split(". ")[0] or type(exc).__name__)[:300]
    if why is None:
        return uri
    raise ValidationError(
        f"--tracking-uri {uri!r}: MLflow cannot open it as a tracking store ({why})",
        hint=_URI_HINT,
        field="tracking_uri",
    )


@app.command("ls", cls=_Command)
def ls(tracking_uri: TrackingUri = None, as_json: Json = False) -> None:
    """List registered models with their latest version and aliases."""
    models = _list_models(_uri(tracking_uri))
    if as_json:
        _out(models)
        return
    from rich.table import Table

    t = Table(title=f"registered models ({len(models)})")
    for c in ("name", "latest version", "aliases", "updated"):
        t.add_column(c)
    for m in models:
        aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(m["aliases"].items())) or "-"
        latest = f"v{m['latest_version']}" if m["latest_version"] else "-"  # no versions yet
        t.add_row(esc(m["name"]), esc(latest), esc(aliases), _when(m["updated_ms"]))
    _console().print(t)


def _list_models(tracking_uri: str | None) -> list[dict[str, Any]]:
    """From an http(s) tracking server through its REST API (the CLI does not import MLflow
    just to list), else (a local store: sqlite:, file:, ...) through MLflow's client."""
    from aistack.mlops import _rest
    from aistack.mlops._client import resolve_token, resolve_tracking_uri
    from aistack.mlops.registry import REGISTERED_MODELS_PAGE, list_models

    uri = resolve_tracking_uri(tracking_uri)
    if _rest.usable(uri):
        return _rest.list_registered_models(
            uri, token=resolve_token(), page_size=REGISTERED_MODELS_PAGE
        )
    return list_models(tracking_uri=uri)


@app.command("show", cls=_Command)
def show(
    name: ModelName,
    tracking_uri: TrackingUri = None,
    as_json: Json = False,
) -> None:
    """A model's versions with their runs, aliases and creation time."""
    from aistack.mlops.registry import show_model

    m = show_model(name, tracking_uri=_uri(tracking_uri))
    if as_json:
        _out(m)
        return
    from rich.table import Table

    n = len(m["versions"])
    t = Table(title=f"{esc(m['name'])}: {n} version{'' if n == 1 else 's'}")
    for c in ("version", "aliases", "run", "job", "source", "created"):
        t.add_column(c)
    for v in m["versions"]:
        t.add_row(
            esc(f"v{v['version']}"),
            esc(", ".join(v["aliases"]) or "-"),
            esc(v["run_id"] or "-"),
            esc(v["tags"].get("aistack.job_id", "-")),
            esc(v["source"]),
            _when(v["created_ms"]),
        )
    _console().print(t)


@app.command("register", cls=_Command)
def register(
    run: Annotated[
        str,
        typer.Option(
            "--run",
            help="MLflow run id",
            callback=_given("run id", "copy the run id from the MLflow UI"),
        ),
    ],
    name: Annotated[
        str,
        typer.Option(
            "--name",
            help="registered model name",
            callback=_given("model name", "give the name to register the model as, e.g. gpt"),
        ),
    ],
    path: Annotated[
        str,
        typer.Option(
            "--path",
            help="model name or artifact path inside the run",
            callback=_given(
                "path inside the run",
                "give the model's path inside the run, e.g. model, the name given to log_model",
            ),
        ),
    ] = "model",
    tracking_uri: TrackingUri = None,
    as_json: Json = False,
) -> None:
    """Register the run's model (or artifact directory) as a new version of NAME."""
    from aistack.mlops.registry import register_from_run, suggest_model_name, valid_model_name

    mv = register_from_run(run, name, path, tracking_uri=_uri(tracking_uri))
    if not valid_model_name(name):  # a model registered before names were checked
        from aistack.cli._common import err_console

        err_console.print(
            esc(
                f"warning: {name!r} is not a valid model name: `aistack serve deploy` cannot "
                f"read it; register the run under a valid name too, e.g. `aistack models "
                f"register --run {run} --name {suggest_model_name(name)}`"
            ),
            soft_wrap=True,
        )
    if as_json:
        _out(mv)
        return
    _console().print(
        f"registered [bold]{esc(mv['name'])}[/bold] "
        + esc(f"v{mv['version']} from run {mv['run_id']} ({mv['source']})")
    )


@app.command("promote", cls=_Command)
def promote_cmd(
    name: ModelName,
    version: Annotated[int, typer.Option("--version", help="version number to promote")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="alias to move, e.g. staging, production",
            callback=_given("alias", "give the alias to move, e.g. --to production"),
        ),
    ],
    require: Annotated[
        list[str] | None,
        typer.Option(
            "--require",
            help="condition on the run's logged metrics, e.g. 'loss<3.2' (repeatable)",
        ),
    ] = None,
    tracking_uri: TrackingUri = None,
    as_json: Json = False,
) -> None:
    """Point alias --to at --version if every --require condition holds on its run's metrics;
    otherwise refuse (exit status 2) and say which condition failed."""
    from aistack.errors import ConflictError
    from aistack.mlops.registry import CheckResult, parse_conditions, promote, refusal_hint

    with _as_options({"version": "--version", "to": "--to", "require": "--require"}):
        try:
            res = promote(name, version, to, list(require or []), tracking_uri=_uri(tracking_uri))
        except ConflictError as exc:
            if "checks" not in exc.details or "logged" not in exc.details:
                raise
            # the refusal's hint names the option typed here (the registry's names the field
            # `require`, as the SDK and the API take it)
            hint = refusal_hint(
                parse_conditions(list(require or [])),
                [CheckResult(**c) for c in exc.details["checks"]],
                exc.details["logged"],
                option="--require",
            )
            raise ConflictError(exc.message, hint=hint, **exc.details) from None
    if as_json:
        _out(res.to_dict())
        return
    c = _console()
    for ch in res.checks:
        c.print(f"  [green]✓[/green] {esc(ch.reason)}")
    if res.previous_version == res.version:
        prev = " (already there)"
    else:
        prev = f" (was v{res.previous_version})" if res.previous_version else ""
    c.print(f"[bold]{esc(res.name)}[/bold]" + esc(f"@{res.alias} → v{res.version}{prev}"))


@app.command("alias", cls=_Command)
def alias_cmd(
    name: ModelName,
    alias: Annotated[
        str,
        typer.Argument(
            metavar="ALIAS",
            help="alias, e.g. staging",
            callback=_given("alias", "give an alias, e.g. staging or production"),
        ),
    ],
    version: Annotated[
        int | None, typer.Option("--version", help="version to point the alias at")
    ] = None,
    delete: Annotated[bool, typer.Option("--delete", help="remove the alias")] = False,
    tracking_uri: TrackingUri = None,
    as_json: Json = False,
) -> None:
    """Set (--version N) or remove (--delete) an alias without checks."""
    from aistack.errors import ValidationError
    from aistack.mlops.registry import delete_alias, set_alias

    if delete == (version is not None):
        raise ValidationError("alias: pass exactly one of --version N or --delete")
    tracking_uri = _uri(tracking_uri)
    result: dict[str, Any]
    if delete:
        delete_alias(name, alias, tracking_uri=tracking_uri)
        result = {"name": name, "alias": alias, "version": None}
    else:
        assert version is not None
        with _as_options({"version": "--version"}):
            set_alias(name, alias, version, tracking_uri=tracking_uri)
        result = {"name": name, "alias": alias, "version": version}
    if as_json:
        _out(result)
        return
    target = "removed" if delete else f"→ v{version}"
    _console().print(f"[bold]{esc(name)}[/bold]" + esc(f"@{alias} {target}"))


@app.command("lineage", cls=_Command)
def lineage_cmd(
    name: ModelName,
    version: Annotated[
        int | None, typer.Option("--version", help="version number (default: the newest)")
    ] = None,
    tracking_uri: TrackingUri = None,
    as_json: Json = False,
) -> None:
    """Where a model version came from (run, job, code commit, dataset versions) and the
    services deployed with it (whether each still serves it)."""
    from aistack.mlops.registry import lineage, show_model

    with _as_options({"version": "--version"}):
        if version is None:
            # the newest version, as `aistack data lineage NAME` takes the latest
            versions = show_model(name, tracking_uri=_uri(tracking_uri))["versions"]
            if not versions:
                from aistack.errors import NotFoundError

                raise NotFoundError(
                    f"model {name!r} has no versions yet",
                    hint="register one with `aistack models register`",
                )
            version = int(versions[0]["version"])  # newest first
        lin = lineage(name, version, tracking_uri=_uri(tracking_uri))
    if as_json:
        _out(lin)
        return
    from rich.tree import Tree

    m = lin["model"]
    # (every value escaped: rich would take "[production]" for markup and print nothing)
    aliases = f" [{', '.join(m['aliases'])}]" if m["aliases"] else ""
    tree = Tree(
        "[bold]model[/bold] " + esc(f"{m['name']} v{m['version']}{aliases} ({m['source']})")
    )
    run = lin["run"]
    if run is None:
        tree.add("run: none (registered without a run)")
    else:
        r = tree.add(
            "[bold]run[/bold] "
            + esc(
                f"{run['id']} {run['name'] or ''} {run['status']} "
                f"(user {run['user'] or '-'}, started {_when(run['start_ms'])})"
            )
        )
        job = lin["job"]
        r.add(
            "[bold]job[/bold] " + esc(f"{job['id']} (project {job['project']})")
            if job
            else "job: none (not run by aistack)"
        )
        code = lin["code"] or {}
        r.add(f"[bold]code[/bold] git commit {esc(code.get('git_commit') or 'unknown')}")
        ds = r.add(f"[bold]datasets[/bold] ({len(lin['datasets'])})")
        for d in lin["datasets"]:
            ds.add(esc(f"{d['name']} version {d['version']} ({d['ref']})"))
    _served_by(tree, lin)
    _console().print(tree)


def _served_by(tree: Any, lin: dict[str, Any]) -> None:
    """The services the lineage says were deployed with the version, and what each serves
    now: ``served by chat (serving), old (now serves models:/gpt/4)``."""
    if "services" not in lin:
        return
    services = lin["services"]
    if services is None:
        why = lin.get("services_error") or "unknown error"
        tree.add(esc(f"served by: unknown (the dataset catalog could not be read: {why})"))
        return
    if not services:
        tree.add("served by: none (no service was deployed with this version)")
        return
    names = ", ".join(f"{s['name']} ({s['state']})" for s in services)
    tree.add(f"[bold]served by[/bold] {esc(names)}")
