"""Bad request bodies of ``/v1/completions`` and ``/v1/chat/completions`` answered as OpenAI's
API answers them: 400 ``invalid_request_error`` whose message names the parameter, says what
was sent and what is expected, whose ``param`` is the parameter and whose ``code`` is null
(:class:`~aistack.serving.http.HTTPProblem`)::

    temperature: must be a number from 0 to 2, got a string ('many')
    messages: missing required parameter; expected an array of messages ...
    stop.1: must be a string, got a number (5)

Pydantic's own wording ("Input should be a valid number, unable to parse string as a
number", "Field required", "Input should be less than or equal to 2") said neither what was
sent nor, for a range, the other bound. A body that is not JSON gets OpenAI's "We could not
parse the JSON body of your request" message (with the parser's reason)."""

from __future__ import annotations

import json
import types
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError
from pydantic.fields import FieldInfo
from starlette.requests import Request

from aistack.errors import short_repr
from aistack.serving.http import MAX_LISTED_PROBLEMS, HTTPProblem, read_body
from aistack.serving.spec import _bounds, _kind, _num, _takes

# what a field takes where its type alone says too little
_EXPECTED = {
    "messages": "an array of messages (objects like {'role': 'user', 'content': 'Hi'})",
}
# the errors this package raises itself (their text already says what was sent and expected)
_OWN = {"bool_not_number", "finite_number", "number_type", "n_unsupported", "not_a_boolean"}
_CLIP = 60  # characters of an array or object shown in a message

NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. This endpoint expects a JSON payload, but what was "
    "sent was not valid JSON: {why}. Send a JSON object with content-type application/json.)"
)


async def read_request_json(request: Request, limit: int) -> dict[str, Any]:
    """The JSON object in the body of an OpenAI endpoint's request, or HTTPProblem(400) in
    OpenAI's words (413 past ``limit`` bytes, as :func:`~aistack.serving.http.read_body`)."""
    body = await read_body(request, limit)
    if not body.strip():
        raise HTTPProblem(400, NOT_JSON.format(why="the body is empty"))
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise HTTPProblem(400, NOT_JSON.format(why=f"it is not UTF-8 ({exc.reason})")) from None
    except json.JSONDecodeError as exc:
        raise HTTPProblem(400, NOT_JSON.format(why=str(exc))) from None
    if not isinstance(data, dict):
        raise HTTPProblem(
            400, f"request body: must be a JSON object of parameters, got {sent(data)}"
        )
    return data


def request_problem(
    exc: PydanticValidationError, model: type[BaseModel], data: dict[str, Any]
) -> HTTPProblem:
    """A 400 for the validation errors of ``data`` (the body) against ``model``: one message
    per bad parameter (the first ``MAX_LISTED_PROBLEMS`` of them, "; "-separated, the rest
    counted); ``param`` names the first."""
    problems: list[tuple[str, str]] = []
    seen: set[str] = set()
    for err in exc.errors():
        loc = err.get("loc", ())
        if not loc:
            problems.append(("", str(err.get("msg", "invalid request"))))
            continue
        name = str(loc[0])
        if name in seen:  # a union (str | list[str]) reports each of its members
            continue
        seen.add(name)
        problems.append(_problem(err, model.model_fields.get(name), name, data))
    if not problems:
        problems.append(("", str(exc)))
    parts = [f"{p}: {m}" if p else m for p, m in problems[:MAX_LISTED_PROBLEMS]]
    rest = len(problems) - MAX_LISTED_PROBLEMS
    more = f" (and {rest} more problem{'s' if rest != 1 else ''})" if rest > 0 else ""
    return HTTPProblem(400, "; ".join(parts) + more, param=problems[0][0] or None)


def _problem(err: Any, f: FieldInfo | None, name: str, data: dict[str, Any]) -> tuple[str, str]:
    """``(param, message)`` for one bad parameter ``name``."""
    kind = err.get("type")
    if kind == "extra_forbidden" or f is None:
        return name, "unknown field (remove it)"
    if kind in _OWN:
        return name, str(err.get("msg"))
    expected = expected_of(f, name)
    if kind == "missing":
        return name, f"missing required parameter; expected {expected}"
    value = data.get(name)
    if _is_number(value) and expected.startswith(("a number", "a whole number")):
        return name, f"must be {expected}, got {_num(value)}"  # out of range, or 3.5
    item = _bad_item(f, value)
    if item is not None:
        key, want, got = item
        return f"{name}.{key}", f"must be {want}, got {sent(got)}"
    return name, f"must be {expected}, got {sent(value)}"


def expected_of(f: FieldInfo, name: str) -> str:
    """What field ``f`` (named ``name``) takes, in words: 'a number from 0 to 2', 'a string or
    an array of strings', 'a boolean (true or false)'."""
    if name in _EXPECTED:
        return _EXPECTED[name]
    members = _members(f.annotation)
    if (float in members or int in members) and bool not in members:
        whole = float not in members
        hi, lo, _ = _bounds(f)
        huge = any(b is not None and abs(b) >= 2**53 for b in (hi, lo))  # a seed's 64 bits
        return _kind(whole) + ("" if huge else _takes(f, name))
    words = [_describe(m) for m in members]
    if len(words) <= 2:
        return " or ".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def _members(annotation: Any) -> list[Any]:
    """The types of a union (``str | list[str] | None`` → ``[str, list[str]]``; null left
    out: it is always "no value")."""
    if get_origin(annotation) in (Union, types.UnionType):
        return [a for a in get_args(annotation) if a is not type(None)]
    return [annotation]


def _describe(t: Any) -> str:
    origin = get_origin(t)
    args = get_args(t)
    if origin is list:
        return "an array" + (f" of {_plural(args[0])}" if args and _plural(args[0]) else "")
    if origin is dict:
        return "an object" + (
            f" of {_plural(args[1])}" if len(args) == 2 and _plural(args[1]) else ""
        )
    return {
        str: "a string",
        bool: "a boolean (true or false)",
        int: "a whole number",
        float: "a number",
        dict: "an object",
        list: "an array",
    }.get(t, "a valid value")


def _plural(t: Any) -> str:
    return {str: "strings", float: "numbers", int: "whole numbers", bool: "booleans"}.get(t, "")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _fits(t: Any, v: Any) -> bool:
    if t is str:
        return isinstance(v, str)
    if t is float:
        return _is_number(v)
    if t is int:
        return _is_number(v) and float(v).is_integer()
    return True


def _bad_item(f: FieldInfo, value: Any) -> tuple[str, str, Any] | None:
    """``(key, expected, item)`` of the first item of an array (or value of an object) that is
    of the wrong type, where ``f`` takes an array (object) of one type: ``stop: ["a", 5]`` is
    about ``stop.1``."""
    for m in _members(f.annotation):
        origin, args = get_origin(m), get_args(m)
        if origin is list and isinstance(value, list) and args:
            for i, item in enumerate(value):
                if not _fits(args[0], item):
                    return str(i), _describe(args[0]), item
        if origin is dict and isinstance(value, dict) and len(args) == 2:
            for key, item in value.items():
                if not _fits(args[1], item):
                    return str(key), _describe(args[1]), item
    return None


def sent(v: Any) -> str:
    """A JSON value as a message says it was sent: 'a string ('many')', 'a number (5)',
    'an array ([1, 2])', 'null'."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if _is_number(v):
        return f"a number ({_num(v)})"
    if isinstance(v, str):
        return f"a string ({short_repr(v)})"
    text = json.dumps(v, ensure_ascii=False)
    if len(text) > _CLIP:
        text = f"{text[: _CLIP - 1]}… ({len(text):,} characters)"
    return f"{'an array' if isinstance(v, list) else 'an object'} ({text})"
