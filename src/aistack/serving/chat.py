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

ROLES = {"system": "System", "developer": "System", "user": "User", "assistant": "Assistant"}
DEFAULT_STOPS = ("\nUser:",)
# message fields OpenAI defines that a text-only server cannot honour (a 400 naming them)
_UNSUPPORTED_MESSAGE_FIELDS = {
    "tool_calls": "tool calls are not supported by this server (no tool calling)",
    "function_call": "function calls are not supported by this server (no tool calling)",
    "audio": "audio is not supported by this server (text only)",
    "tool_call_id": "tool messages are not supported by this server (no tool calling)",
}
_MESSAGE_FIELDS = {"role", "content", "name", "refusal"}


def parse_messages(raw: list[Any]) -> list[dict[str, str]]:
    """Validate OpenAI chat ``messages``; ``[{"role", "content"}]`` with text content.
    Raises HTTPProblem(400) naming the first bad field."""
    if not raw:
        raise HTTPProblem(400, "messages: give at least one message", param="messages")
    out: list[dict[str, str]] = []
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
            why = (
                "tool calling is not supported by this server"
                if role in ("tool", "function")
                else "unknown role"
            )
            raise HTTPProblem(
                400,
                f"{where}.role: {role!r}: {why}; use one of " + ", ".join(ROLES),
                param=f"{where}.role",
            )
        out.append({"role": role, "content": _content(m.get("content"), role, where)})
    return out


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
    lines = [f"{ROLES[m['role']]}: {m['content']}\n" for m in messages]
    return "".join(lines) + "Assistant:", list(DEFAULT_STOPS)


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
        checks: list[tuple[str, bool, str]] = [
            ("tools", bool(self.tools), no_tools),
            ("functions", bool(self.functions), no_tools),
            ("tool_choice", self.tool_choice not in (None, "none"), no_tools),
            ("function_call", self.function_call not in (None, "none"), no_tools),
            ("parallel_tool_calls", bool(self.parallel_tool_calls), no_tools),
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
                return HTTPProblem(400, f"{name}: {why}; leave it out", param=name)
        return None
