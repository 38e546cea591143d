"""A small byte-level GPT in torch with batched generation (left padding + attention mask).

It stands in for the reference GPT of ``aistack.train`` where that is not available, and is
what the serving tests and benchmarks run. Weights are random but seeded, so greedy
generation (temperature 0) is deterministic, and a batched call returns the same text as
one call per prompt. Sampling (temperature above 0) draws from a generator seeded with the
model's ``seed``, shared by the prompts of a call; a prompt given its own seed (``seeds``)
draws from a generator of its own, so it samples the same text alone or in any batch.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aistack.errors import require
from aistack.serving.generators import GeneratedText


@dataclass(kw_only=True)
class TinyGPTConfig:
    vocab: int = 256
    block_size: int = 256
    n_layer: int = 2
    n_head: int = 4
    d_model: int = 128
    seed: int = 0


def _build(cfg: TinyGPTConfig) -> Any:
    torch = require("torch", extra="train")
    nn = torch.nn
    F = torch.nn.functional

    class Block(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.ln1 = nn.LayerNorm(cfg.d_model)
            self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
            self.proj = nn.Linear(cfg.d_model, cfg.d_model)
            self.ln2 = nn.LayerNorm(cfg.d_model)
            self.mlp = nn.Sequential(
                nn.Linear(cfg.d_model, 4 * cfg.d_model),
                nn.GELU(),
                nn.Linear(4 * cfg.d_model, cfg.d_model),
            )

        def forward(self, x: Any, mask: Any, cache: Any) -> Any:
            b, t, c = x.shape
            h = cfg.n_head
            q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
            q = q.view(b, t, h, c // h).transpose(1, 2)
            k = k.view(b, t, h, c // h).transpose(1, 2)
            v = v.view(b, t, h, c // h).transpose(1, 2)
            if cache is not None:  # KV cache: keys/values of the earlier positions
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, c))
            return x + self.mlp(self.ln2(x)), (k, v)

    class GPT(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.tok = nn.Embedding(cfg.vocab, cfg.d_model)
            self.pos = nn.Embedding(cfg.block_size, cfg.d_model)
            self.blocks = nn.ModuleList([Block() for _ in range(cfg.n_layer)])
            self.ln = nn.LayerNorm(cfg.d_model)
            self.head = nn.Linear(cfg.d_model, cfg.vocab, bias=False)

        def forward(self, idx: Any, valid: Any, caches: Any = None) -> Any:
            """idx: (B, T) new tokens; valid: (B, P+T) over cached + new positions (False on
            left padding). Returns logits of the new positions and the updated caches."""
            t = idx.shape[1]
            total = valid.shape[1]
            past = total - t
            pos = (valid.long().cumsum(1) - 1).clamp(min=0)[:, past:]
            x = self.tok(idx) + self.pos(pos)
            causal = torch.ones(t, total, dtype=torch.bool).tril(diagonal=past)
            mask = causal[None, :, :] & valid[:, None, :]
            # a padded query attends to itself only, so no row is empty (no NaN)
            own = torch.zeros(t, total, dtype=torch.bool)
            own[:, past:] = torch.eye(t, dtype=torch.bool)
            mask = mask | own[None]
            mask = mask[:, None, :, :]
            new_caches = []
            for i, blk in enumerate(self.blocks):
                x, kv = blk(x, mask, None if caches is None else caches[i])
                new_caches.append(kv)
            return self.head(self.ln(x)), new_caches

    torch.manual_seed(cfg.seed)
    model = GPT()
    model.eval()
    return model


def _sample(torch: Any, probs: Any, shared_gen: Any, shared: list[int], own: list[Any]) -> Any:
    """One token per row of ``probs``: the rows in ``shared`` together from ``shared_gen``, each
    other row from its own generator (``own[i]``), so what it draws depends on it alone."""
    if len(shared) == probs.shape[0]:
        return torch.multinomial(probs, 1, generator=shared_gen).squeeze(1)
    nxt = torch.empty(probs.shape[0], dtype=torch.long)
    if shared:
        nxt[shared] = torch.multinomial(probs[shared], 1, generator=shared_gen).squeeze(1)
    for i, g in enumerate(own):
        if g is not None:
            nxt[i] = torch.multinomial(probs[i], 1, generator=g)[0]
    return nxt


class TinyGPT:
    """``TextGenerator`` over a byte-level GPT.

    Its context is ``cfg.block_size`` tokens (bytes), the prompt's and the completion's
    together (``context_tokens``). A prompt whose bytes plus ``max_tokens`` pass it is refused
    (a ValueError that names the prompt and the numbers), never left-truncated: a model that
    drops the start of a prompt answers another question than the one asked, and OpenAI
    refuses such a request too. The server checks each request first and answers 400
    ``context_length_exceeded`` (:mod:`aistack.serving.generators`); this is the last guard,
    and it fails the whole call.
    """

    def __init__(self, cfg: TinyGPTConfig | None = None) -> None:
        self.cfg = cfg or TinyGPTConfig()
        self.torch = require("torch", extra="train")
        self.model = _build(self.cfg)

    @property
    def context_tokens(self) -> int:
        """Tokens (bytes) the model's context holds: ``cfg.block_size``."""
        return self.cfg.block_size

    def generate(
        self,
        prompts: list[str],
        max_tokens: int,
        temperature: float,
        on_text: Callable[[int, str], None] | None = None,
        seeds: Sequence[int | None] | None = None,
    ) -> list[str]:
        """Bytes decoded as UTF-8 (as :class:`GeneratedText`: ``tokens`` is the number of bytes
        generated, which the decoded text may not re-encode to); with ``on_text``, each step's
        new text per prompt as it is decoded (a character split over steps comes once
        complete). ``seeds[i]``, when not None, seeds the sampling of ``prompts[i]`` alone."""
        torch = self.torch
        if not prompts:
            return []
        block = self.cfg.block_size
        encoded = [list(p.encode("utf-8")) for p in prompts]
        for i, e in enumerate(encoded):
            if len(e) + max_tokens > block:
                raise ValueError(
                    f"prompt {i} is {len(e)} tokens (bytes); with max_tokens {max_tokens} that "
                    f"is {len(e) + max_tokens}, over the model's context of {block} tokens "
                    "(block_size): shorten the prompt or lower max_tokens"
                )
        # an empty prompt starts from a newline; the last token generated is never fed back,
        # so even then the positions used stay below block_size
        encoded = [e or [10] for e in encoded]
        width = max(len(e) for e in encoded)
        idx = torch.zeros(len(encoded), width, dtype=torch.long)
        valid = torch.zeros(len(encoded), width, dtype=torch.bool)
        for i, e in enumerate(encoded):
            idx[i, width - len(e) :] = torch.tensor(e, dtype=torch.long)
            valid[i, width - len(e) :] = True
        gen = torch.Generator().manual_seed(self.cfg.seed)
        if seeds is not None and len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        own = [None if s is None else torch.Generator().manual_seed(s) for s in seeds or ()]
        shared = [i for i in range(len(prompts)) if not own or own[i] is None]
        out: list[list[int]] = [[] for _ in prompts]
        decoders = [codecs.getincrementaldecoder("utf-8")("replace") for _ in prompts]
        with torch.inference_mode():
            caches = None
            step_in = idx
            for _ in range(max_tokens):
                logits, caches = self.model(step_in, valid, caches)
                logits = logits[:, -1, :]
                if temperature <= 0:
                    nxt = logits.argmax(dim=-1)
                else:
                    probs = torch.softmax(logits / temperature, dim=-1)
                    nxt = _sample(torch, probs, gen, shared, own)
                for i, tok in enumerate(nxt.tolist()):
                    out[i].append(tok)
                    if on_text is not None:
                        piece = decoders[i].decode(bytes([tok]))
                        if piece:
                            on_text(i, piece)
                step_in = nxt[:, None]
                valid = torch.cat([valid, torch.ones(len(prompts), 1, dtype=torch.bool)], dim=1)
        if on_text is not None:
            for i, d in enumerate(decoders):
                tail = d.decode(b"", final=True)  # an unfinished character at the end
                if tail:
                    on_text(i, tail)
        return [GeneratedText(bytes(o).decode("utf-8", errors="replace"), len(o)) for o in out]

    def count_tokens(self, text: str) -> int:
        """Byte-level: a token per UTF-8 byte."""
        return len(text.encode("utf-8"))
