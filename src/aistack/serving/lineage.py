"""Which model version a service was deployed with, in aistack.storage's lineage graph.

Each rollout of a registry model (``serve deploy``, and a ``serve update`` once it succeeded)
records ``model:NAME@vN → service:SERVICE``, and, when the version was registered from a run,
``run:ID → model:NAME@vN`` (the registry's link, which never changes for a version), so that the
catalog holds the whole path dataset version → job → run → model version → service and
``aistack data lineage corpus@v1`` walks it to the endpoint. A rollout of a run's model
(``runs:/RUN_ID/PATH``, no registry version in between) records ``run:RUN_ID →
service:SERVICE``: the same walk reaches the endpoint from the run. :func:`record_rollout` writes them;
the deploying process calls it for a deploy (:func:`aistack.serving.manager.deploy`), the
controller for an update (only a rollout that succeeded; a failed one left the old version
serving).

An edge is history: "SERVICE was deployed with NAME vN". What a service serves now is in its
``spec.json`` (the controller rewrites it when a rollout succeeds); :func:`served_by` tells both.
A service deployed from ``runs:/RUN_ID/PATH`` serves the same bytes as a version registered from
that run and path, so :func:`served_by` lists it with the version too (see there for when).

Best effort: a catalog that cannot be reached (or does not answer within
:data:`RECORD_TIMEOUT_S`) costs a logged warning, never the deploy.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

log = logging.getLogger(__name__)

# how long a deploy waits for the catalog before it goes on without the edge (a PostgreSQL
# host that drops packets would otherwise hold it for the TCP connect timeout, minutes)
RECORD_TIMEOUT_S = 10.0
# a pinned registry model, as resolve_model writes it
_PINNED = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
# a run's model, as MLflow spells it: runs:/RUN_ID/PATH (the path inside the run's artifacts)
_RUN_MODEL = re.compile(r"^runs:/(?P<run>[^/]+)(?:/(?P<path>.*))?$")


def model_node(name: str, version: int | str) -> str:
    """``model:NAME@vN``, spelled as aistack.mlops.lineage spells the versions runs made."""
    from aistack.storage.refs import node

    return node("model", f"{name}@v{int(version)}")


def service_node(service: str) -> str:
    from aistack.storage.refs import lineage_node

    return lineage_node("service", service)


def pinned_version(model_uri: str) -> tuple[str, int] | None:
    """``models:/gpt/3`` → ``("gpt", 3)``; None for anything else (builtin, runs:/, a path)."""
    m = _PINNED.match(model_uri or "")
    return (m["name"], int(m["version"])) if m else None


def run_of(model_uri: str) -> str | None:
    """``runs:/abc/model`` → ``"abc"``; None for anything else (builtin, models:/, a path)."""
    m = _RUN_MODEL.match(model_uri or "")
    return m["run"] if m else None


def run_path(path: str | None) -> str:
    """A path inside a run's artifacts as one spelling: ``/model/`` and ``model//`` →
    ``model``; ``""`` for the run's root."""
    return "/".join(p for p in (path or "").split("/") if p)


def run_model(model_uri: str) -> tuple[str, str] | None:
    """``runs:/abc//model/`` → ``("abc", "model")`` (the path as :func:`run_path` spells it);
    None for anything that is not a run's model."""
    m = _RUN_MODEL.match(model_uri or "")
    return (m["run"], run_path(m["path"])) if m else None


def rollout_edges(service: str, model_uri: str, run_id: str | None = None) -> list[tuple[str, str]]:
    """The edges a rollout of ``service`` to ``model_uri`` records: ``run:ID → service`` for a
    run's model (``runs:/ID/PATH``), ``model:NAME@vN → service`` (and ``run_id``'s ``run:ID →
    model``) for a pinned registry version, none for anything else."""
    run = run_of(model_uri)
    if run is not None:
        return [(f"run:{run}", service_node(service))]
    pinned = pinned_version(model_uri)
    if pinned is None:
        return []
    mnode = model_node(*pinned)
    edges = [(mnode, service_node(service))]
    if run_id:
        edges.insert(0, (f"run:{run_id}", mnode))
    return edges


def _lineage_calls(model_uri: str) -> str:
    """Where a version's lineage is read, the CLI and the REST call both (the warning reaches
    the log of a REST deploy too): ``aistack models lineage gpt --version 3`` or ``GET
    /api/v1/models/gpt/versions/3/lineage``; NAME and N for a run's model (no version)."""
    name, version = pinned_version(model_uri) or ("NAME", "N")
    return (
        f"`aistack models lineage {name} --version {version}` "
        f"or GET /api/v1/models/{name}/versions/{version}/lineage"
    )


def record_rollout(
    service: str,
    model_uri: str,
    run_id: str | None = None,
    *,
    timeout_s: float = RECORD_TIMEOUT_S,
) -> int | None:
    """Record :func:`rollout_edges` in the catalog of this process's settings. Returns how many
    edges were new, or None when nothing was recorded (not a registry model, or the catalog
    failed or did not answer in ``timeout_s``: a warning says so). Never raises."""
    try:
        edges = rollout_edges(service, model_uri, run_id)
    except Exception as exc:  # noqa: BLE001 - a name the catalog refuses: say so, deploy on
        log.warning("lineage of service %s: %s not recorded: %s", service, model_uri, exc)
        return None
    if not edges:
        return None
    what = ", ".join(f"{s} → {d}" for s, d in edges)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            from aistack.storage import Datasets

            result["added"] = Datasets.from_settings().record_edges(edges)
        except Exception as exc:  # noqa: BLE001 - best effort: the service is deployed
            result["error"] = exc

    t = threading.Thread(target=work, name=f"aistack-lineage-{service}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        log.warning(
            "could not record lineage %s: the dataset catalog did not answer within %g s "
            "(the service is deployed; %s will not list it)",
            what,
            timeout_s,
            _lineage_calls(model_uri),
        )
        return None
    if "error" in result:
        err = result["error"]
        log.warning(
            "could not record lineage %s: the dataset catalog failed: %s (the service is "
            "deployed; %s will not list it)",
            what,
            getattr(err, "message", None) or err,
            _lineage_calls(model_uri),
        )
        return None
    return int(result["added"])


def served_by(
    name: str,
    version: int | str,
    *,
    run_id: str | None = None,
    model_path: str | None = None,
) -> list[dict[str, Any]]:
    """The services deployed with model ``name`` version ``version`` (from the lineage edges),
    each with what it serves now (its ``spec.json`` in this machine's $AISTACK_HOME/services):

    ``{"name", "node", "serving", "state", "model_uri"}``: ``serving`` is True while the service
    runs this version (its controller alive), ``state`` says it in words: ``serving``,
    ``controller down`` (deployed with this version, its controller not running), ``now serves
    URI`` (rolled to another model since), ``deleted`` (no such service here any more).

    ``run_id`` and ``model_path``: the version's source run and the path inside that run's
    artifacts the version was registered from (``runs:/RUN_ID/MODEL_PATH``, or the name of the
    run's logged model). With both, a service deployed straight from the run (edge ``run:RUN_ID
    → service:SVC``) is listed too, and ``runs:/RUN_ID/MODEL_PATH`` counts as serving the
    version (it is the same model), as ``models:/NAME/N`` does. Only the exact path matches
    (``/model/`` and ``model`` are one path): a parent (``runs:/RUN_ID``) holds more than the
    model and a child (``runs:/RUN_ID/model/data``) is part of it, and another path of the
    same run is another model (a checkpoint, a second flavor). The run's edge does not say
    which path was deployed, so such a service is listed only while its ``spec.json`` shows
    ``runs:/RUN_ID/MODEL_PATH``; once it is deleted or rolled to another model it drops out
    (a ``models:/`` deploy keeps its own edge and stays listed, as ``deleted`` or ``now serves
    URI``). ``model_path`` None (the version's files are not in its run): nothing is matched by
    run; ``""`` is the run's root (``runs:/RUN_ID``).

    Raises what the catalog raises when it cannot be read."""
    from aistack.storage import Datasets

    mnode = model_node(name, version)
    uris = {f"models:/{name}/{int(version)}"}
    path = run_path(model_path)
    rnode = f"run:{run_id}" if run_id and model_path is not None else None
    if rnode is not None:
        uris.add(f"runs:/{run_id}/{path}")
    nodes = {mnode} if rnode is None else {mnode, rnode}
    edges = Datasets.from_settings().catalog.edges_touching(nodes)

    def to_services(src: str | None) -> set[str]:
        return {d.partition(":")[2] for s, d in edges if s == src and d.startswith("service:")}

    by_model, by_run = to_services(mnode), to_services(rnode)
    out = []
    for svc in sorted(by_model | by_run):
        st = _service_state(svc, uris)
        if svc not in by_model and not _same_run_model(st["model_uri"], run_id, path):
            continue  # deployed from the run, but (now) not with this version's path
        out.append(st | {"node": f"service:{svc}"})
    return out


def _same_run_model(uri: str | None, run_id: str | None, path: str) -> bool:
    return run_model(uri or "") == (run_id, path)


def _service_state(svc: str, uris: set[str]) -> dict[str, Any]:
    """What ``svc`` serves now; ``serving`` when its spec names one of ``uris`` (the spellings
    of the version) and its controller runs."""
    from aistack.errors import NotFoundError
    from aistack.serving import manager

    out: dict[str, Any] = {"name": svc, "serving": False, "model_uri": None}
    try:
        d = manager.service_dir(svc)
        spec = json.loads((d / "spec.json").read_text())
    except (NotFoundError, OSError, ValueError):
        return out | {"state": "deleted"}
    current = spec.get("model_uri") if isinstance(spec, dict) else None
    out["model_uri"] = current
    if _spelled(current) not in {_spelled(u) for u in uris}:
        return out | {"state": f"now serves {current}"}
    if manager._controller(svc) is None:
        return out | {"state": "controller down"}
    return out | {"serving": True, "state": "serving"}


def _spelled(uri: str | None) -> Any:
    """One spelling of a model URI to compare: a run's model as ``(run, path)``."""
    return run_model(uri or "") or uri
