"""numpy and torch numbers in request bodies and query parameters of ``aistack.Client``.

Metrics computed with numpy or torch, GPU counts read from arrays: ``numpy.float32(0.5)``,
``numpy.int64(3)``, ``numpy.bool_(True)`` were refused before sending ("params: a float32 is
not JSON"), as httpx refused them ("Object of type int64 is not JSON serializable"). A numpy
scalar, a 0-d numpy array and a 0-d torch tensor are now sent as their Python value
(``.item()``); NaN and infinity are still refused naming the field, and an array with
dimensions is refused with what to call (``.tolist()``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from aistack.client import Client
from aistack.errors import ValidationError


def _client(home: Path, sent: list[httpx.Request]) -> Client:
    """A client whose requests are recorded in ``sent`` and answered with an empty object."""
    from aistack.settings import Settings

    def handler(req: httpx.Request) -> httpx.Response:
        sent.append(req)
        # (a list endpoint answers a list: the client checks the shape)
        listing = (req.method, req.url.path) == ("GET", "/api/v1/jobs")
        return httpx.Response(200, json=[] if listing else {})

    c = Client("http://aistack.test", "tok", settings=Settings(home=home))
    c._http.close()
    c._http = httpx.Client(base_url=c.url, transport=httpx.MockTransport(handler))
    return c


def _body(req: httpx.Request) -> Any:
    return json.loads(req.content)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float32(0.5), 0.5),
        (np.float16(0.25), 0.25),
        (np.float64(0.1), 0.1),
        (np.int64(3), 3),
        (np.int32(-2), -2),
        (np.uint8(255), 255),
        (np.uint64(2**63), 2**63),
        (np.bool_(True), True),
        (np.bool_(False), False),
        (np.array(1.5), 1.5),  # 0-d arrays: what np.sum(..., keepdims=False) of some gives
        (np.array(7, dtype=np.int16), 7),
        (np.array(True), True),
        (np.str_("H100"), "H100"),
    ],
)
def test_a_numpy_scalar_is_sent_as_its_python_value(
    tmp_path: Path, value: Any, expected: Any
) -> None:
    sent: list[httpx.Request] = []
    _client(tmp_path, sent).request("POST", "/plan/usage", json={"records": [{"v": value}]})
    got = _body(sent[0])["records"][0]["v"]
    assert got == expected and type(got) is type(expected)


def test_numpy_numbers_reach_every_body_the_client_builds(tmp_path: Path) -> None:
    """Each public method that takes a user's numbers, with numpy ones."""
    sent: list[httpx.Request] = []
    c = _client(tmp_path, sent)
    c.set_project("team", gpu_quota=np.int64(8), monthly_budget_usd=np.float32(1000.5))
    c.plan_train(params=np.float64(7e9), tokens=np.int64(10**12), mfu=np.float32(0.5))
    c.plan_serve(model={"params": np.int64(8 * 10**9)}, qps=np.float32(2.5))
    c.plan_tco(gpus=np.int32(8), hours=np.array(720.0))
    c.promote("m", np.int64(3), "production")
    c.deploy("m", min_replicas=np.int64(1), max_replicas=np.uint16(4), scale_to_zero=np.bool_(1))
    c.submit(
        {
            "name": "train",
            "command": "python train.py",
            "resources": {"gpus": np.int64(2), "nodes": np.int8(1)},
            "priority": np.int32(5),
            "preemptible": np.bool_(False),
            "env": {"WORLD_SIZE": np.int64(4), "LR": np.float32(0.5)},
        }
    )
    assert [_body(r) for r in sent] == [
        {"gpu_quota": 8, "monthly_budget_usd": 1000.5},
        {"params": 7e9, "tokens": 10**12, "mfu": 0.5},
        {"model": {"params": 8 * 10**9}, "qps": 2.5},
        {"gpus": 8, "hours": 720.0},
        {"version": 3, "to": "production", "require": []},
        {"model": "m", "min_replicas": 1, "max_replicas": 4, "scale_to_zero": True},
        {
            "name": "train",
            "command": "python train.py",
            "resources": {"gpus": 2},
            "priority": 5,
            "preemptible": False,
            "env": {"WORLD_SIZE": "4", "LR": "0.5"},
        },
    ]


def test_numpy_keys_and_tuples_and_the_callers_body_is_left_as_it_was(tmp_path: Path) -> None:
    sent: list[httpx.Request] = []
    body = {"counts": {np.int64(0): np.int64(5)}, "pair": (np.float32(0.5), 1)}
    _client(tmp_path, sent).request("POST", "/plan/hybrid", json=body)
    assert _body(sent[0]) == {"counts": {"0": 5}, "pair": [0.5, 1]}
    assert type(body["counts"][np.int64(0)]) is np.int64  # type: ignore[index]
    assert type(body["pair"][0]) is np.float32  # type: ignore[index]


@pytest.mark.parametrize(
    "value",
    [
        np.float32("nan"),
        np.float16("inf"),
        np.float64("-inf"),
        np.array(float("nan")),
        np.longdouble("nan"),
    ],
)
def test_a_numpy_nan_is_refused_naming_the_field(tmp_path: Path, value: Any) -> None:
    """As a Python NaN is: JSON has no NaN (httpx: "Out of range float values ...")."""
    c = _client(tmp_path, [])
    with pytest.raises(ValidationError) as exc:
        c.plan_train(params=7e9, tokens=value)
    shown = repr(float(value))
    assert exc.value.message == (
        f"tokens: {shown} is not a finite number (JSON has no NaN or infinity)"
    )
    assert exc.value.details.get("field") == "tokens"


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (np.array([1.0, 2.0]), "a numpy.ndarray of shape (2,)"),
        (np.zeros((2, 3), dtype=np.int64), "a numpy.ndarray of shape (2, 3)"),
        (np.array([5]), "a numpy.ndarray of shape (1,)"),
        (np.zeros((0,)), "a numpy.ndarray of shape (0,)"),
    ],
)
def test_an_array_is_refused_with_what_to_call(tmp_path: Path, value: Any, what: str) -> None:
    c = _client(tmp_path, [])
    with pytest.raises(ValidationError) as exc:
        c.request("POST", "/plan/usage", json={"records": [{"gpu_hours": value}]})
    assert exc.value.message == (
        f"records[0].gpu_hours: {what} is not one value: convert it with .tolist() (a JSON "
        "list), or pass one element"
    )
    assert exc.value.details.get("field") == "records[0].gpu_hours"
    assert ".tolist()" in (exc.value.hint or "")


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (np.complex64(1 + 2j), "a complex64 is not JSON"),
        (np.datetime64("2024-01-01"), "a datetime64 is not JSON"),
        (np.bytes_(b"x"), "a bytes_ is not JSON"),
    ],
)
def test_a_numpy_value_json_has_no_form_for_is_still_refused(
    tmp_path: Path, value: Any, why: str
) -> None:
    c = _client(tmp_path, [])
    with pytest.raises(ValidationError) as exc:
        c.plan_tco(gpus=8, hours=value)
    assert exc.value.message.startswith(f"hours: {why} ("), exc.value.message
    assert exc.value.details.get("field") == "hours"


# -- torch ------------------------------------------------------------------------------------------
def test_a_torch_scalar_is_sent_as_its_python_value(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    sent: list[httpx.Request] = []
    body = {
        "loss": torch.tensor(0.5),
        "half": torch.tensor(0.25, dtype=torch.bfloat16),
        "steps": torch.tensor(3),
        "done": torch.tensor(True),
        "grad": torch.tensor(2.0, requires_grad=True) * 1.5,
    }
    _client(tmp_path, sent).request("POST", "/plan/usage", json=body)
    got = _body(sent[0])
    assert got == {"loss": 0.5, "half": 0.25, "steps": 3, "done": True, "grad": 3.0}
    assert type(got["steps"]) is int and type(got["done"]) is bool


def test_a_torch_nan_or_tensor_is_refused_naming_the_field(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    c = _client(tmp_path, [])
    with pytest.raises(ValidationError) as exc:
        c.plan_train(params=7e9, tokens=torch.tensor(float("inf")))
    assert exc.value.message == ("tokens: inf is not a finite number (JSON has no NaN or infinity)")
    with pytest.raises(ValidationError) as exc:
        c.plan_train(params=torch.ones(2, 2), tokens=1e12)
    assert exc.value.message == (
        "params: a torch.Tensor of shape (2, 2) is not one value: convert it with .tolist() "
        "(a JSON list), or pass one element"
    )
    assert exc.value.details.get("field") == "params"


def test_the_client_imports_neither_numpy_nor_torch() -> None:
    """Both stay optional: a value of theirs exists only once its module is loaded, so the
    client looks them up in sys.modules and imports nothing."""
    code = (
        "import sys\n"
        "from aistack.client.client import _check_json\n"
        "assert _check_json({'a': [1, 2.5, True, None, 'x']}) == {'a': [1, 2.5, True, None, 'x']}\n"
        "bad = [m for m in ('numpy', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.plan_train(params=float("nan"), tokens=1e12),
        lambda c: c.cancel("abc", reason=b"oops"),
        lambda c: c.plan_serve(model={"params": [object()]}),
    ],
)
def test_python_values_json_cannot_carry_are_refused_as_before(
    tmp_path: Path, call: Callable[[Client], Any]
) -> None:
    with pytest.raises(ValidationError):
        call(_client(tmp_path, []))


# -- query parameters -------------------------------------------------------------------------------
def _query(req: httpx.Request) -> list[tuple[str, str]]:
    return list(req.url.params.multi_items())


def test_numpy_and_torch_query_parameters_are_sent_as_their_python_value(tmp_path: Path) -> None:
    """``list_jobs(all=numpy.bool_(False))`` went as ``all=False`` and a 0-d tensor limit as
    ``limit=tensor%285%29``: httpx writes what it does not know with str()."""
    torch = pytest.importorskip("torch")
    sent: list[httpx.Request] = []
    c = _client(tmp_path, sent)
    c.list_jobs(all=np.bool_(False), limit=np.int64(5), project=np.str_("team"))
    c.list_jobs(all=torch.tensor(True), limit=torch.tensor(7))
    c.logs("j1", offset=np.uint32(12), attempt=np.array(1))
    c.request("GET", "/usage", params={"ratio": np.float32(0.5), "state": [np.str_("RUNNING")]})
    c.request("GET", "/usage", params=[("n", np.int8(2)), ("ok", False), ("x", None)])
    assert [_query(r) for r in sent] == [
        [("all", "false"), ("limit", "5"), ("project", "team")],
        [("all", "true"), ("limit", "7")],
        [("offset", "12"), ("attempt", "1")],
        [("ratio", "0.5"), ("state", "RUNNING")],
        [("n", "2"), ("ok", "false"), ("x", "")],
    ]


@pytest.mark.parametrize(
    ("params", "field", "why"),
    [
        ({"limit": float("nan")}, "limit", "nan is not a finite number"),
        ({"limit": np.float64("nan")}, "limit", "nan is not a finite number"),
        ({"limit": np.float32("inf")}, "limit", "inf is not a finite number"),
        ({"state": ["RUNNING", np.float16("nan")]}, "state", "nan is not a finite number"),
        (
            {"limit": np.array([1, 2])},
            "limit",
            "a numpy.ndarray of shape (2,) is not one value: convert it with .tolist() (a JSON "
            "list), or pass one element",
        ),
        ({"since": b"1d"}, "since", "a bytes is not a query parameter value (b'1d')"),
    ],
)
def test_a_query_parameter_a_url_cannot_carry_is_refused_naming_it(
    tmp_path: Path, params: dict[str, Any], field: str, why: str
) -> None:
    """NaN went as ``limit=nan`` (the server's 422 names no fix), bytes as ``b%271d%27``."""
    sent: list[httpx.Request] = []
    with pytest.raises(ValidationError) as exc:
        _client(tmp_path, sent).request("GET", "/jobs", params=params)
    assert exc.value.message == f"{field}: {why}"
    assert exc.value.details.get("field") == field
    assert sent == []


def test_list_jobs_with_a_nan_limit_is_refused_before_sending(tmp_path: Path) -> None:
    sent: list[httpx.Request] = []
    with pytest.raises(ValidationError) as exc:
        _client(tmp_path, sent).list_jobs(limit=np.float64("nan"))
    assert exc.value.details.get("field") == "limit"
    assert sent == []


# -- set_project ------------------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["gpu_quota", "monthly_budget_usd", "share"])
@pytest.mark.parametrize(
    "value", [float("nan"), np.float64("nan"), np.float32("nan"), np.float64("inf")]
)
def test_set_project_with_a_number_that_is_not_finite_names_the_field(
    tmp_path: Path, field: str, value: Any
) -> None:
    """``set_project("team", share=numpy.float64("nan"))`` said "share: must be a finite number,
    got np.float64(nan)" without the field (and NaN as numpy's repr)."""
    sent: list[httpx.Request] = []
    with pytest.raises(ValidationError) as exc:
        _client(tmp_path, sent).set_project("team", **{field: value})
    assert exc.value.message == f"{field}: must be a finite number, got {float(value)!r}"
    assert exc.value.details.get("field") == field
    assert exc.value.hint and "None" in exc.value.hint
    assert sent == []
