"""A bad-input sweep of the REST API, driven by the app's own OpenAPI schema.

For every route under /api/v1 (grouped by router: one test per router), each path parameter,
query parameter and JSON body field gets a fixed set of hostile values (wrong JSON types,
huge and negative numbers, NaN / Infinity written into the body text, empty, 100 kB (60 kB in
a URL), NUL, lone-surrogate and non-ASCII strings, ``..`` and percent-escapes in paths), and
each body route gets non-object, malformed and deeply nested bodies. Every answer must be a JSON error below 500 in the
``{code, message, hint, details}`` shape, a 422 must name the field or parameter at fault, and
what was stored before the sweep (a job, a project's settings, a dataset) must still be there.

The values are a fixed list (no randomness): a failure names the case and reproduces as is.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from aistack.server.routers import ROUTERS

API = "/api/v1"
TOKEN = "@@fuzz-value@@"  # stands for the hostile value in a body until it is written as raw text
LONG = 100_000  # body text; a URL holds at most 64 kB (httpx), so path and query get 60 kB
LONG_URL = 60_000

# raw JSON text for a body field (what json.dumps cannot write: NaN, Infinity, 1e400, escapes)
BODY_VALUES: dict[str, str] = {
    "list": "[]",
    "list-of-text": '["x"]',
    "object": "{}",
    "object-of-text": '{"x": "y"}',
    "text": '"x"',
    "empty-text": '""',
    "blank-text": '"   "',
    "number-text": '"1"',
    "int": "1",
    "zero": "0",
    "negative": "-1",
    "float": "1.5",
    "negative-float": "-0.5",
    "true": "true",
    "false": "false",
    "null": "null",
    "huge-int": "1" + "0" * 30,
    "huge-negative-int": "-1" + "0" * 30,
    "1e400": "1e400",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "100kB-text": '"' + "a" * LONG + '"',
    "nul": '"a\\u0000b"',
    "lone-surrogate": '"\\ud800"',
    "unicode": '"\\u00fc\\u20ac\\ud83d\\ude00\\u202e"',
    "dot-dot": '"../../etc/passwd"',
    "nested": "[" * 100 + "]" * 100,
}

# whole bodies of a route that takes one
BODIES: dict[str, tuple[str, str]] = {
    "empty": ("", "application/json"),
    "list": ("[]", "application/json"),
    "number": ("1", "application/json"),
    "text": ('"x"', "application/json"),
    "null": ("null", "application/json"),
    "true": ("true", "application/json"),
    "NaN": ("NaN", "application/json"),
    "unclosed": ("{", "application/json"),
    "no-value": ('{"a":}', "application/json"),
    "trailing": ("{} {}", "application/json"),
    "not-utf8": ("\udcff\udcfe{}", "application/json"),  # sent as the bytes ff fe
    "deep": ("[" * 100_000 + "]" * 100_000, "application/json"),
    "deep-object": ('{"a":' * 20_000 + "1" + "}" * 20_000, "application/json"),
    "huge-number": ("1" * 5000, "application/json"),
    "text-plain": ("{}", "text/plain"),
    "form": ("a=1", "application/x-www-form-urlencoded"),
}

# query parameter values (sent percent-encoded by httpx)
QUERY_VALUES: dict[str, str] = {
    "empty": "",
    "blank": "   ",
    "text": "x",
    "zero": "0",
    "negative": "-1",
    "huge-int": "1" + "0" * 30,
    "huge-negative-int": "-1" + "0" * 30,
    "float": "1.5",
    "NaN": "NaN",
    "inf": "inf",
    "-inf": "-Infinity",
    "1e400": "1e400",
    "true": "true",
    "null": "null",
    "list": "[]",
    "object": "{}",
    "nul": "a\x00b",
    "unicode": "\u00fc\u20ac\U0001f600\u202e",
    "60kB": "a" * LONG_URL,
    "dot-dot": "../../etc/passwd",
    "percent": "%ff",
    "date-max-west": "9999-12-31T23:59:59-23:59",
    "date-min-east": "0001-01-01T00:00:00+23:59",
    "date-bad-day": "2025-02-30",
    "date-bad-hour": "2025-01-01T25:00:00",
    "date-year-0": "0000-01-01",
}
# query strings written as they go on the wire (what httpx would escape): invalid UTF-8 escapes
RAW_QUERY_VALUES: dict[str, str] = {
    "escaped-ff": "%ff%fe",
    "escaped-surrogate": "%ED%A0%80",
    "escaped-nul": "%00",
}

# path segments written into the URL as they are (so escapes reach the server as escapes)
PATH_VALUES: dict[str, str] = {
    "unknown": "does-not-exist",
    "dot-dot": "..",
    "dots": "...",
    "escaped-dot-dot": "%2e%2e",
    "escaped-traversal": "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "escaped-slash": "a%2Fb",
    "nul": "%00",
    "nul-inside": "a%00b",
    "escaped-ff": "%ff",
    "escaped-surrogate": "%ED%A0%80",
    "unicode": "%C3%BC%E2%82%AC%F0%9F%98%80%E2%80%AE",
    "space": "%20",
    "negative": "-1",
    "zero": "0",
    "huge-int": "1" + "0" * 30,
    "NaN": "NaN",
    "percent": "%25",
    "semicolon": "a;b",
    "60kB": "a" * LONG_URL,
}


# -- the app, with things stored before the sweep ----------------------------------------------
@dataclass
class Fuzz:
    http: Any
    app: Any
    ctx: Any
    kept_job: str
    fuzz_job: str
    seeds: dict[str, Any] = field(default_factory=dict)

    def path_base(self, path: str) -> dict[str, str]:
        """A valid value of each path parameter of ``path`` (an object that exists where one
        can: the sweep then reaches the code past the lookup)."""
        name = "keepds" if path.startswith(f"{API}/datasets/") else "fuzzthing"
        return {"job_id": self.fuzz_job, "name": name, "version": "1"}


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    """The app in process as the ``api`` fixture builds it (memory executor, no scheduling loop,
    no MLflow), once for the module, with a job, a project's settings and a dataset stored."""
    from fastapi.testclient import TestClient

    from aistack.server.app import create_app
    from aistack.server.routers import planning
    from aistack.settings import Settings, reset_settings_cache

    tmp = tmp_path_factory.mktemp("api-fuzz")
    home = tmp / "home"
    mp = pytest.MonkeyPatch()
    mp.setenv("AISTACK_HOME", str(home))
    # a deploy resolves its model in this registry (MLflow's SQLite store, which GET /models
    # creates below): an unknown model is then a 404, not a 503 for a server that is not up
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home.resolve() / 'mlflow.db'}")
    for var in ("AISTACK_URL", "AISTACK_TOKEN", "AISTACK_DATABASE_URL", "AISTACK_STORAGE_URL"):
        mp.delenv(var, raising=False)
    reset_settings_cache()
    settings = Settings(home=home, executor="memory", mlflow_enabled=False)
    app = create_app(settings, start_loop=False)
    ctx = app.state.ctx
    # the catalog read once: the route reads its YAML files at each request (20 ms), which
    # made the sweep of /plan take a minute
    catalog = planning._catalog(ctx)
    app.dependency_overrides[planning._catalog] = lambda: catalog
    http = TestClient(app, raise_server_exceptions=False)
    http.headers["Authorization"] = f"Bearer {ctx.token}"
    try:
        assert http.get(f"{API}/models").status_code == 200
        src = tmp / "data"
        src.mkdir()
        (src / "a.txt").write_text("kept\n")
        ctx.datasets().add("keepds", str(src))
        kept = http.post(
            f"{API}/jobs", json={"command": "echo kept", "name": "kept", "project": "keepers"}
        )
        assert kept.status_code == 201, kept.text
        other = http.post(f"{API}/jobs", json={"command": "echo fuzz", "project": "fuzzers"})
        assert other.status_code == 201, other.text
        r = http.put(
            f"{API}/projects/keepers",
            json={"gpu_quota": 3, "monthly_budget_usd": 100.0, "share": 2.0},
        )
        assert r.status_code == 200, r.text
        fz = Fuzz(http=http, app=app, ctx=ctx, kept_job=kept.json()["id"], fuzz_job="")
        fz.fuzz_job = other.json()["id"]
        fz.seeds = _stored(fz)
        yield fz
    finally:
        http.close()
        ctx.executor.close()
        ctx.engine.dispose()
        mp.undo()
        reset_settings_cache()


def _stored(fz: Fuzz) -> dict[str, Any]:
    """What was stored before the sweep, as the API shows it."""
    job = fz.http.get(f"{API}/jobs/{fz.kept_job}")
    project = fz.http.get(f"{API}/projects/keepers")
    ds = fz.http.get(f"{API}/datasets/keepds/versions/v1")
    for r in (job, project, ds):
        assert r.status_code == 200, r.text
    return {"job": job.json(), "project": project.json(), "dataset": ds.json()}


def _assert_kept(fz: Fuzz) -> None:
    now, then = _stored(fz), copy.deepcopy(fz.seeds)
    # jobs that read keepds@v1 (their `inputs`) add references to it: those may only grow
    refs, kept_refs = now["dataset"].pop("references"), then["dataset"].pop("references")
    assert [r for r in kept_refs if r not in refs] == []
    assert now == then
    r = fz.http.post(f"{API}/jobs", json={"command": "echo after", "project": "after"})
    assert r.status_code == 201, r.text
    listed = {j["id"] for j in fz.http.get(f"{API}/jobs", params={"limit": 10000}).json()}
    assert {fz.kept_job, r.json()["id"]} <= listed


# -- cases derived from the schema ----------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    label: str
    method: str
    url: str  # path and query string, escapes as sent
    body: str | None = None
    content_type: str = "application/json"
    params: tuple[tuple[str, str], ...] = ()
    at_fault: str | None = None  # the field or parameter a 422 must name


# Valid bodies the sweep changes one field of at a time: the OpenAPI schema gives the fields, not
# a value each route accepts (a catalog GPU name, a job's command). A job's body is a free-form
# object in the schema (the spec is checked by parse_spec): its fields are JobSpec's.
BASE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/jobs"): {
        "command": "echo fuzz",
        "name": "fuzz",
        "project": "fuzzers",
        "env": {"A": "1"},
        "resources": {"gpus": 1, "cpus": 1, "memory": "1GB"},
        "inputs": ["keepds@v1"],
        "max_runtime": "1h",
        "retries": 1,
    },
    ("POST", "/jobs/{job_id}/cancel"): {"reason": "fuzz"},
    ("PUT", "/projects/{name}"): {"gpu_quota": 2, "monthly_budget_usd": 10.0, "share": 1.0},
    ("POST", "/plan/train"): {"params": 7e9, "tokens": 1e11, "gpu": "H100", "gpus": 8},
    ("POST", "/plan/serve"): {"params": 7e9, "gpu": "H100", "concurrency": 4},
    ("POST", "/plan/tco"): {"gpus": 8, "gpu": "H100"},
    ("POST", "/plan/hybrid"): {"profile": [1, 2, 4], "gpu": "H100"},
    ("POST", "/plan/usage"): {
        "records": [
            {
                "job_id": "j1",
                "project": "p",
                "user": "u",
                "node": "n",
                "gpus": 1,
                "gpu_type": "H100",
                "cpus": 1,
                "start": "2025-01-01T00:00:00Z",
                "end": "2025-01-01T01:00:00Z",
            }
        ],
        "projects": [{"name": "p", "monthly_budget_usd": 100}],
        "sheet": "on-demand",
    },
    ("POST", "/models/{name}/promote"): {"version": 1, "to": "production", "require": ["loss<3"]},
    ("POST", "/services"): {"model": "builtin:no-such-model", "name": "fuzzsvc"},
    ("POST", "/services/{name}/update"): {"to": "production"},
    ("POST", "/services/{name}/scale"): {"min_replicas": 1, "max_replicas": 2},
}
OPAQUE_BODIES = {("POST", "/jobs"): "JobSpec"}
# required query parameters, sent with every case of the route but the ones that change them
BASE_QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/datasets/{name}/diff"): {"a": "1"},
    ("GET", "/usage/samples"): {"job_id": "{job_id}"},
}
# 422s the planners give for a combination of values that cannot be planned (a model that fits
# no node, a sequence longer than the batch): they say what does not fit, not one field
VERDICTS = ("one replica needs", "batch_tokens: a global batch of")


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The schema itself for a $ref; the non-null choice of ``X | None``."""
    while True:
        if "$ref" in schema:
            schema = defs[schema["$ref"].rsplit("/", 1)[-1]]
        elif "anyOf" in schema:
            choices = [s for s in schema["anyOf"] if s.get("type") != "null"]
            if len(choices) != 1:
                return schema
            schema = choices[0]
        else:
            return schema


def _body_schema(
    spec: dict[str, Any], method: str, path: str, op: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    if (method, path) in OPAQUE_BODIES:
        from aistack.spec import JobSpec

        js = JobSpec.model_json_schema()
        return js, js.get("$defs", {})
    defs = spec.get("components", {}).get("schemas", {})
    return _resolve(content["application/json"]["schema"], defs), defs


def _field_paths(
    schema: dict[str, Any], defs: dict[str, Any], base: Any, prefix: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """Every field the sweep changes: the schema's properties (nested objects too) and what the
    base body holds (the keys of a free-form mapping, the first item of a list)."""
    out: list[tuple[str, ...]] = []
    keys = list(schema.get("properties", {}))
    if isinstance(base, dict):
        keys += [k for k in base if k not in keys]
    for key in keys:
        here = (*prefix, key)
        out.append(here)
        sub = _resolve(schema.get("properties", {}).get(key, {}), defs)
        value = base.get(key) if isinstance(base, dict) else None
        if sub.get("properties") or isinstance(value, dict):
            out += _field_paths(sub, defs, value if isinstance(value, dict) else {}, here)
        elif isinstance(value, list) and value:
            item = _resolve(sub.get("items", {}), defs)
            first = (*here, "0")
            out.append(first)
            if isinstance(value[0], dict):
                out += _field_paths(item, defs, value[0], first)
    return out


def _with(base: dict[str, Any], where: tuple[str, ...], raw: str | None) -> str:
    """``base`` as JSON text with the field at ``where`` set to the raw JSON ``raw`` (None:
    removed)."""
    body = copy.deepcopy(base)
    node: Any = body
    for key in where[:-1]:
        if isinstance(node, list):
            node = node[int(key)]
        else:
            node = node.setdefault(key, {})
            if not isinstance(node, dict | list):  # fields are only looked for in containers
                raise AssertionError(f"cannot go into {key!r} of {where}")
    leaf = where[-1]
    if raw is None:
        if isinstance(node, list):
            del node[int(leaf)]
        else:
            node.pop(leaf, None)
        return json.dumps(body)
    if isinstance(node, list):
        node[int(leaf)] = TOKEN
    else:
        node[leaf] = TOKEN
    return json.dumps(body).replace(json.dumps(TOKEN), raw)


def _fill(path: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", value)
    return path


def _cases(
    fz: Fuzz, method: str, path: str, op: dict[str, Any], spec: dict[str, Any]
) -> list[Case]:
    rel = path.removeprefix(API)
    params = op.get("parameters", [])
    base_path = {p["name"]: fz.path_base(path)[p["name"]] for p in params if p["in"] == "path"}
    url = _fill(path, base_path)
    query = {
        k: _fill(v, fz.path_base(path)) for k, v in BASE_QUERIES.get((method, rel), {}).items()
    }
    found = _body_schema(spec, method, rel, op)
    base = BASE_BODIES.get((method, rel), {})
    body = json.dumps(base) if found is not None else None

    def case(label: str, url: str, params: dict[str, Any] | None = None, **kw: Any) -> Case:
        given = {**query, **(params or {})}
        pairs = tuple((k, x) for k, v in given.items() for x in (v if isinstance(v, list) else [v]))
        return Case(label, method, url, **{"body": body, "params": pairs, **kw})

    out: list[Case] = []
    for p in params:
        name = p["name"]
        if p["in"] == "path":
            for label, value in PATH_VALUES.items():
                bad = _fill(path, {**base_path, name: value})
                out.append(case(f"path {name}={label}", bad, at_fault=name))
        elif p["in"] == "query":
            for label, value in QUERY_VALUES.items():
                out.append(case(f"query {name}={label}", url, {name: value}, at_fault=name))
            for label, value in RAW_QUERY_VALUES.items():
                others = {k: v for k, v in query.items() if k != name}
                on_the_wire = Case(
                    f"query {name}={label}",
                    method,
                    f"{url}?{name}={value}",
                    body=body,
                    params=tuple(others.items()),
                    at_fault=name,
                )
                out.append(on_the_wire)
            out.append(case(f"query {name} twice", url, {name: ["1", "x"]}, at_fault=name))
    if found is not None:
        schema, defs = found
        for label, (text, ctype) in BODIES.items():
            out.append(case(f"body {label}", url, body=text, content_type=ctype))
        unknown = _with(base, ("no_such_key",), "1")
        out.append(case("body with an unknown key", url, body=unknown, at_fault="no_such_key"))
        for where in _field_paths(schema, defs, base):
            dotted = ".".join(where)
            for label, raw in BODY_VALUES.items():
                changed = _with(base, where, raw)
                out.append(case(f"body {dotted}={label}", url, body=changed, at_fault=dotted))
            removed = _with(base, where, None)
            out.append(case(f"body without {dotted}", url, body=removed, at_fault=dotted))
    return out


def _names(message: str, at_fault: str) -> bool:
    """Whether an error message names ``at_fault``: ``a.0.b`` may be written ``a[0].b``, or
    as its parent and its key (``records[0]: missing field(s) job_id``)."""

    def written(parts: list[str]) -> set[str]:
        if not parts:
            return {""}
        bracketed = parts[0] + "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in parts[1:])
        return {".".join(parts), bracketed}

    parts = at_fault.split(".")
    if any(w in message for w in written(parts)):
        return True
    parent, leaf = parts[:-1], parts[-1]
    return (
        bool(parent)
        and not leaf.isdigit()
        and leaf in message
        and any(w in message for w in written(parent))
    )


def _problem(case: Case, r: Any) -> str | None:
    """What is wrong with the answer to ``case``, or None."""
    if r.status_code >= 500:
        return f"{r.status_code}: {r.text[:300]}"
    try:
        body = r.json()
    except ValueError:
        return f"{r.status_code} is not JSON: {r.text[:200]!r}"
    if r.status_code < 400:
        return None
    if not isinstance(body, dict) or set(body) != {"code", "message", "hint", "details"}:
        return f"{r.status_code}: not the error shape: {str(body)[:300]}"
    if not isinstance(body["message"], str) or not body["message"].strip():
        return f"{r.status_code}: no message: {body}"
    if r.status_code == 422 and case.at_fault is not None:
        if body["message"].startswith(VERDICTS):
            return None
        said = body["message"] + " " + str(body["details"].get("field", ""))
        if not _names(said, case.at_fault):
            return f"422 does not name {case.at_fault!r}: {body['message'][:300]}"
    return None


def _send(fz: Fuzz, case: Case) -> Any:
    kwargs: dict[str, Any] = {}
    if case.params:
        kwargs["params"] = list(case.params)
    if case.body is not None:
        kwargs["content"] = case.body.encode("utf-8", "surrogateescape")
        kwargs["headers"] = {"content-type": case.content_type}
    return fz.http.request(case.method, case.url, **kwargs)


def _operations(spec: dict[str, Any], tag: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if tag in op.get("tags", []) and path.startswith(API)
    ]


# -- the sweep -------------------------------------------------------------------------------------
def test_every_api_route_belongs_to_a_swept_router(fuzz: Fuzz) -> None:
    spec = fuzz.app.openapi()
    untagged = [
        f"{m.upper()} {p}"
        for p, ops in spec["paths"].items()
        for m, op in ops.items()
        if p.startswith(API) and not set(op.get("tags", [])) & set(ROUTERS)
    ]
    assert not untagged
    assert sum(len(_operations(spec, t)) for t in ROUTERS) >= 35


# what each base body gets unchanged: the sweep's changes then reach the route's own checks
# (no model, service or built-in model of these names exists: a 404 after validation)
BASE_STATUS = {
    ("POST", "/jobs"): 201,
    ("POST", "/jobs/{job_id}/cancel"): 200,
    ("PUT", "/projects/{name}"): 200,
    ("POST", "/plan/train"): 200,
    ("POST", "/plan/serve"): 200,
    ("POST", "/plan/tco"): 200,
    ("POST", "/plan/hybrid"): 200,
    ("POST", "/plan/usage"): 200,
    ("POST", "/models/{name}/promote"): 404,
    ("POST", "/services"): 404,
    ("POST", "/services/{name}/update"): 404,
    ("POST", "/services/{name}/scale"): 404,
}


def test_each_base_body_reaches_the_route(fuzz: Fuzz) -> None:
    spec = fuzz.app.openapi()
    with_body = {
        (m, p.removeprefix(API))
        for t in ROUTERS
        for m, p, op in _operations(spec, t)
        if _body_schema(spec, m, p.removeprefix(API), op) is not None
    }
    assert with_body == set(BASE_BODIES) == set(BASE_STATUS)
    for (method, rel), body in BASE_BODIES.items():
        url = _fill(API + rel, fuzz.path_base(API + rel))
        r = fuzz.http.request(method, url, json=body)
        assert r.status_code == BASE_STATUS[(method, rel)], (method, rel, r.text)


@pytest.mark.parametrize("tag", ROUTERS)
def test_bad_input_is_a_4xx_that_names_the_field(fuzz: Fuzz, tag: str) -> None:
    spec = fuzz.app.openapi()
    failures: list[str] = []
    sent = 0
    operations = _operations(spec, tag)
    for method, path, op in operations:
        for case in _cases(fuzz, method, path, op, spec):
            r = _send(fuzz, case)
            sent += 1
            problem = _problem(case, r)
            if problem is not None:
                failures.append(f"{method} {path} [{case.label}] -> {problem}")
    assert not failures, f"{len(failures)} of {sent} cases:\n" + "\n".join(failures[:60])
    # a router whose routes take no parameter and no body (cluster) has nothing to send
    assert sent or not any(op.get("parameters") or op.get("requestBody") for *_, op in operations)
    _assert_kept(fuzz)


def test_the_server_still_works_and_kept_what_it_stored(fuzz: Fuzz) -> None:
    _assert_kept(fuzz)
    assert fuzz.http.get("/healthz").json()["status"] == "ok"


# -- what the sweep found (each failed before its fix) ------------------------------------------------
def _job(api, **spec: Any) -> str:  # type: ignore[no-untyped-def]
    r = api.http.post(f"{API}/jobs", json={"command": "x", **spec})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/jobs/{long}", None),
        ("POST", "/jobs/{long}/cancel", None),
        ("GET", "/jobs/{long}/logs", None),
        ("GET", "/jobs/{long}/events", None),
        ("GET", "/jobs", {"before": "{long}"}),
    ],
)
def test_a_job_id_longer_than_any_is_404_not_500(api, method: str, path: str, params) -> None:  # type: ignore[no-untyped-def]
    """Over 50,000 characters the id-prefix lookup's LIKE pattern was an SQLite error ("LIKE or
    GLOB pattern too complex"): a 500 once any job was stored."""
    kept = _job(api)
    long = "a" * 60_000
    given = {k: v.replace("{long}", long) for k, v in (params or {}).items()}
    r = api.http.request(method, API + path.replace("{long}", long), params=given)
    assert r.status_code == 404, r.text
    err = r.json()
    name = "before" if params else "job_id"
    assert err["message"].startswith(f"{name}: no job has an id of 60000 characters"), err
    assert len(err["message"]) < 200 and "at most 32 characters" in err["hint"]
    assert err["details"]["field"] == name
    assert api.http.get(f"{API}/jobs/{kept}").json()["state"] == "QUEUED"


def test_an_ambiguous_before_names_before(api, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``GET /jobs?before=abc`` blamed ``job_id``, a parameter the request does not have."""
    import itertools
    import types

    from aistack.server.services import jobs as svc

    ids = (types.SimpleNamespace(hex=f"abc{n:09x}" + "0" * 20) for n in itertools.count(1))
    monkeypatch.setattr(svc, "uuid", types.SimpleNamespace(uuid4=lambda: next(ids)))
    _job(api), _job(api)
    r = api.http.get(f"{API}/jobs", params={"before": "abc"})
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["message"].startswith("before: the prefix 'abc' is ambiguous"), err
    assert err["details"]["field"] == "before"


@pytest.fixture
def dataset_api(api, tmp_path: Path):  # type: ignore[no-untyped-def]
    src = tmp_path / "data"
    src.mkdir()
    (src / "a.txt").write_text("a\n")
    api.ctx.datasets().add("corpus", str(src))
    return api


@pytest.mark.parametrize(
    ("ref", "status", "message"),
    [
        ("", 422, "inputs.1: dataset reference is empty"),
        ("../../etc/passwd", 422, "inputs.1: invalid dataset name '../../etc/passwd'"),
        ("corpus@v0", 422, "inputs.1: version 'v0' in 'corpus@v0' is invalid"),
        ("corpus@v9", 404, "inputs.1: "),
        ("nosuch", 404, "inputs.1: "),
    ],
)
def test_a_bad_job_input_names_which_input(
    dataset_api: Any, ref: str, status: int, message: str
) -> None:
    """The storage layer's message named the reference ("dataset reference is empty"), not the
    field of the job spec that held it."""
    api = dataset_api
    before = api.http.get(f"{API}/jobs").json()
    r = api.http.post(f"{API}/jobs", json={"command": "x", "inputs": ["corpus@v1", ref]})
    assert r.status_code == status, r.text
    err = r.json()
    assert err["message"].startswith(message), err
    assert err["details"]["field"] == "inputs.1" and err["hint"]
    assert api.http.get(f"{API}/jobs").json() == before


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/datasets/corpus/versions/-1", None, "version"),
        ("/datasets/corpus/versions/v0/lineage", None, "version"),
        ("/datasets/corpus/diff", {"a": "%", "b": "latest"}, "a"),
        ("/datasets/corpus/diff", {"a": "1", "b": ""}, "b"),
        ("/datasets/a;b", None, "name"),
        ("/datasets/a;b/versions/1", None, "name"),
    ],
)
def test_a_bad_dataset_version_or_name_names_the_parameter(  # type: ignore[no-untyped-def]
    dataset_api, path: str, params, name: str
) -> None:
    """The message named the joined reference ("invalid dataset reference 'corpus@-1'"), not
    the path or query parameter that was wrong."""
    r = dataset_api.http.get(API + path, params=params)
    assert r.status_code == 422, r.text
    err = r.json()
    assert err["message"].startswith(f"{name}: "), err
    assert err["details"]["field"] == name and err["hint"]


@pytest.mark.parametrize("path", ["/jobs", "/plan/tco"])
def test_a_body_nested_too_deeply_says_so(api, path: str) -> None:  # type: ignore[no-untyped-def]
    """The JSON decoder's RecursionError got the hint about 4,300-digit numbers."""
    body = "[" * 100_000 + "]" * 100_000
    r = api.http.post(API + path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["message"] == "the body could not be read as JSON"
    assert "nested too deeply" in err["hint"] and "digits" not in err["hint"]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/plan/tco", {"content-type": "text/plain"}),
        ("/projects/p", {"content-type": "text/plain"}),
        ("/services/s/scale", {}),
    ],
)
def test_a_json_body_sent_as_another_type_says_which_type_to_send(api, path: str, headers) -> None:  # type: ignore[no-untyped-def]
    """A route with a schema body (not a free-form one, as /jobs) pointed to the API docs, not
    at the Content-Type that made the body unreadable."""
    method = "PUT" if path.startswith("/projects") else "POST"
    r = api.http.request(method, API + path, content=b'{"gpus": 8}', headers=headers)
    assert r.status_code == 422, r.text
    hint = r.json()["hint"]
    assert hint.startswith("send a JSON object with 'Content-Type: application/json'"), hint
    assert (headers.get("content-type") or "no Content-Type") in hint
