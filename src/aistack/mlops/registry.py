"""Model registry on MLflow: register a version from a run, aliases, promotion gates, lineage.

A *promotion gate* is a list of conditions on the source run's metrics, e.g.
``["val_loss<3.2", "accuracy>=0.9"]``; :func:`promote` moves an alias (``production``) to a
version only when every condition holds, and otherwise refuses with each failing condition and
the value the run logged. This is the CI/CD step between training and serving.

Lineage walks back from a model version to its run, the aistack job that produced it, the
code (git commit) and the dataset versions (run inputs), and forward to the services deployed
with it (the lineage edges aistack.serving records), see :func:`lineage`.

Every function takes ``tracking_uri`` (default: $MLFLOW_TRACKING_URI, else the aistack
server's ``/mlflow``) and ``token`` (default: $MLFLOW_TRACKING_TOKEN, else the aistack token);
inside the server process the router passes the backend store URI and needs no token.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import operator
import re
from collections.abc import Callable, Collection, Iterator
from typing import Any, NoReturn

from aistack.errors import ConflictError, NotFoundError, ValidationError, short_repr
from aistack.mlops._client import (
    auth_env,
    check_run_id,
    mlflow_errors,
    open_client,
    paged,
    resolve_token,
)
from aistack.mlops.tracking import TAG_GIT_COMMIT, TAG_INPUTS, TAG_JOB_ID, TAG_PROJECT, parse_input

log = logging.getLogger(__name__)

# page sizes of MLflow's listings (each listing reads every page; these are per request)
REGISTERED_MODELS_PAGE = 1000  # MLflow's limit per search_registered_models request
MODEL_VERSIONS_PAGE = 10_000  # (its limit: 200,000)
LOGGED_MODELS_PAGE = 100  # MLflow's default
# a stable order, so that offset-based pages neither skip nor repeat a version
VERSION_ORDER = ["name ASC", "version_number DESC"]

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_COND = re.compile(
    r"^\s*(?P<metric>[A-Za-z0-9_.\-/: ]*?[A-Za-z0-9_.\-/:])\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)
CONDITION_SYNTAX = (
    "write METRIC OP NUMBER, e.g. 'loss<3.2' or 'accuracy>=0.9' (OP: <, <=, >, >=, ==, !=)"
)
# a condition whose threshold is spelt as infinity or NaN (Python's float() reads these): refused
# with its own reason, as a number too large for a float (1e400) is
_NOT_FINITE = re.compile(
    r"^\s*(?P<metric>[A-Za-z0-9_.\-/: ]*?[A-Za-z0-9_.\-/:])\s*(?:<=|>=|==|!=|<|>)\s*"
    r"(?P<value>[-+]?(?:inf(?:inity)?|nan))\s*$",
    re.IGNORECASE,
)
# A new registered model's name: the rule of dataset names (aistack.storage.refs.NAME_RE) and of
# the names `aistack serve deploy` reads (aistack.serving.spec._MODEL_NAME_RE), where '@' is the
# alias separator, ':' the version's and '/' a URI's. Models MLflow already holds under another
# name keep working (only a new model is checked, see register_from_run).
# (a copy: importing aistack.storage loads SQLAlchemy, which `aistack models ls` does not need;
# tests/unit/mlops/test_mlops_models_cli.py checks that the patterns stay equal)
MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
MODEL_NAME_HINT = (
    "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit ('@' and ':' "
    "would read as an alias or a version: `aistack serve deploy NAME@alias`, NAME:3)"
)


def valid_model_name(name: str) -> bool:
    return isinstance(name, str) and bool(MODEL_NAME_RE.match(name))


def suggest_model_name(name: str) -> str:
    """``'bad name!'`` → ``'bad-name'``: a valid name close to ``name`` (for hints)."""
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-._")[:128]
    return out or "my-model"


def check_artifact_path(artifact_path: str) -> str:
    """The path of a model inside a run, as ``register_from_run`` takes it: relative to the
    run's artifact root; '..' (outside the run) is refused before the tracking server is asked
    (it answered with a bare ``400 Client Error`` over HTTP)."""
    path = (artifact_path or "").strip("/")
    parts = path.replace("\\", "/").split("/")
    if ".." in parts:
        raise ValidationError(
            f"path: {artifact_path!r} points outside the run's artifacts",
            hint="pass the model's path inside the run, relative to its artifact root "
            "(e.g. --path model, the name given to log_model)",
            field="path",
        )
    return path


@dataclasses.dataclass(frozen=True, kw_only=True)
class Condition:
    metric: str
    op: str
    threshold: float
    text: str

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return OPS[self.op](value, self.threshold)


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckResult:
    condition: str
    metric: str
    actual: float | None
    passed: bool
    reason: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class PromotionResult:
    name: str
    version: int
    alias: str
    run_id: str | None
    previous_version: int | None
    checks: list[CheckResult]
    promoted: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_condition(text: str, *, field: str = "require") -> Condition:
    """Parse ``"val_loss<3.2"``; a malformed condition raises ValidationError with the syntax."""
    if not isinstance(text, str):
        raise ValidationError(f"{field}: expected a string, got {text!r}", hint=CONDITION_SYNTAX)
    m = _COND.match(text)
    if not m:
        bad = _NOT_FINITE.match(text)
        if bad:
            _not_finite(field, text, bad["value"])
        raise ValidationError(
            f"{field}: {text!r} is not a condition", hint=CONDITION_SYNTAX, condition=text
        )
    threshold = float(m["value"])
    if not math.isfinite(threshold):  # '1e400' reads as infinity: 'loss<1e400' always held
        _not_finite(field, text, m["value"])
    return Condition(metric=m["metric"].strip(), op=m["op"], threshold=threshold, text=text.strip())


def _not_finite(field: str, text: str, value: str) -> NoReturn:
    raise ValidationError(
        f"{field}: {text!r}: the threshold {value} is not a finite number (a condition against "
        "infinity or NaN holds for every value or for none)",
        hint="write a finite NUMBER, at most about 1.8e308 in size, e.g. 'loss<3.2'",
        condition=text,
    )


def parse_conditions(require: list[str] | None) -> list[Condition]:
    if isinstance(require, str):  # each character was read as a condition: "require[0]: 'l'"
        raise ValidationError(
            f"require: expected a list of conditions, got the string {short_repr(require)}",
            hint=f"wrap it in a list: [{short_repr(require)}]",
            field="require",
        )
    return [parse_condition(c, field=f"require[{i}]") for i, c in enumerate(require or [])]


def check_conditions(conditions: list[Condition], metrics: dict[str, float]) -> list[CheckResult]:
    """Evaluate conditions against a run's (latest) metric values."""
    out = []
    for c in conditions:
        if c.metric not in metrics:
            known = ", ".join(sorted(metrics)) or "none"
            out.append(
                CheckResult(
                    condition=c.text,
                    metric=c.metric,
                    actual=None,
                    passed=False,
                    reason=f"metric {c.metric!r} was not logged by the run (logged: {known})",
                )
            )
            continue
        v = float(metrics[c.metric])
        ok = c.holds(v)
        out.append(
            CheckResult(
                condition=c.text,
                metric=c.metric,
                actual=v,
                passed=ok,
                reason=f"{c.metric}={v:g} {'satisfies' if ok else 'does not satisfy'} {c.text}",
            )
        )
    return out


def refusal_hint(
    conditions: list[Condition],
    checks: list[CheckResult],
    metrics: Collection[str],
    *,
    option: str | None = None,
) -> str:
    """What to do about failed checks: a metric the run did not log needs a condition on one
    it did log (with an example; the refusal's message already lists them); only a logged
    metric that fails means a better model. ``metrics``: the names the run logged.

    The conditions are named as the caller gave them: the field ``require`` (SDK, API), or
    ``option`` (the CLI's ``--require``)."""
    by_text = {c.text: c for c in conditions}
    missing = [ch for ch in checks if not ch.passed and ch.actual is None]
    failing = [ch for ch in checks if not ch.passed and ch.actual is not None]
    where = option or "`require`"
    hints = []
    if missing:
        if metrics:
            example_metric = "loss" if "loss" in metrics else sorted(metrics)[0]
            cond = by_text.get(missing[0].condition)
            op = cond.op if cond else "<"
            example = (
                f'"{example_metric}{op}{cond.threshold:g}"' if cond else f'"{example_metric}<…"'
            )
            hints.append(
                "require a metric the run logged, e.g. "
                + (f"{option} {example}" if option else f"{example} in `require`")
            )
        else:
            hints.append(
                "log the metrics (mlflow.log_metric) in the training code, or promote "
                f"without {where}"
            )
    if failing:
        hints.append(f"train a better model or change {where}")
    return "; ".join(hints)


# ------------------------------------------------------------------------- client helpers
def _client(tracking_uri: str | None) -> Any:
    return open_client(tracking_uri)


VERSION_MAX = 2**31 - 1  # MLflow's version column is an INTEGER (32 bits in PostgreSQL)


def _version_int(version: int | str, field: str = "version") -> int:
    """A version number: an int or its digits; 1.5 and True were read as version 1."""
    try:
        if isinstance(version, bool) or (
            isinstance(version, float) and not float(version).is_integer()
        ):
            raise ValueError(version)
        v = int(version)
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(
            f"{field}: {short_repr(version)} is not a version number", field=field
        ) from None
    if v < 1:
        raise ValidationError(f"{field}: must be >= 1, got {v}", field=field)
    if v > VERSION_MAX:  # SQLite: 'Python int too large to convert to SQLite INTEGER'
        raise ValidationError(
            f"{field}: {v} is past the largest version number ({VERSION_MAX})", field=field
        )
    return v


# MLflow's rules for an alias (mlflow.utils.validation: _validate_model_alias_name and
# _validate_model_alias_name_reserved), checked here so the error names the argument
ALIAS_RE = re.compile(r"^[\w\-]+\Z")
ALIAS_MAX = 255
_VERSION_ALIAS = re.compile(r"^[vV]\d+\Z")
ALIAS_HINT = "use letters, digits, '_' and '-', e.g. staging or production"


def _check_alias(alias: object, field: str) -> str:
    """An alias MLflow would take: refused naming ``field`` ('alias', or promote's 'to') with
    why (it answered "'latest' alias name (case insensitive) is reserved." and the like)."""
    _check_given(alias, field, "alias", ALIAS_HINT)
    assert isinstance(alias, str)
    if alias.lower() == "latest":
        why = "is reserved: models:/NAME@latest is always the newest version"
    elif _VERSION_ALIAS.match(alias):
        why = f"is reserved: it reads as version {alias[1:]} (models:/NAME@{alias})"
    elif len(alias) > ALIAS_MAX:
        why = f"is longer than {ALIAS_MAX} characters"
    elif not ALIAS_RE.match(alias):
        why = "may only have letters, digits, '_' and '-'"
    else:
        return alias
    raise ValidationError(
        f"{field}: the alias {short_repr(alias)} {why}", hint=ALIAS_HINT, field=field
    )


def _check_given(value: object, field: str, what: str, hint: str) -> None:
    """An empty or blank name, alias or run id is refused naming it: MLflow answered "Missing
    value for required parameter 'name'" / "Invalid value "" for parameter 'run_id'"; so is
    one that is no string (None, a number)."""
    if not isinstance(value, str):
        raise ValidationError(
            f"{field}: expected the {what}, got {short_repr(value)}", hint=hint, field=field
        )
    if not value.strip():
        why = f"{value!r} is only whitespace" if value else "is empty"
        raise ValidationError(f"{field}: the {what} {why}", hint=hint, field=field)


_NAME_HINT = "give a registered model's name; list them with `aistack models ls`"


def _missing(exc: BaseException) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def _no_such_model(client: Any, name: str) -> NotFoundError:
    """'there is no model named X', listing the registered models (as `aistack models ls`)."""
    try:
        names = sorted(rm.name for rm in _registered_models(client))
    except Exception:  # noqa: BLE001 - the listing is a courtesy
        names = None
    if names is None:
        known = ""
    elif not names:
        known = " (no models are registered yet)"
    else:
        more = f" and {len(names) - 20} more" if len(names) > 20 else ""
        known = f" (registered models: {', '.join(names[:20])}{more})"
    return NotFoundError(
        f"there is no model named {name!r}{known}",
        hint="list models with `aistack models ls`; register one with "
        "`aistack models register --run RUN_ID --name NAME`",
        name=name,
        models=names,
    )


def _check_new_name(client: Any, name: str) -> None:
    """A name that is not valid (:data:`MODEL_NAME_RE`) is refused unless MLflow already holds
    a model of that name (registered before names were checked: it keeps getting versions,
    with a warning)."""
    if valid_model_name(name):
        return
    try:
        stored = _model_exists(client, name)
    except Exception as exc:
        if getattr(exc, "error_code", "") != "INVALID_PARAMETER_VALUE":
            raise
        stored = False  # a name MLflow itself refuses ('/', ':'): never stored
    if not stored:
        raise ValidationError(
            f"name: {name!r} is not a valid registered model name",
            hint=f"{MODEL_NAME_HINT}; e.g. --name {suggest_model_name(name)}",
            field="name",
        )
    # `aistack serve deploy` cannot read its name: the caller says so
    log.warning(
        "model %r has a name `aistack serve deploy` cannot read; register it under a "
        "valid name too (e.g. %s)",
        name,
        suggest_model_name(name),
    )


def check_registered_name(
    name: str, *, tracking_uri: str | None = None, token: str | None = None
) -> None:
    """Whether ``register_from_run`` would take ``name`` (asks the registry only for a name
    that is not valid): for callers that register at the end of long work (training)."""
    if valid_model_name(name):
        return
    client = _client(tracking_uri)
    with auth_env(resolve_token(token)), mlflow_errors(f"look up model {name!r}"):
        _check_new_name(client, name)


def _model_exists(client: Any, name: str) -> bool:
    try:
        client.get_registered_model(name)
    except Exception as exc:
        if _missing(exc):
            return False
        raise
    return True


def _get_version(client: Any, name: str, version: int) -> Any:
    try:
        return client.get_model_version(name, str(version))
    except Exception as exc:
        if not _missing(exc):
            raise
        if not _model_exists(client, name):
            raise _no_such_model(client, name) from exc
        try:
            found = sorted(
                int(v.version) for v in model_versions(client, f"name = '{_quote(name)}'")
            )
        except Exception:  # noqa: BLE001 - the listing is a courtesy
            found = None
        known = "" if found is None else f" (versions: {', '.join(map(str, found)) or 'none'})"
        raise NotFoundError(
            f"model {name!r} has no version {version}{known}",
            hint=f"list versions with `aistack models show {name}`",
        ) from exc


def _registered_models(client: Any, page_size: int | None = None) -> Iterator[Any]:
    """Every registered model (all pages of ``search_registered_models``)."""
    return paged(client.search_registered_models, page_size=page_size or REGISTERED_MODELS_PAGE)


def model_versions(client: Any, filter_string: str) -> Iterator[Any]:
    """Every model version matching ``filter_string`` (all pages of ``search_model_versions``)."""
    return paged(
        client.search_model_versions,
        filter_string,
        order_by=VERSION_ORDER,
        page_size=MODEL_VERSIONS_PAGE,
    )


def _version_dict(mv: Any) -> dict[str, Any]:
    return {
        "name": mv.name,
        "version": int(mv.version),
        "run_id": mv.run_id,
        "source": mv.source,
        "status": mv.status,
        "aliases": sorted(getattr(mv, "aliases", []) or []),
        "tags": dict(mv.tags or {}),
        "created_ms": mv.creation_timestamp,
        "description": mv.description or "",
    }


# ------------------------------------------------------------------------- registry API
def register_from_run(
    run_id: str,
    name: str,
    artifact_path: str = "model",
    *,
    tracking_uri: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """Register ``runs:/<run_id>/<artifact_path>`` (or the run's logged model of that name)
    as a new version of ``name``; returns the version as a dict.

    The run's job id, project and git commit are copied onto the version as tags.
    """
    if name is None or (isinstance(name, str) and not name.strip()):
        raise ValidationError("name: must not be empty", hint="pass --name MODEL_NAME")
    _check_given(name, "name", "model name", "pass --name MODEL_NAME")
    _check_given(run_id, "run_id", "run id", "copy the run id from the MLflow UI")
    check_run_id(run_id)
    artifact_path = check_artifact_path(artifact_path)
    client = _client(tracking_uri)
    with auth_env(resolve_token(token)), mlflow_errors(f"register run {run_id} as {name!r}"):
        _check_new_name(client, name)
        try:
            run = client.get_run(run_id)
        except Exception as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                raise NotFoundError(
                    f"run {run_id!r} does not exist", hint="copy the run id from the MLflow UI"
                ) from exc
            raise
        source, model_id = _find_model_source(client, run, artifact_path)
        try:
            client.create_registered_model(name)
        except Exception as exc:
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        tags = {
            k: v
            for k, v in {
                TAG_JOB_ID: run.data.tags.get(TAG_JOB_ID),
                TAG_PROJECT: run.data.tags.get(TAG_PROJECT),
                TAG_GIT_COMMIT: run.data.tags.get(TAG_GIT_COMMIT)
                or run.data.tags.get("mlflow.source.git.commit"),
            }.items()
            if v
        }
        # the SQL store creates versions READY at once; skip MLflow's "Waiting up to 300 s" log
        kwargs: dict[str, Any] = {"tags": tags, "await_creation_for": 0}
        if model_id:
            kwargs["model_id"] = model_id
        mv = client.create_model_version(name, source, run_id=run_id, **kwargs)
        mv = client.get_model_version(name, mv.version)
    return _version_dict(mv)


def _find_model_source(client: Any, run: Any, artifact_path: str) -> tuple[str, str | None]:
    run_id = run.info.run_id
    # MLflow 3: log_model(name=...) creates a LoggedModel linked to the run
    try:
        models = list(
            paged(
                client.search_logged_models,
                experiment_ids=[run.info.experiment_id],
                filter_string=f"source_run_id = '{run_id}'",
                page_size=LOGGED_MODELS_PAGE,
            )
        )
    except Exception:  # noqa: BLE001 - stores without logged models
        models = []
    for lm in models:
        if lm.name == artifact_path:
            return f"models:/{lm.model_id}", lm.model_id
    if artifact_path:
        parent, _, leaf = artifact_path.rpartition("/")
        listing = client.list_artifacts(run_id, parent or None)
        if any(f.path.rstrip("/").split("/")[-1] == leaf for f in listing):
            return f"runs:/{run_id}/{artifact_path}", None
    names = sorted({lm.name for lm in models} | {f.path for f in client.list_artifacts(run_id)})
    raise NotFoundError(
        f"run {run_id} has no model or artifact at {artifact_path!r} "
        f"(it has: {', '.join(names) or 'nothing'})",
        hint="log the model first (mlflow.<flavor>.log_model(..., name='model')) or pass --path",
    )


def set_alias(
    name: str,
    alias: str,
    version: int | str,
    *,
    tracking_uri: str | None = None,
    token: str | None = None,
) -> None:
    _check_given(name, "name", "model name", _NAME_HINT)
    _check_alias(alias, "alias")
    v = _version_int(version)
    client = _client(tracking_uri)
    with auth_env(resolve_token(token)), mlflow_errors(f"set alias {alias!r} on {name} v{v}"):
        _get_version(client, name, v)
        client.set_registered_model_alias(name, alias, str(v))


def delete_alias(
    name: str, alias: str, *, tracking_uri: str | None = None, token: str | None = None
) -> None:
    _check_given(name, "name", "model name", _NAME_HINT)
    _check_given(alias, "alias", "alias", "give an alias, e.g. staging or production")
    client = _client(tracking_uri)
    with auth_env(resolve_token(token)), mlflow_errors(f"delete alias {alias!r} of {name}"):
        aliases = _aliases(client, name)
        if alias not in aliases:
            raise NotFoundError(
                f"model {name!r} has no alias {alias!r} (aliases: {', '.join(aliases) or 'none'})"
            )
        client.delete_registered_model_alias(name, alias)


def _aliases(client: Any, name: str) -> dict[str, int]:
    try:
        rm = client.get_registered_model(name)
    except Exception as exc:
        if _missing(exc):
            raise _no_such_model(client, name) from exc
        raise
    return {a: int(v) for a, v in (rm.aliases or {}).items()}


def promote(
    name: str,
    version: int | str,
    to_alias: str,
    require: list[str] | None = None,
    *,
    tracking_uri: str | None = None,
    token: str | None = None,
) -> PromotionResult:
    """Point alias ``to_alias`` at ``version`` if the version's run meets every condition.

    Raises ValidationError for a malformed condition (before contacting the server) and
    ConflictError naming every failing condition (the alias is left unchanged).
    """
    _check_given(name, "name", "model name", _NAME_HINT)
    conditions = parse_conditions(require)
    v = _version_int(version)
    if not to_alias or not to_alias.strip():
        raise ValidationError(
            "to: alias must not be empty", hint="name the alias to move, e.g. production"
        )
    _check_alias(to_alias, "to")
    client = _client(tracking_uri)
    with auth_env(resolve_token(token)), mlflow_errors(f"promote {name} v{v} to {to_alias!r}"):
        mv = _get_version(client, name, v)
        metrics: dict[str, float] = {}
        if mv.run_id:
            metrics = dict(client.get_run(mv.run_id).data.metrics)
        elif conditions:
            # read over the API (POST /models/NAME/promote) as well as by the CLI: it names
            # both ways (it named the CLI command alone)
            raise ConflictError(
                f"{name} v{v} has no source run, so its metrics cannot be checked against "
                f"the conditions ({', '.join(c.text for c in conditions)})",
                hint="promote it without conditions (no `require`; `--require` in the CLI), or "
                "register the model from a run and promote that version: `aistack models "
                f"register --run RUN_ID --name {name}` or MLflow's "
                f"mlflow.register_model('runs:/RUN_ID/model', {name!r})",
                field="require",
            )
        checks = check_conditions(conditions, metrics)
        failed = [c for c in checks if not c.passed]
        if failed:
            raise ConflictError(
                f"refused to promote {name} v{v} to {to_alias!r}: "
                + "; ".join(c.reason for c in failed),
                hint=refusal_hint(conditions, checks, metrics),
                checks=[dataclasses.asdict(c) for c in checks],
                logged=sorted(metrics),
            )
        previous = _aliases(client, name).get(to_alias)
        client.set_registered_model_alias(name, to_alias, str(v))
    return PromotionResult(
        name=name,
        version=v,
        alias=to_alias,
        run_id=mv.run_id,
        previous_version=previous,
        checks=checks,
    )


def list_models(
    *, tracking_uri: str | None = None, token: str | None = None, page_size: int | None = None
) -> list[dict[str, Any]]:
    """Every registered model with its latest version and aliases, sorted by name.

    MLflow answers a search one page at a time; this reads every page (``page_size`` models per
    request, default and most 1,000)."""
    if page_size is not None and not 1 <= page_size <= REGISTERED_MODELS_PAGE:
        raise ValidationError(
            f"page_size: must be between 1 and {REGISTERED_MODELS_PAGE}, got {page_size}"
        )
    client = _client(tracking_uri)
    out = []
    with auth_env(resolve_token(token)), mlflow_errors("list registered models"):
        for rm in _registered_models(client, page_size):
            versions = [int(v.version) for v in (rm.latest_versions or [])]
            out.append(
                {
                    "name": rm.name,
                    "latest_version": max(versions) if versions else None,
                    "aliases": {a: int(v) for a, v in (rm.aliases or {}).items()},
                    "description": rm.description or "",
                    "updated_ms": rm.last_updated_timestamp,
                }
            )
    return sorted(out, key=lambda m: m["name"])


def show_model(
    name: str, *, tracking_uri: str | None = None, token: str | None = None
) -> dict[str, Any]:
    """A registered model with all its versions (newest first)."""
    _check_given(name, "name", "model name", _NAME_HINT)
    client = _client(tracking_uri)
    with auth_env(resolve_token(token)), mlflow_errors(f"show model {name!r}"):
        aliases = _aliases(client, name)
        rm = client.get_registered_model(name)
        versions = list(model_versions(client, f"name = '{_quote(name)}'"))
    vs = sorted((_version_dict(v) for v in versions), key=lambda d: -d["version"])
    by_version: dict[int, list[str]] = {}
    for a, v in aliases.items():
        by_version.setdefault(v, []).append(a)
    for d in vs:
        d["aliases"] = sorted(by_version.get(d["version"], []))
    return {
        "name": name,
        "description": rm.description or "",
        "aliases": aliases,
        "versions": vs,
    }


def _quote(s: str) -> str:
    return s.replace("'", "\\'")


def lineage(
    name: str, version: int | str, *, tracking_uri: str | None = None, token: str | None = None
) -> dict[str, Any]:
    """Model version → run → job → code → datasets, and the services deployed with the version,
    as a dict.

    ``services``: from the lineage edges ``model:NAME@vN → service:SVC`` that a deploy or a
    rollout records (aistack.serving.lineage), and the services deployed straight from the
    version's source run with the version's own model (``runs:/RUN_ID/PATH``, PATH the path
    the version was registered from, see :func:`_run_model_path`; another path of the run is
    another model), each with whether it still serves the version (see
    :func:`aistack.serving.lineage.served_by`); None when the dataset catalog could not be
    read, with ``services_error`` saying why."""
    _check_given(name, "name", "model name", _NAME_HINT)
    v = _version_int(version)
    client = _client(tracking_uri)
    with auth_env(resolve_token(token)), mlflow_errors(f"lineage of {name} v{v}"):
        mv = _get_version(client, name, v)
        model = _version_dict(mv)
        aliases = _aliases(client, name)
        model["aliases"] = sorted(a for a, av in aliases.items() if av == v)
        if not mv.run_id:
            return {
                "model": model,
                "run": None,
                "job": None,
                "code": None,
                "datasets": [],
                **_services(name, v),
            }
        run = client.get_run(mv.run_id)
        model_path = _run_model_path(client, mv, run)
    tags = dict(run.data.tags)
    datasets = []
    for di in run.inputs.dataset_inputs if run.inputs else []:
        ds = di.dataset
        entry = {
            "name": ds.name,
            "digest": ds.digest,
            "source_type": ds.source_type,
            "version": None,
            "ref": None,
        }
        try:
            src = json.loads(ds.source)
            entry["version"] = src.get("version")
            entry["ref"] = src.get("ref")
        except (TypeError, ValueError, AttributeError):
            entry["ref"] = ds.source
        datasets.append(entry)
    if not datasets and tags.get(TAG_INPUTS):
        for ref in tags[TAG_INPUTS].split(","):
            if ref.strip():
                n, ver = parse_input(ref)
                datasets.append(
                    {"name": n, "digest": None, "source_type": "tag", "version": ver, "ref": ref}
                )
    commit = tags.get(TAG_GIT_COMMIT) or tags.get("mlflow.source.git.commit")
    job_id = tags.get(TAG_JOB_ID)
    return {
        "model": model,
        "run": {
            "id": run.info.run_id,
            "name": run.info.run_name,
            "experiment_id": run.info.experiment_id,
            "status": run.info.status,
            "start_ms": run.info.start_time,
            "end_ms": run.info.end_time,
            "user": tags.get("mlflow.user"),
            "metrics": dict(run.data.metrics),
            "params": dict(run.data.params),
        },
        "job": {"id": job_id, "project": tags.get(TAG_PROJECT)} if job_id else None,
        "code": {
            "git_commit": commit,
            "source": tags.get("mlflow.source.name"),
            "repo": tags.get("mlflow.source.git.repoURL"),
        },
        "datasets": datasets,
        **_services(name, v, run.info.run_id, model_path),
    }


def _run_model_path(client: Any, mv: Any, run: Any) -> str | None:
    """The path inside ``run`` (the version's source run) that ``runs:/RUN_ID/PATH`` loads the
    version's model from, or None when the version's files are not the run's:

    - source ``runs:/RUN_ID/PATH`` (:func:`register_from_run` of an artifact directory): PATH;
    - source ``models:/m-…``, a logged model of the run (MLflow 3 ``log_model(name=...)``): its
      name (MLflow resolves ``runs:/RUN_ID/NAME`` to the run's logged model NAME);
    - source under the run's artifact URI (``mlflow.register_model`` of a full URI): the rest.

    ``""`` is the run's root. Best effort: a logged model that cannot be read gives None."""
    from aistack.serving.lineage import run_model, run_path

    rid = run.info.run_id
    source = mv.source or ""
    if source.startswith("runs:/"):
        rm = run_model(source)
        return rm[1] if rm is not None and rm[0] == rid else None
    if source.startswith("models:/"):
        model_id = getattr(mv, "model_id", None) or source.removeprefix("models:/")
        if "/" in model_id or "@" in model_id:  # models:/NAME/N, models:/NAME@alias
            return None
        try:
            lm = client.get_logged_model(model_id)
        except Exception as exc:  # noqa: BLE001 - the rest of the lineage still answers
            log.warning(
                "lineage of %s v%s: logged model %s not read: %s",
                mv.name,
                mv.version,
                model_id,
                exc,
            )
            return None
        return lm.name if getattr(lm, "source_run_id", None) == rid else None
    base = (run.info.artifact_uri or "").rstrip("/")
    if base and (source == base or source.startswith(base + "/")):
        return run_path(source[len(base) :])
    return None


def _services(
    name: str, version: int, run_id: str | None = None, model_path: str | None = None
) -> dict[str, Any]:
    """``{"services": [...], "services_error": None}``: the services deployed with the version
    (:func:`aistack.serving.lineage.served_by`); a catalog that cannot be read leaves the rest
    of the lineage standing (``services`` None, ``services_error`` why)."""
    try:
        from aistack.serving.lineage import served_by

        services = served_by(name, version, run_id=run_id, model_path=model_path)
        return {"services": services, "services_error": None}
    except Exception as exc:  # noqa: BLE001 - the registry's part still answers
        log.warning("lineage of %s v%s: services not read: %s", name, version, exc)
        return {"services": None, "services_error": str(getattr(exc, "message", None) or exc)}
