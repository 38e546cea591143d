"""Trainer configuration: a YAML file and/or command-line flags, validated by pydantic."""

from __future__ import annotations

import argparse
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from aistack.errors import ValidationError, short_repr


class TrainConfig(BaseModel):
    """Everything the reference trainer reads. Unknown keys are an error naming the key."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    run_name: str = Field(
        "gpt",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="names the checkpoints to resume (default: job-<AISTACK_JOB_ID> in an "
        "aistack job, else 'gpt')",
    )
    data: list[str] = Field(..., min_length=1, description="shard files, directories or globs")
    # model
    vocab_size: int | None = Field(None, ge=2, description="default: from the shard headers")
    eos_id: int | None = Field(
        None, ge=0, description="append this id after every document (webdata shards: 0)"
    )
    seq_len: int = Field(256, ge=2)
    n_layer: int = Field(
        4,
        ge=1,
        le=1000,
        description="at most 1000 (the deepest trained models have ~100-200 blocks; 10**5 "
        "tiny blocks would take minutes just to build)",
    )
    n_head: int = Field(4, ge=1)
    n_embd: int = Field(256, ge=8)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    bias: bool = False
    # optimisation
    micro_batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(
        1,
        ge=1,
        le=100_000,
        description="micro-batches per optimizer step, at most 100000 (SIGUSR1 and "
        "checkpoints wait for a step's end; SIGTERM/SIGINT drop the step part-way and "
        "checkpoint the one before)",
    )
    max_steps: int = Field(100, ge=1)
    lr: float = Field(
        3e-4,
        gt=0,
        le=1.0,
        description="peak AdamW learning rate (at most 1: each step moves a weight by about lr)",
    )
    min_lr: float = Field(3e-5, ge=0)
    warmup_steps: int = Field(10, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.95, ge=0, lt=1)
    grad_clip: float = Field(1.0, ge=0)
    seed: int = Field(0, ge=0, le=2**32 - 1, description="0 .. 2**32 - 1 (numpy's seed range)")
    # runtime
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    compile: bool = False
    prefetch: int | None = Field(
        None,
        ge=0,
        le=1024,
        description="batches the loader prepares ahead, at most 1024 (default: 2 on GPU, 0 on "
        "CPU; each one waits in host memory)",
    )
    peak_tflops: float | None = Field(None, gt=0, description="per device, overrides the table")
    # checkpoints / logging
    checkpoint_every: int = Field(100, ge=1)
    checkpoint_url: str | None = Field(None, description="default <objects_url>/checkpoints/<run>")
    keep_checkpoints: int = Field(3, ge=1)
    trust_checkpoints: bool = Field(
        False,
        description="load a checkpoint that names Python objects besides tensors and plain "
        "values with a full unpickle, which can run code: only when you trust every writer of "
        "the checkpoint store (default: refused; AISTACK_TRUST_CHECKPOINTS=1 does the same)",
    )
    resume: bool = True
    log_every: int = Field(10, ge=1)
    metrics_file: str | None = Field(None, description="JSON lines, one per step (rank 0)")
    tokenizer: str | None = Field(None, description="tokenizer file bundled with the model")
    mlflow: bool = Field(True, description="log to MLflow when MLFLOW_TRACKING_URI is set")
    save_model: bool = Field(True, description="log the final model as an MLflow pyfunc")
    register_as: str | None = Field(
        None, description="also register the final model under this registry name"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_run_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("run_name") is None:
            data = {**data, "run_name": default_run_name()}
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_as_number(cls, value: Any, info: ValidationInfo) -> Any:
        """pydantic's lax mode reads True/False as 1/0 for a number field: ``max_steps: true``
        (or YAML's ``yes``) would train one step. A bool there is refused, naming the field;
        numbers written as text ("100", which YAML or a caller may give) are still read.

        The other way round too: a true/false field (``bias``, ``compile``, ``resume``,
        ``mlflow``, ``save_model``) takes only true or false (YAML's true/false/yes/no, a JSON
        boolean, ``--flag`` / ``--no-flag``); lax mode read ``1``, ``"yes"``, ``"off"`` …
        as a bool, so a typo (``resume: "no"`` quoted, ``mlflow: 0.5``) silently chose one."""
        if info.field_name is not None and not isinstance(value, bool):
            if _base_type(cls.model_fields[info.field_name].annotation) is bool:
                raise ValueError(
                    f"expected true or false, got {short_repr(value)} (write true or false "
                    "itself, unquoted)"
                )
        if isinstance(value, bool) and info.field_name is not None:
            typ = _base_type(cls.model_fields[info.field_name].annotation)
            if typ in (int, float):
                what = "a whole number" if typ is int else "a number"
                raise ValueError(
                    f"expected {what}, got {value!r} (true/false is not a number: write the "
                    "number itself)"
                )
        return value

    @model_validator(mode="after")
    def _min_lr_below_lr(self) -> TrainConfig:
        if self.min_lr > self.lr:
            raise ValueError(
                f"min_lr {self.min_lr} is above lr {self.lr} (the cosine decay would raise the "
                "learning rate)"
            )
        return self

    @property
    def tokens_per_step(self) -> int:
        return self.micro_batch_size * self.grad_accum * self.seq_len


def default_run_name() -> str:
    """``job-<AISTACK_JOB_ID>`` inside an aistack job (its retries and preemptions resume it,
    other jobs do not), else ``gpt``."""
    job = re.sub(r"[^A-Za-z0-9._-]", "-", os.environ.get("AISTACK_JOB_ID", "").strip())
    return f"job-{job}" if job else "gpt"


def _raise(exc: PydanticValidationError) -> typing.NoReturn:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or "config"
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if loc == "run_name" and first.get("type") == "string_pattern_mismatch":
        raise ValidationError(
            f"run_name: {short_repr(first.get('input'))} is not a run name: it names the run's "
            "checkpoint folder, so it takes ASCII letters, digits, '.', '_' and '-', starting "
            "with a letter or digit",
            hint="e.g. --run-name gpt-lr3e-4_v2",
            field=loc,
        ) from None
    if first.get("type") == "extra_forbidden":
        allowed = ", ".join(sorted(TrainConfig.model_fields))
        raise ValidationError(
            f"{loc}: unknown key", hint=f"known keys: {allowed}", field=loc
        ) from None
    raise ValidationError(
        f"{loc}: {msg}", hint="fix this value in the config or flag", field=loc
    ) from None


def load_config(path: str | os.PathLike[str] | None = None, **overrides: Any) -> TrainConfig:
    """YAML file (optional) + overrides (None values ignored) → TrainConfig."""
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        p = Path(path)
        if not p.exists():
            raise ValidationError(f"config: {p} does not exist", hint="pass --config cfg.yaml")
        if p.is_dir():
            raise ValidationError(
                f"config: {p} is a folder, not a YAML file", hint="pass --config cfg.yaml"
            )
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ValidationError(
                f"config: cannot read {p}: {exc.strerror or exc}",
                hint="pass a readable YAML file as --config",
            ) from None
        except UnicodeDecodeError:
            raise ValidationError(
                f"config: {p} is not a text file (not UTF-8)",
                hint="pass the trainer's YAML config as --config",
            ) from None
        except yaml.YAMLError as exc:
            raise ValidationError(f"config: {p} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValidationError(f"config: {p} must hold a mapping of keys to values")
        odd = [k for k in loaded if not isinstance(k, str)]
        if odd:
            allowed = ", ".join(sorted(TrainConfig.model_fields))
            raise ValidationError(
                f"config: {p} has a key that is not a name: {odd[0]!r}",
                hint=f"known keys: {allowed}",
            )
        data.update(loaded)
    data.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(data.get("data"), str):
        data["data"] = [data["data"]]
    try:
        return TrainConfig(**data)
    except PydanticValidationError as exc:
        _raise(exc)


def _base_type(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and args:
        return _base_type(args[0])
    return annotation


def build_parser() -> argparse.ArgumentParser:
    """``--config`` plus one ``--flag`` per config field (``--max-steps``, ``--no-resume`` …)."""
    ap = argparse.ArgumentParser(
        prog="python -m aistack.train.run", description="Train the reference GPT on token shards."
    )
    ap.add_argument("--config", help="YAML file with the keys below")
    for name, field in TrainConfig.model_fields.items():
        flag = "--" + name.replace("_", "-")
        typ = _base_type(field.annotation)
        helptext = field.description or ""
        if typ is bool:
            ap.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, help=helptext)
        elif typing.get_origin(typ) is list:
            ap.add_argument(flag, dest=name, nargs="+", help=helptext)
        elif typing.get_origin(typ) is Literal:
            ap.add_argument(flag, dest=name, choices=typing.get_args(typ), help=helptext)
        else:
            ap.add_argument(
                flag, dest=name, type=typ if typ in (int, float) else str, help=helptext
            )
    return ap


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    ns = vars(build_parser().parse_args(argv))
    path = ns.pop("config")
    return load_config(path, **ns)
