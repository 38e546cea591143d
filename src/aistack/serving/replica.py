"""The model server: one replica of a service.

``python -m aistack.serving.replica --model URI --port P [--ready-file F]``

Endpoints:

* ``POST /v1/completions`` — OpenAI completions API (text models); ``stream`` answers with
  server-sent events as OpenAI does: a chunk per decoded piece of each choice as the model
  produces it (text that may begin a ``stop`` sequence is held back until it is clear), the
  finish reason on each choice's last chunk, ``usage`` in a last chunk when
  ``stream_options.include_usage``, then ``[DONE]``. A model whose ``generate`` cannot stream
  sends each completion in one chunk. ``usage`` is in the model's tokens (its ``count_tokens``
  and the counts its completions carry, see :mod:`aistack.serving.generators`; a character
  per token for a model that gives neither), at most ``max_tokens`` per choice. Fields the
  models cannot honour (``logprobs``, ``best_of``, ``suffix``, ``logit_bias``, ``top_p``,
  penalties, ``n`` above 1) are a 400 naming the field, never silently ignored. ``seed``
  (both endpoints) makes a sample (``temperature`` above 0) reproducible: each prompt with a
  seed is sampled from its own generator seeded with it, so the same request with the same
  seed gets the same text, alone or batched with others; a model whose ``generate`` takes no
  ``seeds`` (:mod:`aistack.serving.generators`) answers such a request 400. A prompt whose
  tokens plus ``max_tokens`` do not fit the model's context (a model with ``context_tokens``,
  such as ``builtin:tiny-gpt``: 256) is refused before anything is generated or streamed, as
  OpenAI refuses it: 400, ``code`` "context_length_exceeded", in OpenAI's words (see
  :func:`_context_problem`); it is never left-truncated. That is the only bound on
  ``max_tokens`` of such a model (its context minus the prompt, ``max_model_len`` in
  ``/v1/models``). A model that does not say its context (no ``context_tokens``, such as
  ``builtin:echo`` or a pyfunc without it) takes at most ``--max-tokens`` (the service spec's
  ``max_tokens``, default 4096) per completion: nothing else bounds how long its ``generate``
  runs (see :func:`_max_tokens_problem`).
* ``POST /v1/chat/completions`` — OpenAI chat completions on the same text models: the
  messages become one prompt through the model's ``apply_chat_template`` or a plain documented
  template (:mod:`aistack.serving.chat`); the answer is ``choices[0].message`` with ``usage``;
  ``stream`` sends ``chat.completion.chunk`` events (a first one with the role, then content
  deltas, the finish reason in a last one with an empty delta), as OpenAI does.
* ``POST /invocations`` — MLflow scoring protocol (``dataframe_split``, ``dataframe_records``,
  ``instances``, ``inputs``) for pyfunc models.
* ``GET /v1/models`` and ``GET /v1/models/{model}`` — OpenAI's list and retrieve (404
  ``model_not_found`` for a model not served here).
* ``GET /health`` — 200 when the model is loaded and healthy, with batching stats.
* ``GET /metrics`` — Prometheus text.

Requests go through a :class:`DynamicBatcher`. Bad input is answered 400 (413 when the body
is too large) and never stops the replica; on the OpenAI endpoints, in OpenAI's words
(:mod:`aistack.serving.openai_errors`). ``--port 0`` binds a free port; the address is
written to ``--ready-file`` (JSON) once the socket listens.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from aistack.serving.batching import DynamicBatcher
from aistack.serving.chat import ChatCompletionRequest, Choices, NumberFields, Seed
from aistack.serving.generators import (
    completion_tokens,
    context_overflow,
    context_tokens,
    count_tokens,
    streams,
    takes_seeds,
)
from aistack.serving.http import (
    CONTEXT_LENGTH_EXCEEDED,
    MODEL_NOT_FOUND,
    HTTPProblem,
    bind_socket,
    read_json_object,
)
from aistack.serving.metrics import RequestMetrics, batch_size_prometheus
from aistack.serving.models import LoadedModel, ModelLoadError, load_model
from aistack.serving.openai_errors import read_request_json, request_problem
from aistack.serving.spec import DEFAULT_MAX_TOKENS, MIN_MAX_TOKENS

log = logging.getLogger(__name__)

EXIT_LOAD_FAILED = 3
MAX_PROMPTS = 256  # per request; more go in more requests (they are batched anyway)


class CompletionRequest(NumberFields):
    """OpenAI completions request. The fields OpenAI defines are accepted; those this server
    cannot honour are refused by name when set to anything but their no-op value (see
    :meth:`unsupported`), as ``/v1/chat/completions`` does; others are unknown fields."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | list[str]
    model: str | None = None
    max_tokens: int = Field(default=16, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: Choices = 1
    stream: bool = False
    stop: str | list[str] | None = None
    echo: bool = False
    logprobs: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    best_of: int | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    seed: Seed = None
    suffix: str | None = None
    stream_options: dict[str, Any] | None = None

    def unsupported(self) -> HTTPProblem | None:
        """A 400 for the first field set to something the models here cannot do: they return
        text only (no log probabilities, so no ``best_of`` ranking either), sample with
        ``temperature`` alone (no nucleus sampling, penalties or token biases) and continue a
        prompt (no insertion before a ``suffix``). ``n`` above 1 is refused by validation
        (:data:`~aistack.serving.chat.Choices`)."""
        no_logprobs = "log probabilities are not supported by this server"
        checks: list[tuple[str, bool, str]] = [
            ("logprobs", self.logprobs is not None, no_logprobs),
            (
                "best_of",
                self.best_of not in (None, self.n),
                f"picking the best of several completions needs log probabilities ({no_logprobs})",
            ),
            ("suffix", bool(self.suffix), "insertion (text after the completion) is not supported"),
            ("logit_bias", bool(self.logit_bias), "token biases are not supported"),
            ("top_p", self.top_p != 1.0, "nucleus sampling is not supported (use temperature)"),
            ("presence_penalty", self.presence_penalty != 0.0, "penalties are not supported"),
            ("frequency_penalty", self.frequency_penalty != 0.0, "penalties are not supported"),
        ]
        for name, bad, why in checks:
            if bad:
                return HTTPProblem(400, f"{name}: {why}; leave it out", param=name)
        return None


_MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


@dataclass(kw_only=True)
class _GenItem:
    """One prompt for the completions batcher; ``sink(piece)`` (streamed requests) takes its
    text as it is decoded, from the model's thread."""

    prompt: str
    max_tokens: int
    temperature: float
    seed: int | None = None
    sink: Callable[[str], None] | None = None


def _context_problem(
    generator: object, prompts: list[str], max_tokens: int, *, chat: bool
) -> HTTPProblem | None:
    """OpenAI's 400 ``context_length_exceeded`` for the first prompt whose tokens plus
    ``max_tokens`` do not fit the generator's context (None when all fit, or when the model
    does not say its context: :func:`~aistack.serving.generators.context_overflow`).

    The words are OpenAI's (and vLLM's) for chat: "This model's maximum context length is 256
    tokens. However, you requested 300 tokens (250 in the messages, 50 in the completion).
    Please reduce the length of the messages or completion.", ``param`` "messages"; the
    completions endpoint says "prompt" where chat says "messages" (and names the index of a
    prompt in a list), ``param`` "prompt". The count is of the prompt the model gets (for chat,
    the messages rendered through the template)."""
    for i, prompt in enumerate(prompts):
        over = context_overflow(generator, prompt, max_tokens)
        if over is None:
            continue
        limit, n = over
        if chat:
            where, what, param = "the messages", "the messages", "messages"
        else:
            where = "the prompt" if len(prompts) == 1 else f"the prompt at index {i}"
            what, param = "the prompt", "prompt"
        return HTTPProblem(
            400,
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{n + max_tokens} tokens ({n} in {where}, {max_tokens} in the completion). "
            f"Please reduce the length of {what} or completion.",
            param=param,
            code=CONTEXT_LENGTH_EXCEEDED,
        )
    return None


def _max_tokens_problem(
    generator: object, max_tokens: int, cap: int, *, field: str
) -> HTTPProblem | None:
    """A 400 naming ``field`` when ``max_tokens`` is above ``cap`` for a model that does not say
    its context (:func:`~aistack.serving.generators.context_tokens` is None); None otherwise: a
    model that says its context is bounded by it alone (:func:`_context_problem`)."""
    if max_tokens <= cap or context_tokens(generator) is not None:
        return None
    return HTTPProblem(
        400,
        f"{field} is too large: {max_tokens}. This model supports at most {cap} completion "
        f"tokens, whereas you provided {max_tokens}: it does not say its context length "
        "(no context_tokens), so this server caps a completion at max_tokens "
        f"{cap} (nothing else would bound how long it generates); ask for at most {cap}, or "
        "raise the service's max_tokens",
        param=field,
    )


def _apply_stop(text: str, stop: str | list[str] | None) -> tuple[str, bool]:
    stops = [stop] if isinstance(stop, str) else (stop or [])
    cut = min((text.find(s) for s in stops if s and s in text), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _usage(
    generator: object,
    prompts: list[str],
    choices: list[tuple[str, str, bool]],
    max_tokens: int,
) -> dict[str, int]:
    """OpenAI ``usage`` in the model's tokens. ``choices``: per prompt, what the model returned,
    the text sent (cut at a stop sequence) and whether a stop sequence cut it."""
    prompt_tokens = sum(count_tokens(generator, p) for p in prompts)
    completion = sum(
        completion_tokens(generator, raw, final, stopped, max_tokens)
        for raw, final, stopped in choices
    )
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
    }


class _StreamedChoice:
    """One choice of a streamed completion: what may be sent so far, given ``stop``."""

    def __init__(self, stop: str | list[str] | None) -> None:
        self.stop = stop
        self.stops = [s for s in ([stop] if isinstance(stop, str) else (stop or [])) if s]
        self.text = ""  # everything the model produced so far
        self.sent = 0  # characters of it already sent
        self.finished = False

    def feed(self, piece: str) -> tuple[str, bool]:
        """New text to send, and whether a stop sequence ended the choice."""
        self.text += piece
        final, stopped = _apply_stop(self.text, self.stops)
        if stopped:
            return self._take(len(final)), True
        # hold back a tail that may be the start of a stop sequence
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])),
            default=0,
        )
        return self._take(len(self.text) - hold), False

    def finish(self, completion: str) -> tuple[str, bool]:
        """The rest to send once the model returned ``completion``, and whether it stopped."""
        final, stopped = _apply_stop(completion, self.stops)
        if not final.startswith(self.text[: self.sent]):  # the pieces did not add up to it
            return "", stopped
        self.text = completion
        return self._take(len(final)), stopped

    def _take(self, upto: int) -> str:
        out = self.text[self.sent : upto] if upto > self.sent else ""
        self.sent = max(self.sent, upto)
        return out


@dataclass(kw_only=True)
class _Streamed:
    """What a streamed answer needs of its request (text or chat completion)."""

    kind: Literal["text", "chat"]
    prompts: list[str]
    max_tokens: int
    temperature: float
    seed: int | None = None
    stop: str | list[str] | None
    echo: bool = False
    include_usage: bool = False
    id: str
    created: int
    model: str

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        obj = "text_completion" if self.kind == "text" else "chat.completion.chunk"
        body = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    def start(self, i: int) -> list[str]:
        if self.kind == "chat":  # OpenAI's first chunk of a choice carries the role
            delta = {"role": "assistant", "content": ""}
            return [self.chunk([_chat_delta(i, delta, None)])]
        if self.echo:
            return [self.chunk([_text_choice(i, self.prompts[i], None)])]
        return []

    def piece(self, i: int, text: str, finish: str | None) -> list[str]:
        if self.kind == "text":
            return [self.chunk([_text_choice(i, text, finish)])]
        out = [self.chunk([_chat_delta(i, {"content": text}, None)])] if text else []
        if finish is not None:  # the finish reason comes with an empty delta, as OpenAI's
            out.append(self.chunk([_chat_delta(i, {}, finish)]))
        return out


def _text_choice(i: int, text: str, finish: str | None) -> dict[str, Any]:
    return {"text": text, "index": i, "logprobs": None, "finish_reason": finish}


def _chat_delta(i: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}


async def _stream_events(server: ReplicaServer, req: _Streamed) -> AsyncIterator[str]:
    """The server-sent events of a streamed completion (see the module docstring)."""
    import asyncio

    assert server.gen_batcher is not None
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, int, Any]] = asyncio.Queue()

    def sink_for(i: int) -> Any:
        def sink(piece: str) -> None:  # the model's thread
            loop.call_soon_threadsafe(queue.put_nowait, ("piece", i, piece))

        return sink

    async def run(i: int, prompt: str) -> None:
        try:
            item = _GenItem(
                prompt=prompt,
                max_tokens=req.max_tokens,
                temperature=req.temperature,
                seed=req.seed,
                sink=sink_for(i),
            )
            queue.put_nowait(("done", i, await server.gen_batcher.submit(item)))  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - reported in the stream
            queue.put_nowait(("error", i, exc))

    prompts = req.prompts
    tasks = [asyncio.create_task(run(i, p)) for i, p in enumerate(prompts)]
    states = [_StreamedChoice(req.stop) for _ in prompts]
    try:
        for i in range(len(prompts)):
            for e in req.start(i):
                yield e
        left = len(prompts)
        while left:
            kind, i, val = await queue.get()
            st = states[i]
            if st.finished:
                continue
            if kind == "piece":
                text, stopped = st.feed(val)
                if stopped:
                    st.finished, left = True, left - 1
                    for e in req.piece(i, text, "stop"):
                        yield e
                elif text:
                    for e in req.piece(i, text, None):
                        yield e
            elif kind == "done":
                text, stopped = st.finish(val)
                st.finished, left = True, left - 1
                for e in req.piece(i, text, "stop" if stopped else "length"):
                    yield e
            else:  # the model failed: the status line (200) is long gone, so say it here
                log.warning("streamed completion failed: %s", val)
                err = {
                    "message": f"the model failed: {val}",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
                yield f"data: {json.dumps({'error': err})}\n\n"
                return
        if req.include_usage:
            gen = server.model.generator
            choices = [(st.text, *_apply_stop(st.text, st.stops)) for st in states]
            yield req.chunk([], usage=_usage(gen, prompts, choices, req.max_tokens))
        yield "data: [DONE]\n\n"
    finally:  # also when the client went away: queued prompts are not computed for nobody
        for t in tasks:
            t.cancel()


class ReplicaServer:
    def __init__(
        self,
        model: LoadedModel,
        *,
        name: str = "replica",
        max_batch_size: int = 16,
        max_wait_ms: float = 5.0,
        max_body_bytes: int = 1_048_576,
        served_names: Iterable[str] = (),
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.model = model
        self.name = name
        # what a request's "model" may say (as vLLM, an unknown name is a 404): the model's
        # pinned URI, its registry name, and what the service gave (its name, the reference)
        self.served_names = [model.uri, *served_names]
        if model.uri.startswith("models:/"):
            self.served_names.append(model.uri.removeprefix("models:/").split("/")[0])
        self.served_names = list(dict.fromkeys(n for n in self.served_names if n))
        self.max_body_bytes = max_body_bytes
        # max_tokens of a model that does not say its context (see _max_tokens_problem)
        self.max_tokens = max_tokens
        self.metrics = RequestMetrics(prefix="aistack_replica", labels={"replica": name})
        self.gen_batcher = (
            DynamicBatcher(
                self._generate_batch, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms
            )
            if model.generator is not None
            else None
        )
        self.pred_batcher = (
            DynamicBatcher(
                self._predict_batch, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms
            )
            if model.predict_batch is not None
            else None
        )
        self.started = time.time()
        self._streams = model.generator is not None and streams(model.generator)
        self._seeds = model.generator is not None and takes_seeds(model.generator)

    # ---- batch functions (run in the batcher's worker thread)
    def _generate_batch(self, items: list[_GenItem]) -> list[Any]:
        """One ``generate`` call per (max_tokens, temperature) of the batch; the prompts' seeds
        go with them (``seeds``) when the model takes them and one has a seed."""
        gen = self.model.generator
        assert gen is not None
        groups: dict[tuple[int, float], list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault((item.max_tokens, item.temperature), []).append(i)
        out: list[Any] = [None] * len(items)
        for (max_tokens, temperature), idx in groups.items():
            sinks = [items[i].sink for i in idx]
            prompts = [items[i].prompt for i in idx]
            kw: dict[str, Any] = {}
            seeds = [items[i].seed for i in idx]
            if self._seeds and any(s is not None for s in seeds):
                kw["seeds"] = seeds
            if any(sinks) and self._streams:

                def on_text(j: int, piece: str, sinks: list[Any] = sinks) -> None:
                    sink = sinks[j]
                    if sink is not None:
                        sink(piece)

                kw["on_text"] = on_text
            texts = gen.generate(prompts, max_tokens, temperature, **kw)
            for i, t in zip(idx, texts, strict=True):
                out[i] = t
        return out

    def _predict_batch(self, chunks: list[Any]) -> list[Any]:
        assert self.model.predict_batch is not None
        try:
            return list(self.model.predict_batch(chunks))
        except Exception:
            if len(chunks) == 1:
                raise
        # one bad request must not fail its neighbours: retry one by one
        res: list[Any] = []
        for c in chunks:
            try:
                res.append(self.model.predict_batch([c])[0])
            except Exception as exc:
                res.append(exc)
        return res

    def batches(self) -> dict[str, Any]:
        stats: dict[str, Any] = {}
        for key, b in (("completions", self.gen_batcher), ("invocations", self.pred_batcher)):
            if b is not None:
                stats[key] = b.stats.as_dict()
        return stats

    def pending(self) -> int:
        return sum(b.pending for b in (self.gen_batcher, self.pred_batcher) if b is not None)

    def app(self) -> Any:
        from contextlib import asynccontextmanager

        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
        from starlette.routing import Route

        server = self

        @asynccontextmanager
        async def lifespan(app: Any):  # type: ignore[no-untyped-def]
            for b in (server.gen_batcher, server.pred_batcher):
                if b is not None:
                    await b.start()
            yield
            for b in (server.gen_batcher, server.pred_batcher):
                if b is not None:
                    await b.stop()

        def timed(handler: Any) -> Any:
            async def wrapped(request: Request) -> Response:
                t0 = time.perf_counter()
                try:
                    resp = await handler(request)
                except HTTPProblem as exc:
                    resp = exc.response()
                except Exception as exc:  # never let a request take the replica down
                    log.exception("request failed")
                    resp = HTTPProblem(
                        500, f"internal error: {type(exc).__name__}: {exc}"
                    ).response()
                server.metrics.observe(resp.status_code, time.perf_counter() - t0)
                return resp

            return wrapped

        async def health(request: Request) -> Response:
            body = {
                "status": "ok" if server.model.healthy else "unhealthy",
                "model": server.model.uri,
                "replica": server.name,
                "pid": os.getpid(),
                "pending": server.pending(),
                "batches": server.batches(),
                "uptime_s": round(time.time() - server.started, 3),
            }
            return JSONResponse(body, status_code=200 if server.model.healthy else 503)

        async def metrics(request: Request) -> Response:
            extra = ""
            for key, b in (
                ("completions", server.gen_batcher),
                ("invocations", server.pred_batcher),
            ):
                if b is not None:
                    extra += batch_size_prometheus(
                        "aistack_replica",
                        {"replica": server.name, "endpoint": key},
                        b.stats.as_dict()["batch_size_counts"],
                    )
            text = server.metrics.prometheus({"pending_requests": server.pending()}, extra)
            return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

        def model_entry(name: str) -> dict[str, Any]:
            """OpenAI's model object (``created``: when this replica loaded it, Unix seconds),
            with vLLM's ``max_model_len`` where the model says its context (prompt and
            completion tokens together; a longer request is refused as
            ``context_length_exceeded``)."""
            entry: dict[str, Any] = {
                "id": name,
                "object": "model",
                "created": int(server.started),
                "owned_by": "aistack",
            }
            limit = context_tokens(server.model.generator)
            if limit is not None:
                entry["max_model_len"] = limit
            return entry

        async def models(request: Request) -> Response:
            """OpenAI's model list: a :func:`model_entry` per name served."""
            return JSONResponse(
                {"object": "list", "data": [model_entry(n) for n in server.served_names]}
            )

        def check_model(name: str | None, *, param: str | None = "model") -> None:
            """As vLLM: a request naming a model this replica does not serve is a 404."""
            if name and name not in server.served_names:
                raise HTTPProblem(
                    404,
                    f"model: {name!r} is not served here; this endpoint serves "
                    + ", ".join(repr(n) for n in server.served_names)
                    + (" (or leave model out)" if param else ""),
                    param=param,
                    code=MODEL_NOT_FOUND,
                )

        async def retrieve_model(request: Request) -> Response:
            """OpenAI's retrieve-model (``client.models.retrieve(id)``): the object the list
            has for ``id``; 404 ``model_not_found`` for a name not served here. An id with a
            ``/`` (``models:/NAME/1``) may come as it is or %-encoded."""
            name = request.path_params["model"]
            try:
                check_model(name, param=None)
            except HTTPProblem as exc:
                return exc.response()
            return JSONResponse(model_entry(name))

        async def text_request(request: Request, model: Any) -> Any:
            """The validated body of a text endpoint (completions, chat): 404 for a model that
            is not a text model, 400 naming the field for a bad or unsupported one."""
            if server.gen_batcher is None:
                raise HTTPProblem(
                    404, f"model {server.model.uri} is not a text model; use POST /invocations"
                )
            data = await read_request_json(request, server.max_body_bytes)
            try:
                req = model.model_validate(data)
            except PydanticValidationError as exc:
                raise request_problem(exc, model, data) from None
            problem = req.unsupported()
            if problem is not None:
                raise problem
            if req.seed is not None and req.temperature > 0 and not server._seeds:
                raise HTTPProblem(
                    400,
                    "seed: this model's generate takes no seeds, so its samples cannot be "
                    "reproduced; leave seed out, or set temperature to 0 (greedy, the same "
                    "every time)",
                    param="seed",
                )
            check_model(req.model)
            return req

        def stream(streamed: _Streamed) -> StreamingResponse:
            return StreamingResponse(
                _stream_events(server, streamed),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )

        async def chat_completions(request: Request) -> Response:
            from aistack.serving.chat import parse_messages, render_prompt

            req = await text_request(request, ChatCompletionRequest)
            gen = server.gen_batcher
            assert gen is not None  # text_request answered 404 otherwise
            prompt, template_stops = render_prompt(
                parse_messages(req.messages), server.model.generator
            )
            stops = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
            stops += template_stops
            cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
            created = int(time.time())
            model_name = req.model or server.model.uri
            max_tokens = req.max_new_tokens
            problem = _context_problem(
                server.model.generator, [prompt], max_tokens, chat=True
            ) or _max_tokens_problem(
                server.model.generator, max_tokens, server.max_tokens, field=req.max_tokens_field
            )
            if problem is not None:  # before a stream starts: its status is still ours to set
                raise problem
            if req.stream:
                streamed = _Streamed(
                    kind="chat",
                    prompts=[prompt],
                    max_tokens=max_tokens,
                    temperature=req.temperature,
                    seed=req.seed,
                    stop=stops,
                    include_usage=bool((req.stream_options or {}).get("include_usage")),
                    id=cid,
                    created=created,
                    model=model_name,
                )
                return stream(streamed)
            raw = await gen.submit(
                _GenItem(
                    prompt=prompt,
                    max_tokens=max_tokens,
                    temperature=req.temperature,
                    seed=req.seed,
                )
            )
            text, stopped = _apply_stop(raw, stops)
            usage = _usage(server.model.generator, [prompt], [(raw, text, stopped)], max_tokens)
            return JSONResponse(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model_name,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text, "refusal": None},
                            "logprobs": None,
                            "finish_reason": "stop" if stopped else "length",
                        }
                    ],
                    "usage": usage,
                }
            )

        async def completions(request: Request) -> Response:
            req = await text_request(request, CompletionRequest)
            gen = server.gen_batcher
            assert gen is not None  # text_request answered 404 otherwise
            prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
            if not prompts:
                raise HTTPProblem(400, "prompt: give at least one prompt", param="prompt")
            if len(prompts) > MAX_PROMPTS:
                raise HTTPProblem(
                    400,
                    f"prompt: {len(prompts)} prompts in one request; the limit is {MAX_PROMPTS}, "
                    "split them over several requests",
                    param="prompt",
                )
            problem = _context_problem(
                server.model.generator, prompts, req.max_tokens, chat=False
            ) or _max_tokens_problem(
                server.model.generator, req.max_tokens, server.max_tokens, field="max_tokens"
            )
            if problem is not None:  # before a stream starts: its status is still ours to set
                raise problem
            import asyncio

            cid = f"cmpl-{uuid.uuid4().hex[:24]}"
            created = int(time.time())
            model_name = req.model or server.model.uri
            if req.stream:
                streamed = _Streamed(
                    kind="text",
                    prompts=prompts,
                    max_tokens=req.max_tokens,
                    temperature=req.temperature,
                    seed=req.seed,
                    stop=req.stop,
                    echo=req.echo,
                    include_usage=bool((req.stream_options or {}).get("include_usage")),
                    id=cid,
                    created=created,
                    model=model_name,
                )
                return stream(streamed)
            texts = await asyncio.gather(
                *(
                    gen.submit(
                        _GenItem(
                            prompt=p,
                            max_tokens=req.max_tokens,
                            temperature=req.temperature,
                            seed=req.seed,
                        )
                    )
                    for p in prompts
                )
            )
            choices = []
            counted: list[tuple[str, str, bool]] = []
            for i, (p, raw) in enumerate(zip(prompts, texts, strict=True)):
                t, stopped = _apply_stop(raw, req.stop)
                counted.append((raw, t, stopped))
                choices.append(
                    {
                        "text": (p + t) if req.echo else t,
                        "index": i,
                        "logprobs": None,
                        "finish_reason": "stop" if stopped else "length",
                    }
                )
            return JSONResponse(
                {
                    "id": cid,
                    "object": "text_completion",
                    "created": created,
                    "model": model_name,
                    "choices": choices,
                    "usage": _usage(server.model.generator, prompts, counted, req.max_tokens),
                }
            )

        async def invocations(request: Request) -> Response:
            if server.pred_batcher is None:
                raise HTTPProblem(
                    404, f"model {server.model.uri} has no predict; use POST /v1/completions"
                )
            ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
            if ctype not in ("application/json", ""):
                raise HTTPProblem(
                    415, f"content type {ctype!r} is not supported; send application/json"
                )
            data = await read_json_object(request, server.max_body_bytes)
            chunk = _parse_invocation(data)
            try:
                result = await server.pred_batcher.submit(chunk)
            except Exception as exc:
                raise HTTPProblem(
                    400, f"the model rejected the input: {type(exc).__name__}: {exc}"
                ) from None
            return JSONResponse({"predictions": _jsonable(result)})

        routes = [
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/v1/models/{model:path}", retrieve_model, methods=["GET"]),
            Route("/v1/completions", timed(completions), methods=["POST"]),
            Route("/v1/chat/completions", timed(chat_completions), methods=["POST"]),
            Route("/invocations", timed(invocations), methods=["POST"]),
        ]
        served = ", ".join(
            f"{sorted((r.methods or set()) - {'HEAD'})[0]} {r.path.replace(':path}', '}')}"
            for r in routes
        )

        async def no_route(request: Request, exc: Exception) -> Response:
            """404/405 in the OpenAI error shape (JSON), naming what is served. "Here", not
            "this replica": a service's router relays this answer as its own (the client asked
            the service, which serves the same paths)."""
            code = int(getattr(exc, "status_code", 404))
            what = f"{request.method} {request.url.path}"
            if code == 405:
                msg = f"{what}: method not allowed; served here: {served}"
            else:
                msg = f"{what}: no such endpoint; served here: {served}"
            return HTTPProblem(code, msg).response()

        return Starlette(
            routes=routes, lifespan=lifespan, exception_handlers={404: no_route, 405: no_route}
        )


def _parse_invocation(data: dict[str, Any]) -> Any:
    import pandas as pd

    keys = [k for k in _MLFLOW_KEYS if k in data]
    unknown = sorted(set(data) - set(_MLFLOW_KEYS) - {"params"})
    if unknown:
        raise HTTPProblem(
            400,
            f"{unknown[0]}: unknown field; use one of {', '.join(_MLFLOW_KEYS)}",
            param=unknown[0],
        )
    if len(keys) != 1:
        raise HTTPProblem(400, f"give exactly one of {', '.join(_MLFLOW_KEYS)} (got {len(keys)})")
    key = keys[0]
    value = data[key]
    try:
        if key == "dataframe_split":
            if not isinstance(value, dict) or "data" not in value:
                raise HTTPProblem(
                    400, "dataframe_split: expected an object with 'columns' and 'data'", param=key
                )
            if not isinstance(value["data"], list):
                raise HTTPProblem(400, "dataframe_split.data: expected a list of rows", param=key)
            return pd.DataFrame(
                data=value["data"], columns=value.get("columns"), index=value.get("index")
            )
        if key == "dataframe_records":
            if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
                raise HTTPProblem(400, "dataframe_records: expected a list of objects", param=key)
            return pd.DataFrame.from_records(value)
        if isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
            return pd.DataFrame.from_records(value)
        if isinstance(value, dict):
            return pd.DataFrame({k: v if isinstance(v, list) else [v] for k, v in value.items()})
        if not isinstance(value, list):
            raise HTTPProblem(400, f"{key}: expected a list or an object", param=key)
        return value
    except HTTPProblem:
        raise
    except (ValueError, TypeError) as exc:
        raise HTTPProblem(400, f"{key}: cannot build a table from it: {exc}", param=key) from None


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):
        return obj.to_dict(orient="records")
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, list | tuple):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    return obj


def write_ready_file(path: Path, info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(info))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m aistack.serving.replica", description=__doc__.split("\n")[0]
    )
    ap.add_argument(
        "--model", required=True, help="model URI (models:/NAME/VERSION, builtin:tiny-gpt, ...)"
    )
    ap.add_argument("--host", default=os.environ.get("AISTACK_SERVE_HOST", "127.0.0.1"))
    ap.add_argument("--port", type=int, default=int(os.environ.get("AISTACK_SERVE_PORT", "0")))
    ap.add_argument("--ready-file", default=os.environ.get("AISTACK_SERVE_READY_FILE"))
    ap.add_argument("--name", default=os.environ.get("AISTACK_SERVE_REPLICA", "replica"))
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--max-body-bytes", type=int, default=1_048_576)
    ap.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help="most tokens per completion for a model that does not say its context length "
        f"(default {DEFAULT_MAX_TOKENS}); a model that says it is bounded by its context instead",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("AISTACK_SERVE_THREADS", "1")),
        help="torch intra-op threads",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.max_batch_size < 1:
        ap.error("--max-batch-size must be >= 1")
    if args.max_tokens < MIN_MAX_TOKENS:  # the default of a request that does not say
        ap.error(
            f"--max-tokens must be >= {MIN_MAX_TOKENS} tokens (the default max_tokens of a request)"
        )
    from aistack.serving.batching import MAX_WAIT_MS

    if not 0 <= args.max_wait_ms <= MAX_WAIT_MS:  # NaN too
        ap.error(f"--max-wait-ms must be from 0 to {MAX_WAIT_MS:g} milliseconds")
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, args.threads)))
    t0 = time.perf_counter()
    try:
        model = load_model(args.model)
    except (ModelLoadError, Exception) as exc:
        log.error("model failed to load: %s", exc)
        print(f"error: model failed to load: {exc}", file=sys.stderr)
        return EXIT_LOAD_FAILED
    log.info("loaded %s in %.2f s", args.model, time.perf_counter() - t0)
    if "torch" in sys.modules:  # only when the model needed it: importing torch costs seconds
        sys.modules["torch"].set_num_threads(max(1, args.threads))
    server = ReplicaServer(
        model,
        name=args.name,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_body_bytes=args.max_body_bytes,
        served_names=[os.environ.get("AISTACK_SERVE_SERVICE", ""), args.model],
        max_tokens=args.max_tokens,
    )
    sock = bind_socket(args.host, args.port)
    host, port = sock.getsockname()[:2]
    log.info("replica %s serving %s on http://%s:%d", args.name, args.model, host, port)
    if args.ready_file:
        write_ready_file(
            Path(args.ready_file),
            {"host": host, "port": port, "pid": os.getpid(), "model": args.model},
        )
    from aistack.serving.http import serve_app

    serve_app(server.app(), sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
