"""Text generators: what the ``/v1/completions`` endpoint calls.

``TextGenerator`` is the protocol; ``EchoGenerator`` is a fake (no torch) shipped for tests and
demos; ``aistack.serving.tinygpt.TinyGPT`` is a small byte-level GPT in torch.

Streaming: a generator whose ``generate`` takes an ``on_text`` keyword calls
``on_text(i, piece)`` as the text of prompt ``i`` grows (one decoded step at a time, from the
thread that runs the model); the pieces of a prompt joined are its returned completion. A
generator without it (a user's pyfunc ``generate``) is still served: a streamed request then
gets its completion in one piece when it is done.

Seeds: a generator whose ``generate`` takes a ``seeds`` keyword gets, per prompt, the ``seed``
of its request or ``None`` (``seeds[i]`` for ``prompts[i]``; the keyword is left out when no
prompt of the call has one). A prompt with a seed is sampled from its own random generator
seeded with it, so its completion depends on the seed, the prompt and the settings alone: the
same with the same seed, whichever other prompts share the batch. Prompts without one are
sampled as before. A model without the keyword cannot promise that: the server refuses a
``seed`` with ``temperature`` above 0 for it (see :func:`takes_seeds`).

Token counts (the ``usage`` of a completion): a generator may return its completions as
:class:`GeneratedText` (a ``str`` that also carries how many tokens the model produced) and
may have a ``count_tokens(text) -> int`` method (its tokenizer's length of ``text``). Where it
has neither, a character counts as a token (see :func:`completion_tokens`).

Context: a generator may have ``context_tokens``, an int: how many tokens its context holds, the
prompt's and the completion's together (``TinyGPTConfig.block_size``, the reference GPT's
``seq_len``). The server then refuses a request whose prompt (measured with ``count_tokens``)
plus ``max_tokens`` does not fit, before it is batched or streamed, with OpenAI's 400
``context_length_exceeded`` (see :func:`context_overflow`). An over-long prompt is refused, as
OpenAI does, never left-truncated: a model that forgets the start of a prompt answers a
different question than the one asked. A generator without ``context_tokens`` or without
``count_tokens`` (a user's pyfunc that says neither, :class:`EchoGenerator`) is not checked.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

OnText = Callable[[int, str], None]
Seeds = Sequence[int | None]


class GeneratedText(str):
    """A completion as a ``str``, with ``tokens``: how many tokens the model generated for it."""

    tokens: int

    def __new__(cls, text: str, tokens: int) -> GeneratedText:
        obj = super().__new__(cls, text)
        obj.tokens = int(tokens)
        return obj

    def __reduce__(self) -> Any:  # pickles (and copies) keep the count
        return (GeneratedText, (str(self), self.tokens))


def count_tokens(generator: object, text: str) -> int:
    """``text``'s length in the generator's tokens (``generator.count_tokens``); a character
    per token for a generator that cannot say (or fails to)."""
    counter = getattr(generator, "count_tokens", None)
    if callable(counter):
        try:
            return max(0, int(counter(text)))
        except Exception:  # noqa: BLE001 - a user model's counter must not fail a request
            pass
    return len(text)


def context_tokens(generator: object) -> int | None:
    """The generator's context in tokens (its ``context_tokens``), or None when it does not say
    (no such attribute, not a whole number above 0, or no ``count_tokens`` to measure a prompt
    with): such a generator's prompts are not checked."""
    try:
        limit = getattr(generator, "context_tokens", None)
    except Exception:  # noqa: BLE001 - a user model's property must not fail a request
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        return None
    if not callable(getattr(generator, "count_tokens", None)):
        return None
    return limit


def context_overflow(generator: object, prompt: str, max_tokens: int) -> tuple[int, int] | None:
    """``(context, prompt tokens)`` when ``prompt``'s tokens plus ``max_tokens`` do not fit in
    the generator's context (:func:`context_tokens`); None when they fit or it cannot say (a
    ``count_tokens`` that fails leaves the prompt unchecked, not refused)."""
    limit = context_tokens(generator)
    if limit is None:
        return None
    try:
        n = max(0, int(generator.count_tokens(prompt)))  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a user model's counter must not fail a request
        return None
    return (limit, n) if n + max_tokens > limit else None


def completion_tokens(
    generator: object, raw: str, final: str, stopped: bool, max_tokens: int
) -> int:
    """Tokens of one choice: ``raw`` is what the model returned, ``final`` what is sent (cut at
    a stop sequence when ``stopped``). Never above ``max_tokens``, nor above what the model
    says it generated (a re-encoded text may tokenize longer than the tokens it came from)."""
    generated = getattr(raw, "tokens", None)
    if isinstance(generated, int) and not stopped and final == raw:
        return max(0, min(generated, max_tokens))
    limit = max_tokens if not isinstance(generated, int) else min(generated, max_tokens)
    return max(0, min(count_tokens(generator, final), limit))


@runtime_checkable
class TextGenerator(Protocol):
    def generate(self, prompts: list[str], max_tokens: int, temperature: float) -> list[str]:
        """Continue each prompt by at most ``max_tokens`` tokens; one completion per prompt
        (optionally with ``on_text`` and ``seeds`` keywords: see the module docstring)."""
        ...


def streams(generator: object) -> bool:
    """Whether ``generator.generate`` takes ``on_text`` (or ``**kwargs``)."""
    try:
        params = inspect.signature(generator.generate).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False
    return "on_text" in params or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
    )


def takes_seeds(generator: object) -> bool:
    """Whether ``generator.generate`` takes ``seeds`` by name (``**kwargs`` is not enough: a
    model that drops the keyword would silently sample unseeded)."""
    try:
        params = inspect.signature(generator.generate).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False
    p = params.get("seeds")
    return p is not None and p.kind in (
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


class EchoGenerator:
    """Fake model: the completion is the prompt reversed, cut to ``max_tokens`` characters.

    ``delay_ms`` is a fixed cost per model call plus ``per_item_ms`` per prompt (a batch of n
    costs ``delay_ms + n * per_item_ms``), which makes batching measurable without torch;
    ``token_ms`` is the time of each decoding step (one character of every completion), which
    makes streaming observable. It does not sample: ``seeds`` are accepted and change nothing.
    """

    def __init__(
        self, *, delay_ms: float = 0.0, per_item_ms: float = 0.0, token_ms: float = 0.0
    ) -> None:
        self.delay_ms = delay_ms
        self.per_item_ms = per_item_ms
        self.token_ms = token_ms

    def generate(
        self,
        prompts: list[str],
        max_tokens: int,
        temperature: float,
        on_text: OnText | None = None,
        seeds: Seeds | None = None,
    ) -> list[str]:
        cost = self.delay_ms + self.per_item_ms * len(prompts)
        if cost > 0:
            time.sleep(cost / 1000.0)
        outs = [p[::-1][:max_tokens] for p in prompts]
        if on_text is not None or self.token_ms > 0:
            for step in range(max((len(o) for o in outs), default=0)):
                if self.token_ms > 0:
                    time.sleep(self.token_ms / 1000.0)
                if on_text is not None:
                    for i, o in enumerate(outs):
                        if step < len(o):
                            on_text(i, o[step])
        return outs

    def count_tokens(self, text: str) -> int:
        """A character is a token."""
        return len(text)

    def predict(self, records: list[dict]) -> list[dict]:
        cost = self.delay_ms + self.per_item_ms * len(records)
        if cost > 0:
            time.sleep(cost / 1000.0)
        return [{"echo": r} for r in records]


class ReferenceGPTGenerator:
    """``TextGenerator`` over ``aistack.train``'s reference GPT and its tokenizer.

    The reference GPT has no padding mask, so a batch is split into groups of prompts with the
    same token length; each group runs as one batched ``GPT.generate`` call. Only the new
    tokens are decoded (the OpenAI completions API returns the continuation). Streamed
    (``on_text``), a group is generated one token per ``GPT.generate`` call (the model keeps
    no cache, so it is the same computation) and the text decoded so far is reported as it
    grows; a trailing U+FFFD (a character whose bytes are not all there yet) waits. A prompt
    with a seed runs in a group of its own, with a ``torch.Generator`` seeded from it passed as
    ``GPT.generate``'s ``generator`` (unseeded groups sample from torch's global generator).

    ``context_tokens`` is the GPT's ``seq_len``: ``GPT.generate`` would slide its window over a
    longer prompt (forgetting its start), so ``generate`` refuses a prompt whose tokens plus
    ``max_tokens`` pass it with a ValueError; the server refuses such a request with a 400
    before it gets here (see the module docstring).
    """

    def __init__(self, model: object, tokenizer: object) -> None:
        self.model = model
        self.tokenizer = tokenizer

    @property
    def context_tokens(self) -> int | None:
        """The GPT's ``seq_len`` (None for a model without one: not checked)."""
        seq_len = getattr(getattr(self.model, "cfg", None), "seq_len", None)
        return seq_len if isinstance(seq_len, int) and not isinstance(seq_len, bool) else None

    def generate(
        self,
        prompts: list[str],
        max_tokens: int,
        temperature: float,
        on_text: OnText | None = None,
        seeds: Seeds | None = None,
    ) -> list[str]:
        """Completions as :class:`GeneratedText` (with the number of new tokens)."""
        import torch

        model: Any = self.model
        tok: Any = self.tokenizer
        ids = [list(tok.encode(p).ids) for p in prompts]
        limit = self.context_tokens
        for i, t in enumerate(ids):
            if limit is not None and len(t) + max_tokens > limit:
                raise ValueError(
                    f"prompt {i} is {len(t)} tokens; with max_tokens {max_tokens} that is "
                    f"{len(t) + max_tokens}, over the model's context of {limit} tokens "
                    "(its seq_len): shorten the prompt or lower max_tokens"
                )
        ids = [t or [0] for t in ids]
        n_new = [0] * len(prompts)
        seeds = list(seeds) if seeds is not None else [None] * len(prompts)
        # prompts of one length run together; a seeded prompt alone, with its own generator
        groups: dict[tuple[int, int], list[int]] = {}
        for i, t in enumerate(ids):
            groups.setdefault((len(t), -1 if seeds[i] is None else i), []).append(i)
        out = [""] * len(prompts)
        sent = [""] * len(prompts)  # streamed so far

        def report(i: int, text: str) -> None:
            if on_text is not None and text.startswith(sent[i]) and len(text) > len(sent[i]):
                on_text(i, text[len(sent[i]) :])
                sent[i] = text

        for (length, _), idx in groups.items():
            batch = torch.tensor([ids[i] for i in idx], dtype=torch.long)
            seed = seeds[idx[0]]
            kw: dict[str, Any] = {}
            if seed is not None:
                kw["generator"] = torch.Generator(device=batch.device).manual_seed(seed)
            if on_text is None:
                gen = model.generate(batch, max_tokens, temperature=temperature, **kw)
            else:
                gen = batch
                for _ in range(max_tokens):  # the same generator: the same draws as one call
                    gen = model.generate(gen, 1, temperature=temperature, **kw)
                    for row, i in enumerate(idx):
                        report(i, tok.decode(gen[row, length:].tolist()).rstrip("\ufffd"))
            for row, i in enumerate(idx):
                new = gen[row, length:].tolist()
                out[i] = tok.decode(new)
                n_new[i] = len(new)
                report(i, out[i])
        return [GeneratedText(t, n) for t, n in zip(out, n_new, strict=True)]

    def count_tokens(self, text: str) -> int:
        tok: Any = self.tokenizer
        return len(tok.encode(text).ids)
