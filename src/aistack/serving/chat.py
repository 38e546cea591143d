"""Chat completions on text models: the request (``ChatCompletionRequest``) and messages → one
prompt, for ``POST /v1/chat/completions``.

A model that knows its own chat format says so: a generator with an
``apply_chat_template(messages) -> str`` method (the name Hugging Face tokenizers use) gets the
messages as ``[{"role": ..., "content": ...}]`` (content as text) and returns the prompt, ending
where the assistant's answer begins. Every other model gets the default template, a
plain transcript a base model can continue::

    System: You are terse.
    User: Hello
    Assistant: Hi.
    User: Name a prime.
    Assistant:

one line per message (``system`` and ``developer`` are both ``System``), then ``Assistant:``;
the answer is the model's continuation as it comes (a base model usually begins it with a
space). With this template the completion also stops at ``"\\nUser:"`` (the model starting the
user's next turn), as if it were one of the request's ``stop`` sequences.

Only what a text model can do is accepted: ``system``, ``developer``, ``user`` and
``assistant`` messages whose content is a string or a list of ``{"type": "text"}`` parts.
Anything else is a 400 that names the field (``messages.1.content.0.type``), as the rest of the
request's fields are.

Tool calls in the conversation's history are text too: an assistant message's ``tool_calls``
(or the older ``function_call``) and the ``tool`` (or ``function``) messages that answer them
are accepted, as OpenAI's API takes them (a tool message answers a call of an earlier
assistant message, by ``tool_call_id``), and become lines of the transcript::

    User: Weather in Paris?
    Assistant: [calls get_weather({"city": "Paris"})]
    Tool (get_weather): 22 C
    Assistant:

(a model's own ``apply_chat_template`` gets them in OpenAI's shape: ``tool_calls`` on the
assistant message, ``tool_call_id`` and ``name`` on the tool message). The model itself never
calls a tool: ``tools`` and ``functions`` are refused unless ``tool_choice`` (or
``function_call``) is ``"none"``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from aistack.errors import short_repr
from aistack.serving.http import HTTPProblem
from aistack.serving.openai_errors import sent
from aistack.serving.spec import _bounds, _kind, _takes

ROLES = {
    "system": "System",
    "developer": "System",
    "user": "User",
    "assistant": "Assistant",
    "tool": "Tool",
    "function": "Tool",
}
DEFAULT_STOPS = ("\nUser:",)
# message fields OpenAI defines that a text-only server cannot honour (a 400 naming them)
_UNSUPPORTED_MESSAGE_FIELDS = {
    "audio": "audio is not supported by this server (text only)",
}
_MESSAGE_FIELDS = {
    "role",
    "content",
    "name",
    "refusal",
    "tool_calls",
    "function_call",
    "tool_call_id",
}
# the fields each role may set beyond role and content (OpenAI's message types)
_ROLE_FIELDS = {
    "system": {"name"},
    "developer": {"name"},
    "user": {"name"},
    "assistant": {"name", "refusal", "tool_calls", "function_call"},
    "tool": {"tool_call_id", "name"},
    "function": {"name"},
}


def parse_messages(raw: list[Any]) -> list[dict[str, Any]]:
    """Validate OpenAI chat ``messages``; ``[{"role", "content"}]`` with text content, plus
    ``tool_calls`` (OpenAI's shape) on an assistant message that made calls and
    ``tool_call_id`` and ``name`` on a ``tool`` or ``function`` message (see the module
    docstring). Raises HTTPProblem(400) naming the first bad field."""
    if not raw:
        raise HTTPProblem(400, "messages: give at least one message", param="messages")
    out: list[dict[str, Any]] = []
    calls: dict[str, str] = {}  # tool_call_id → function name, of the calls made so far
    unanswered: dict[str, int] = {}  # tool_call_id → the message that made the call
    for i, m in enumerate(raw):
        where = f"messages.{i}"
        if not isinstance(m, dict):
            raise HTTPProblem(
                400,
                f"{where}: expected an object with 'role' and 'content', got {sent(m)}",
                param=where,
            )
        for key in m:
            if key in _UNSUPPORTED_MESSAGE_FIELDS and m[key] is not None:
                raise HTTPProblem(
                    400,
                    f"{where}.{key}: {_UNSUPPORTED_MESSAGE_FIELDS[key]}",
                    param=f"{where}.{key}",
                )
            if key not in _MESSAGE_FIELDS and key not in _UNSUPPORTED_MESSAGE_FIELDS:
                raise HTTPProblem(
                    400, f"{where}.{key}: unknown field; remove it", param=f"{where}.{key}"
                )
        role = m.get("role")
        if role is None:
            raise HTTPProblem(400, f"{where}.role: field required", param=f"{where}.role")
        if not isinstance(role, str):  # a list was a 500 (unhashable), 5 "5: unknown role"
            raise HTTPProblem(
                400,
                f"{where}.role: expected one of {', '.join(ROLES)}, got {sent(role)}",
                param=f"{where}.role",
            )
        if role not in ROLES:
            raise HTTPProblem(
                400,
                f"{where}.role: {role!r}: unknown role; use one of " + ", ".join(ROLES),
                param=f"{where}.role",
            )
        for key in m:
            if key not in _ROLE_FIELDS[role] | {"role", "content"} and m[key] is not None:
                raise HTTPProblem(
                    400,
                    f"{where}.{key}: not a field of a {role!r} message; remove it",
                    param=f"{where}.{key}",
                )
        if unanswered and role != "tool":
            # OpenAI's rule: every call is answered before the conversation goes on
            first = min(unanswered, key=lambda c: unanswered[c])
            raise HTTPProblem(
                400,
                f"messages.{unanswered[first]}.tool_calls: tool call {first!r} has no 'tool' "
                f"message answering it (with tool_call_id {first!r}) before {where}",
                param=f"messages.{unanswered[first]}.tool_calls",
            )
        msg: dict[str, Any] = {"role": role, "content": _content(m.get("content"), role, where)}
        if role == "assistant":
            made = _tool_calls(m.get("tool_calls"), f"{where}.tool_calls")
            for call in made:
                calls[call["id"]] = call["function"]["name"]
                unanswered[call["id"]] = i
            if m.get("function_call") is not None:  # the older API's one call, without an id
                fn = _function(m["function_call"], f"{where}.function_call")
                made.append({"type": "function", "function": fn})
            if made:
                msg["tool_calls"] = made
        elif role == "tool":
            call_id = _required_str(m, "tool_call_id", where, "the id of the tool call")
            if call_id not in calls:
                # OpenAI's answer (and param) for a tool result with no call before it
                known = ", ".join(map(repr, calls)) or "none"
                raise HTTPProblem(
                    400,
                    f"{where}.role: a 'tool' message answers a tool call of an earlier "
                    f"assistant message, and no call has id {call_id!r} (calls made: {known}); "
                    "this server does no tool calling itself, it takes tool results as history",
                    param=f"{where}.role",
                )
            unanswered.pop(call_id, None)
            msg.update(tool_call_id=call_id, name=calls[call_id])
        elif role == "function":
            msg["name"] = _required_str(m, "name", where, "the name of the function")
        out.append(msg)
    if unanswered:
        first = min(unanswered, key=lambda c: unanswered[c])
        raise HTTPProblem(
            400,
            f"messages.{unanswered[first]}.tool_calls: tool call {first!r} has no 'tool' "
            f"message answering it (with tool_call_id {first!r}); this server does no tool "
            "calling itself: send the tool's result, or leave the call out",
            param=f"messages.{unanswered[first]}.tool_calls",
        )
    return out


def _required_str(m: dict[str, Any], key: str, where: str, what: str) -> str:
    """``m[key]``, a non-empty string: a 'tool' or 'function' message names what it answers."""
    value = m.get(key)
    if not isinstance(value, str) or not value:
        raise HTTPProblem(
            400,
            f"{where}.{key}: a {m.get('role')!r} message needs {what} it answers "
            f"(a string){_got(m, key)}",
            param=f"{where}.{key}",
        )
    return value


def _got(m: dict[str, Any], key: str) -> str:
    """``", got 5"`` for what ``m[key]`` is, ``""`` when it is missing."""
    return f", got {sent(m[key])}" if key in m else ""


def _tool_calls(raw: Any, where: str) -> list[dict[str, Any]]:
    """An assistant message's ``tool_calls`` (at ``where``) in OpenAI's shape, checked:
    ``[{"id", "type": "function", "function": {"name", "arguments"}}]``."""
    out: list[dict[str, Any]] = []
    if raw is not None and not isinstance(raw, list):
        raise HTTPProblem(
            400, f"{where}: expected an array of tool calls, got {sent(raw)}", param=where
        )
    for j, call in enumerate(raw or []):
        at = f"{where}.{j}"
        like = "{'id': ..., 'type': 'function', 'function': {'name': ..., 'arguments': ...}}"
        if not isinstance(call, dict):
            raise HTTPProblem(400, f"{at}: expected a call like {like}, got {sent(call)}", param=at)
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise HTTPProblem(
                400,
                f"{at}.id: expected the call's id (a string), got {sent(call_id)}",
                param=f"{at}.id",
            )
        if call.get("type", "function") != "function":
            raise HTTPProblem(
                400,
                f"{at}.type: only 'function' tool calls exist, not {sent(call.get('type'))}",
                param=f"{at}.type",
            )
        extra = sorted(set(call) - {"id", "type", "function"})
        if extra:
            raise HTTPProblem(
                400, f"{at}.{extra[0]}: unknown field; remove it", param=f"{at}.{extra[0]}"
            )
        if "function" not in call:
            raise HTTPProblem(
                400, f"{at}.function: missing; a call is like {like}", param=f"{at}.function"
            )
        fn = _function(call["function"], f"{at}.function")
        out.append({"id": call_id, "type": "function", "function": fn})
    return out


def _function(fn: Any, at: str) -> dict[str, str]:
    if not isinstance(fn, dict):
        raise HTTPProblem(
            400,
            f"{at}: expected {{'name': ..., 'arguments': ...}} (strings), got {sent(fn)}",
            param=at,
        )
    extra = sorted(set(fn) - {"name", "arguments"})
    if extra:
        raise HTTPProblem(
            400, f"{at}.{extra[0]}: unknown field; remove it", param=f"{at}.{extra[0]}"
        )
    for key in ("name", "arguments"):
        if not isinstance(fn.get(key), str) or (key == "name" and not fn[key]):
            what = "the function's name" if key == "name" else "its arguments as JSON text"
            raise HTTPProblem(
                400,
                f"{at}.{key}: expected {what} (a string), got {sent(fn.get(key))}",
                param=f"{at}.{key}",
            )
    return {"name": fn["name"], "arguments": fn["arguments"]}


def _content(content: Any, role: str, where: str) -> str:
    if content is None:
        if role == "assistant":  # an assistant turn that only refused, say
            return ""
        raise HTTPProblem(400, f"{where}.content: field required", param=f"{where}.content")
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise HTTPProblem(
            400,
            f"{where}.content: expected a string or an array of text parts, got {sent(content)}",
            param=f"{where}.content",
        )
    texts = []
    for j, part in enumerate(content):
        at = f"{where}.content.{j}"
        if not isinstance(part, dict):
            raise HTTPProblem(
                400,
                f"{at}: expected a part like {{'type': 'text', 'text': ...}}, got {sent(part)}",
                param=at,
            )
        kind = part.get("type")
        if kind != "text":
            got = f"not {kind!r}" if isinstance(kind, str) else f"got {sent(kind)}"
            raise HTTPProblem(
                400,
                f"{at}.type: only 'text' parts are supported by this server, {got}",
                param=f"{at}.type",
            )
        extra = sorted(set(part) - {"type", "text"})
        if extra:
            raise HTTPProblem(
                400, f"{at}.{extra[0]}: unknown field; remove it", param=f"{at}.{extra[0]}"
            )
        text = part.get("text")
        if not isinstance(text, str):
            raise HTTPProblem(
                400, f"{at}.text: expected a string, got {sent(text)}", param=f"{at}.text"
            )
        texts.append(text)
    return "".join(texts)


def render_prompt(messages: list[dict[str, str]], generator: object) -> tuple[str, list[str]]:
    """The prompt for ``messages`` and the stop sequences the template adds (see the module
    docstring): the model's own ``apply_chat_template`` when it has one, else the default."""
    own = getattr(generator, "apply_chat_template", None)
    if callable(own):
        try:
            prompt = own(messages)
        except Exception as exc:  # noqa: BLE001 - the model's template refused the messages
            raise HTTPProblem(
                400, f"messages: the model's chat template refused them: {exc}", param="messages"
            ) from None
        if not isinstance(prompt, str):
            raise HTTPProblem(
                500, f"the model's apply_chat_template returned {type(prompt).__name__}, not str"
            )
        return prompt, []
    lines = [f"{_speaker(m)}: {_said(m)}\n" for m in messages]
    return "".join(lines) + "Assistant:", list(DEFAULT_STOPS)


def _speaker(m: dict[str, Any]) -> str:
    """``Tool (get_weather)`` for a tool's answer, the role's name for the others."""
    if m["role"] in ("tool", "function"):
        return f"{ROLES[m['role']]} ({m['name']})"
    return ROLES[m["role"]]


def _said(m: dict[str, Any]) -> str:
    """A message's text, an assistant's tool calls after it: ``[calls f({"x": 1})]``."""
    calls = [
        f"[calls {c['function']['name']}({c['function']['arguments']})]"
        for c in m.get("tool_calls") or []
    ]
    return " ".join([m["content"], *calls] if m["content"] else calls)


ONE_CHOICE = "only 1 choice per request is supported (n > 1 is not); send separate requests"


def _one_choice(n: int) -> int:
    if n > 1:  # a custom error: its text is the message as it is (no "Value error, " prefix)
        raise PydanticCustomError("n_unsupported", ONE_CHOICE)
    return n


# ``n`` of /v1/chat/completions and /v1/completions: 1 (the default) is the only value served
Choices = Annotated[int, Field(ge=1), AfterValidator(_one_choice)]
# ``seed`` of both: the sample of a request with a seed depends on it alone (not on the other
# requests of its batch); the bounds are those of a torch.Generator's seed
Seed = Annotated[int | None, Field(ge=-(2**63), le=2**64 - 1)]


class NumberFields(BaseModel):
    """A request whose number fields (``temperature``, ``top_p``, ``max_tokens``, ``n``,
    ``seed``, the penalties, ...) take numbers only: a bool is refused (``"temperature": true``
    was read as 1.0, ``"max_tokens": true`` as 1), and so are NaN and infinity (``NaN`` said
    "Input should be less than or equal to 2", a NaN penalty "penalties are not supported"),
    and so is a number in a string (``"temperature": "0.5"`` was read as 0.5; OpenAI's API
    refuses it), each a 400 naming the field, what it takes and what it got. A boolean field
    (``stream``, ``echo``, ``logprobs``) takes ``true`` or ``false`` only, not ``"true"`` or
    ``1``.

    ``null`` for a parameter that has a default means "not given" (the default), as OpenAI's
    API reads its nullable parameters: ``"max_tokens": null``, ``"temperature": null`` and
    ``"stream": null`` were 400s ("got null"). A required parameter (``prompt``,
    ``messages``) is still refused when null."""

    @model_validator(mode="before")
    @classmethod
    def _null_is_not_given(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        dropped = {
            k
            for k, v in data.items()
            if v is None
            and k in fields
            and not fields[k].is_required()
            and fields[k].default is not None
        }
        if not dropped:
            return data  # the same object: valid non-null bodies validate as before
        return {k: v for k, v in data.items() if k not in dropped}

    @field_validator("*", mode="before")
    @classmethod
    def _numbers(cls, v: Any, info: ValidationInfo) -> Any:
        name = info.field_name
        if name is None:
            return v
        f = cls.model_fields[name]
        types = (f.annotation, *get_args(f.annotation))
        whole = float not in types
        if whole and int not in types:
            if bool in types and v is not None and not isinstance(v, bool):
                # pydantic's lax mode read "true", "yes" and 1 as true (and the router, which
                # streams only "stream": true, then relayed a stream as one answer); OpenAI's
                # API refuses them
                raise PydanticCustomError(
                    "not_a_boolean", f"must be a boolean (true or false), got {sent(v)}"
                )
            return v
        # what it takes: "a number from 0 to 2"; a seed's 64-bit range is left out
        hi, lo, _ = _bounds(f)
        huge = any(b is not None and abs(b) >= 2**53 for b in (hi, lo))
        takes = _kind(whole) + ("" if huge else _takes(f, name))
        if isinstance(v, bool):
            raise PydanticCustomError("bool_not_number", f"must be {takes}, got {str(v).lower()}")
        x = v
        if isinstance(v, str):
            try:
                x = float(v.strip())
            except ValueError:
                return v  # not a number at all: pydantic says so
        if isinstance(x, float) and not math.isfinite(x):
            finite = takes if whole else takes.replace("a number", "a finite number", 1)
            raise PydanticCustomError("finite_number", f"must be {finite}, got {x}")
        if isinstance(v, str):
            # OpenAI's API refuses "0.5" for temperature (400 invalid_request_error); pydantic's
            # lax mode read it as 0.5, so a client that worked here failed against OpenAI
            raise PydanticCustomError(
                "number_type",
                f"must be {takes}, got a string ({short_repr(v)}); send the number without quotes",
            )
        return v


class ChatCompletionRequest(NumberFields):
    """OpenAI chat completions request. The fields OpenAI defines are accepted; those a text
    model cannot honour (tools, non-text output, log probabilities, nucleus sampling,
    penalties, token biases) are refused by name when set; others are unknown fields.
    ``max_completion_tokens`` (or the older ``max_tokens``) defaults to 16, as
    ``/v1/completions``; its limit is the model's context (see :mod:`aistack.serving.replica`)."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Any]
    model: str | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: Choices = 1
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    stop: str | list[str] | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    logit_bias: dict[str, float] | None = None
    logprobs: bool = False
    top_logprobs: int | None = None
    seed: Seed = None
    user: str | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    service_tier: str | None = None
    # defined by OpenAI, refused when set (see unsupported())
    tools: Any = None
    tool_choice: Any = None
    parallel_tool_calls: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None
    modalities: Any = None
    audio: Any = None
    prediction: Any = None
    web_search_options: Any = None

    @property
    def max_new_tokens(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 16

    @property
    def max_tokens_field(self) -> str:
        """The field that set :attr:`max_new_tokens` (for an error that names it)."""
        return "max_tokens" if self.max_completion_tokens is None else "max_completion_tokens"

    def unsupported(self) -> HTTPProblem | None:
        """A 400 for the first field set to something a text model cannot do."""
        no_tools = "tool calling is not supported by this server"
        # with tool_choice "none" the model answers in text, never with a call: what it does
        no_choice = f"{no_tools} (the model cannot call them): leave it out or set"
        checks: list[tuple[str, bool, str]] = [
            (
                "tools",
                bool(self.tools) and self.tool_choice != "none",
                f'{no_choice} tool_choice to "none"; tool results in `messages` are accepted',
            ),
            (
                "functions",
                bool(self.functions) and self.function_call != "none",
                f'{no_choice} function_call to "none"',
            ),
            ("tool_choice", self.tool_choice not in (None, "none"), no_tools),
            ("function_call", self.function_call not in (None, "none"), no_tools),
            # (clients send it beside their tools; with tool_choice "none" no call is made)
            (
                "parallel_tool_calls",
                bool(self.parallel_tool_calls) and self.tool_choice != "none",
                no_tools,
            ),
            (
                "response_format",
                self.response_format not in (None, {"type": "text"}),
                "only text answers are supported (no JSON mode or schema)",
            ),
            (
                "modalities",
                self.modalities not in (None, ["text"]),
                "only text answers are supported",
            ),
            ("audio", self.audio is not None, "only text answers are supported"),
            ("prediction", self.prediction is not None, "predicted outputs are not supported"),
            ("web_search_options", self.web_search_options is not None, "no web search here"),
            ("logit_bias", bool(self.logit_bias), "token biases are not supported"),
            ("top_p", self.top_p != 1.0, "nucleus sampling is not supported (use temperature)"),
            ("presence_penalty", self.presence_penalty != 0.0, "penalties are not supported"),
            ("frequency_penalty", self.frequency_penalty != 0.0, "penalties are not supported"),
            ("logprobs", self.logprobs, "log probabilities are not supported by this server"),
            (
                "top_logprobs",
                bool(self.top_logprobs),
                "log probabilities are not supported by this server",
            ),
        ]
        for name, bad, why in checks:
            if bad:
                end = "" if name in ("tools", "functions") else "; leave it out"
                return HTTPProblem(400, f"{name}: {why}{end}", param=name)
        return None
