"""A reference GPT (decoder-only transformer) in plain torch, small and configurable.

Pre-norm blocks, causal ``scaled_dot_product_attention`` (flash attention on GPU), GELU MLP,
learned position embeddings and an output head tied to the token embedding (GPT-2 layout).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from aistack.errors import ValidationError, short_repr

_MINIMUM = {"vocab_size": 1, "seq_len": 1, "n_layer": 1, "n_head": 1, "n_embd": 1}


@dataclass(kw_only=True)
class GPTConfig:
    vocab_size: int
    seq_len: int = 256
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0
    bias: bool = False

    def __post_init__(self) -> None:
        """Refuse a shape torch could not build (a ZeroDivisionError, a negative dimension
        deep inside torch), naming the field."""
        for name, low in _MINIMUM.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValidationError(
                    f"{name}: expected a whole number ≥ {low}, got {short_repr(value)}",
                    hint=f"set {name} to a positive integer",
                    field=name,
                )
            setattr(self, name, int(value))
        if self.n_embd % self.n_head:
            raise ValidationError(
                f"n_embd: {self.n_embd} is not divisible by n_head {self.n_head}",
                hint="pick n_embd as a multiple of n_head",
                field="n_embd",
            )
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, numbers.Real) or not 0.0 <= float(d) < 1.0:
            raise ValidationError(
                f"dropout: expected a probability in [0, 1), got {short_repr(d)}",
                hint="set dropout to 0.0 (off) or a fraction such as 0.1",
                field="dropout",
            )
        self.dropout = float(d)
        if not isinstance(self.bias, bool):
            raise ValidationError(
                f"bias: expected true or false, got {short_repr(self.bias)}", field="bias"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.out = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)))))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        if cfg.n_embd % cfg.n_head:  # a config changed after it was made
            raise ValidationError(
                f"n_embd: {cfg.n_embd} is not divisible by n_head {cfg.n_head}",
                hint="pick n_embd as a multiple of n_head",
            )
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.seq_len, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.head.weight = self.wte.weight  # tied
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("out.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self, *, non_embedding: bool = True) -> int:
        """Parameters; by default without the position embedding (the token embedding counts:
        it is also the output head's matmul)."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.wpe.weight.numel() if non_embedding else n

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        t = idx.shape[1]
        if t > self.cfg.seq_len:
            raise ValueError(f"sequence of {t} tokens exceeds seq_len {self.cfg.seq_len}")
        pos = torch.arange(t, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for blk in self.blocks:
            x = blk(x)
        logits = self.head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        for _ in range(max_new_tokens):
            ctx = idx[:, -self.cfg.seq_len :]
            logits, _ = self(ctx)
            logits = logits[:, -1, :].float()
            if temperature <= 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                probs = F.softmax(logits, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


def flops_per_token(cfg: GPTConfig, n_params: int) -> float:
    """Training FLOPs per token: 6·N plus the attention term 12·L·H·Q·T (PaLM, appendix B)
    with Q = head dim, T = sequence length."""
    head_dim = cfg.n_embd // cfg.n_head
    return 6.0 * n_params + 12.0 * cfg.n_layer * cfg.n_head * head_dim * cfg.seq_len


# bytes per parameter that training holds whatever the batch: fp32 weights, fp32 gradients and
# AdamW's two fp32 moments (bf16 autocast keeps fp32 master weights)
TRAIN_BYTES_PER_PARAM = 16


def param_terms(cfg: GPTConfig) -> list[tuple[tuple[str, ...], str, int]]:
    """The parameter count of ``GPT(cfg)`` by part, from the config alone (nothing is
    allocated): ``(fields that size it, what it is, parameters)``. Their sum is
    ``GPT(cfg).num_params(non_embedding=False)`` (the output head is tied to ``wte``)."""
    d, b = cfg.n_embd, int(bool(cfg.bias))
    ln = d * (1 + b)
    # ln1, ln2; qkv 3d², proj d², fc 4d², out 4d² (+ their biases: 3d, d, 4d, d)
    block = 2 * ln + 12 * d * d + 9 * d * b
    # the field named first is the likelier culprit: the one further above its default (4, 256)
    blocks = ("n_layer", "n_embd") if cfg.n_layer / 4 >= (d / 256) ** 2 else ("n_embd", "n_layer")
    return [
        (blocks, f"{cfg.n_layer:,} blocks of n_embd {d:,}", cfg.n_layer * block),
        (("vocab_size", "n_embd"), f"the token embedding ({cfg.vocab_size:,} × {d:,})",
         cfg.vocab_size * d),
        (("seq_len", "n_embd"), f"the position embedding ({cfg.seq_len:,} × {d:,})",
         cfg.seq_len * d),
        (("n_embd",), "the final layer norm", ln),
    ]  # fmt: skip


def param_count(cfg: GPTConfig) -> int:
    """Parameters of ``GPT(cfg)`` (all of them, embeddings included), without building it."""
    return sum(n for _, _, n in param_terms(cfg))


def train_state_bytes(cfg: GPTConfig) -> int:
    """The least memory training ``GPT(cfg)`` needs: weights, gradients and AdamW state
    (activations, which grow with the batch, come on top)."""
    return TRAIN_BYTES_PER_PARAM * param_count(cfg)


def activation_terms(
    cfg: GPTConfig, micro_batch_size: int, *, bf16: bool
) -> list[tuple[tuple[str, ...], str, int]]:
    """A LOWER bound of the activation memory one training micro-batch of ``GPT(cfg)`` needs,
    by part, from the config alone: ``(fields that size it, what it is, bytes)``. Only tensors
    that certainly exist at once are counted (the trainer has no activation checkpointing;
    ``torch.compile`` may recompute cheap ops, never these):

    * the logits, ``micro_batch_size × seq_len × vocab_size``, and their gradient, in the
      compute dtype (2 bytes under bf16 autocast, else 4; the float32 copy and log-softmax
      that the loss makes come on top);
    * per block, the inputs of its four linear layers (``qkv``, ``proj``, ``fc``: n_embd
      wide; ``out``: 4 × n_embd), which backward needs for the weight gradients.

    The attention's q/k/v, the layer norms' inputs, GELU's input, dropout masks, the
    gradients of everything but the logits and the allocator's slack are all left out, so
    the true peak is higher (about 2-3× this for the blocks)."""
    size = 2 if bf16 else 4
    tokens = micro_batch_size * cfg.seq_len
    batch = _batch_fields(micro_batch_size, cfg.seq_len)
    kind = "bf16" if bf16 else "float32"
    return [
        (batch + ("vocab_size",),
         f"the logits and their gradient ({tokens:,} tokens × vocab_size {cfg.vocab_size:,} "
         f"× 2, {kind})", 2 * size * tokens * cfg.vocab_size),
        (batch + ("n_layer", "n_embd"),
         f"the inputs of the linear layers that {cfg.n_layer:,} blocks keep for backward "
         f"({tokens:,} tokens × 7 × n_embd {cfg.n_embd:,} a block, {kind})",
         size * tokens * 7 * cfg.n_embd * cfg.n_layer),
    ]  # fmt: skip


def _batch_fields(micro_batch_size: int, seq_len: int) -> tuple[str, ...]:
    """micro_batch_size and seq_len, the one further above its default (8, 256) first."""
    if micro_batch_size / 8 >= seq_len / 256:
        return ("micro_batch_size", "seq_len")
    return ("seq_len", "micro_batch_size")
