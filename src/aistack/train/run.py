"""The reference trainer: ``python -m aistack.train.run --config cfg.yaml`` (or flags).

* Distributed data parallel when ``WORLD_SIZE`` > 1 (the environment torchrun or an aistack
  ``distributed: torch`` job sets): NCCL on GPU, gloo on CPU; one micro-batch stream per
  rank from :class:`~aistack.train.loader.ShardLoader`.
* bf16 autocast on GPU, gradient accumulation (no all-reduce on the inner micro-steps),
  AdamW with warm-up and cosine decay, gradient clipping.
* Reports loss, tokens/s and MFU (6·N + attention FLOPs per token over the device's peak).
* Checkpoints every ``checkpoint_every`` steps, at the end, and when the process receives
  SIGTERM (checkpoint, then exit 143) or SIGINT (Ctrl-C, a job's ``stop_signal: SIGINT``:
  the same, exit 130; a second one aborts at once, without a checkpoint) or SIGUSR1
  (checkpoint, keep training) — all ranks agree on the stop step and on the signal through
  the per-step all-reduce, so one signalled rank is enough.
  A SIGTERM (or SIGINT) does not wait for the end of a long step (``grad_accum``
  micro-batches): it is checked between micro-batches (in DDP an all-reduce of the flag about every 0.1 s of
  micro-batches), the step's partial gradients are dropped and the last completed step is
  checkpointed (if it is not yet) with the data position and RNGs of that step's end, so a
  resume replays the dropped micro-batches. SIGUSR1 is handled at step ends.
* On start it resumes from the run's latest readable checkpoint: model, optimizer, loader
  position and every rank's RNG state, so the loss curve continues as if never interrupted
  (steps logged before, since that checkpoint, are not logged twice). A checkpoint of another
  model shape or loader layout is refused with the field that differs. ``--no-resume`` moves
  the run's checkpoints into ``previous-<time>/`` and starts a new lineage. The run name
  defaults to ``job-<AISTACK_JOB_ID>`` in an aistack job.
* Checked before the first step: the tokenizer file, that the checkpoint location is
  writable, that ``eos_id`` and the shard headers' vocabularies fit ``vocab_size``, that the
  shard headers agree on one vocabulary (or ``vocab_size`` is set), and that the
  ``AISTACK_TRAIN_SIGNAL_AT_STEP`` test hook is well formed; and
  on the host, every batch before it goes to the device: a token id the embedding cannot
  hold is a clear error naming its shard (not a torch IndexError or device-side assert).
* A loss (or, at a checkpoint, weights) that is NaN/inf stops the run with an error naming
  ``lr``: nothing of that step is saved, so the good checkpoints are neither replaced nor
  pruned. A checkpoint that is not this trainer's (no model state, other parameter names) is
  refused naming the file and the newest older checkpoint that loads (each is tried), or
  saying that none does.
* With ``MLFLOW_TRACKING_URI`` set: params, per-step metrics (buffered) and, at the end,
  the model as an MLflow pyfunc (see :mod:`aistack.train.export`). The run ends FINISHED,
  KILLED when stopped by SIGTERM or SIGINT (a re-run resumes it), FAILED when the trainer
  raised.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aistack.errors import AistackError, BackendError, ValidationError, require, short_repr
from aistack.train.checkpoint import _shown_steps
from aistack.train.config import TrainConfig, parse_args

log = logging.getLogger(__name__)

_SIGNALS: list[int] = []
# the signals that stop the run (checkpoint, then exit 128 + the signal), the first one
# first: when ranks were sent different ones, all of them stop with the first here
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _stop_flags(received: list[int]) -> list[float]:
    """One flag per signal of ``_STOP_SIGNALS`` (in its order): 1.0 when ``received`` has it.
    Summed over the ranks by an all-reduce, then read back by :func:`_first_stop`."""
    return [float(s in received) for s in _STOP_SIGNALS]


def _first_stop(flags: list[float]) -> str | None:
    """The name of the first stop signal whose flag (from :func:`_stop_flags`, possibly summed
    over ranks) is set, None when none is: the signal every rank stops with."""
    return next((s.name for s, v in zip(_STOP_SIGNALS, flags, strict=True) if v > 0), None)


def _on_signal(signum: int, _frame: Any) -> None:
    if signum == signal.SIGINT and signum in _SIGNALS:
        raise KeyboardInterrupt  # a second Ctrl-C: stop now, without the checkpoint
    _SIGNALS.append(signum)


@dataclass(kw_only=True)
class TrainResult:
    step: int
    resumed_from: int | None
    stopped_by: str | None
    last_loss: float | None
    checkpoint: str | None
    tokens_per_s: float | None = None
    mfu: float | None = None
    mlflow_run_id: str | None = None
    losses: list[float] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        stops = {s.name: int(s) for s in _STOP_SIGNALS}
        return 128 + stops[self.stopped_by] if self.stopped_by in stops else 0


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr`` at ``max_steps``."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    ratio = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr + 0.5 * (1 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr)


def _schedule_change(old_cfg: dict[str, Any], cfg: TrainConfig, start: int) -> str | None:
    """A warning when a resume with another ``max_steps`` changes the learning rate of the
    next step: the cosine decay ends at ``max_steps``, so the curve does not continue as the
    checkpointed run would have (None when max_steps is the same or the lr is unchanged)."""
    old_max = old_cfg.get("max_steps")
    if not isinstance(old_max, int) or old_max == cfg.max_steps or start >= cfg.max_steps:
        return None
    try:
        before = lr_at(start, cfg.model_copy(update={"max_steps": old_max}))
    except Exception:  # noqa: BLE001 - a checkpoint config this version cannot rebuild
        return None
    now = lr_at(start, cfg)
    if math.isclose(before, now, rel_tol=1e-9, abs_tol=0.0):
        return None
    keep = (
        f"resume with --max-steps {old_max} to keep it"
        if start < old_max
        else f"the checkpointed run had finished its decay at step {old_max}"
    )
    return (
        f"max_steps {old_max} -> {cfg.max_steps}: the learning-rate schedule (cosine decay to "
        f"min_lr at max_steps) changes, lr at step {start + 1} is {now:.2e} instead of "
        f"{before:.2e} under the checkpoint's, so the loss curve does not continue as before "
        f"({keep})"
    )


def _batch_change(old_cfg: dict[str, Any], cfg: TrainConfig, start: int, world: int) -> str | None:
    """A warning when a resume with another ``grad_accum`` changes the batch of a step: the
    data continues at the checkpoint's micro-batch, but each step now averages another number
    of them, so the loss curve does not continue as the checkpointed run's (None when
    grad_accum is the same or nothing is left to train)."""
    old_accum = old_cfg.get("grad_accum")
    if not isinstance(old_accum, int) or old_accum == cfg.grad_accum or start >= cfg.max_steps:
        return None
    per_micro = cfg.micro_batch_size * cfg.seq_len * world
    return (
        f"grad_accum {old_accum} -> {cfg.grad_accum}: a step now takes {cfg.grad_accum} "
        f"micro-batches ({cfg.grad_accum * per_micro:,} tokens a step instead of "
        f"{old_accum * per_micro:,}); the data continues where the checkpoint left it (none "
        "skipped or repeated), but the loss curve does not continue as before (resume with "
        f"--grad-accum {old_accum} to keep it)"
    )


def _warmup_note(cfg: TrainConfig) -> str | None:
    """A warning for a run that ends in its warm-up (``warmup_steps`` > ``max_steps``): it
    never reaches ``lr`` nor decays. Not refused: a short try of a long run's config (as
    ``--max-steps 50``) is one."""
    if cfg.warmup_steps <= cfg.max_steps:
        return None
    last = lr_at(cfg.max_steps - 1, cfg)
    return (
        f"warmup_steps {cfg.warmup_steps} is more than max_steps {cfg.max_steps}: the run ends "
        f"in its warm-up at lr {last:.2e} ({last / cfg.lr:.1%} of lr {cfg.lr:g}), never "
        f"reaching lr nor decaying to min_lr; set --warmup-steps below {cfg.max_steps} "
        f"(e.g. {cfg.max_steps // 10}) for a run of {cfg.max_steps} steps"
    )


def _rng_state(torch: Any) -> dict[str, Any]:
    """This process's RNG states, as tensors and plain values only: a checkpoint is loaded
    with ``torch.load(weights_only=True)``, which refuses numpy objects. numpy's state is
    ``("MT19937", keys, pos, has_gauss, cached_gaussian)``: its uint32 key array becomes a
    list of ints (np.random.set_state takes either)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    st = {
        "python": random.getstate(),
        "numpy": (str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(torch: Any, st: dict[str, Any]) -> None:
    random.setstate(st["python"])
    np.random.set_state(st["numpy"])
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


class _MetricsSink:
    """Rank 0's metrics: a JSON-lines file and/or MLflow (buffered)."""

    def __init__(
        self,
        cfg: TrainConfig,
        resume_run_id: str | None,
        start: int = 0,
        resolved: dict[str, Any] | None = None,
    ) -> None:
        if cfg.metrics_file and start:
            _truncate_metrics_file(cfg.metrics_file, start)
        self.file = _open_metrics_file(cfg.metrics_file) if cfg.metrics_file else None
        self.mlflow: Any = None
        self.run_id: str | None = None
        self._logger: Any = None
        self._pending: list[Any] = []
        self._logged_upto = -1  # steps the MLflow run already has (a resume from an older ckpt)
        self.was_finished = False  # the run we resume had ended FINISHED (model logged)
        if cfg.mlflow and os.environ.get("MLFLOW_TRACKING_URI"):
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
            self.mlflow = require("mlflow", extra="mlops")
            from aistack.mlops._client import mlflow_errors

            run_id = os.environ.get("MLFLOW_RUN_ID") or resume_run_id
            with mlflow_errors("start the MLflow run"):
                if run_id:
                    status = self.mlflow.tracking.MlflowClient().get_run(run_id).info.status
                    self.was_finished = status == "FINISHED"
                    run = self.mlflow.start_run(run_id=run_id)
                else:
                    run = self.mlflow.start_run(run_name=cfg.run_name)
            self.run_id = run.info.run_id
            try:
                with mlflow_errors(f"log the parameters of MLflow run {self.run_id}"):
                    if start and run_id:
                        self._logged_upto = _last_logged_step(self.mlflow, self.run_id)
                    if not resume_run_id:
                        self.mlflow.log_params(run_params(cfg, resolved))
            except BaseException:
                with contextlib.suppress(Exception):
                    self.mlflow.end_run(status="FAILED")
                raise
            try:
                from aistack.mlops.logger import BufferedMetricsLogger

                self._logger = BufferedMetricsLogger(run_id=self.run_id)
            except ImportError:
                self._logger = None

    def log(self, step: int, metrics: dict[str, float | None], *, to_file: bool = True) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None}
        if self.file is not None and to_file:
            self.file.write(json.dumps({"step": step, **clean}) + "\n")
            self.file.flush()
        if self.mlflow is None or step <= self._logged_upto:
            return  # the run has this step already (logged before the crash we resume from)
        if self._logger is not None:
            self._logger.log_many(clean, step=step)
            return
        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self._pending.extend(Metric(k, v, ts, step) for k, v in clean.items())
        if len(self._pending) >= 900:
            self._flush()

    def _flush(self) -> None:
        if self._pending and self.mlflow is not None:
            client = self.mlflow.tracking.MlflowClient()
            for i in range(0, len(self._pending), 1000):
                client.log_batch(self.run_id, metrics=self._pending[i : i + 1000])
            self._pending = []

    def close(self, *, status: str) -> None:
        """Flush and end the MLflow run with ``status``: FINISHED, KILLED (stopped by a signal,
        a re-run resumes it) or FAILED (the trainer raised)."""
        try:
            if self._logger is not None:
                try:
                    self._logger.close()
                except BackendError as exc:  # spooled, not lost: say so and end the run
                    log.error("metrics: %s (%s)", exc, exc.hint)
            self._flush()
        finally:
            if self.file is not None:
                self.file.close()
            if self.mlflow is not None:
                self.mlflow.end_run(status=status)


def run_params(cfg: TrainConfig, resolved: dict[str, Any] | None = None) -> dict[str, str]:
    """The MLflow parameters of a run: the config, with the settings left unset (None) and
    resolved at run time (``vocab_size`` from the shard headers, ``prefetch``,
    ``checkpoint_url``, ``peak_tflops``) replaced by the values the run actually used.
    ``data`` is the comma-joined shard list (at most 500 characters)."""
    params: dict[str, Any] = cfg.model_dump(exclude={"data"})
    for key, value in (resolved or {}).items():
        if params.get(key) is None and value is not None:
            params[key] = value
    params["data"] = ",".join(cfg.data)[:500]
    return {k: str(v) for k, v in params.items()}


def _metrics_file_error(path: str, exc: OSError) -> ValidationError:
    """The error for a ``metrics_file`` that cannot be read or written, saying why in words
    (os.makedirs says "File exists" when a folder on the way is a file)."""
    why = exc.strerror or str(exc)
    if isinstance(exc, IsADirectoryError):
        why = "it is a folder, not a file"
    elif isinstance(exc, FileExistsError | NotADirectoryError):
        up = os.path.dirname(os.path.abspath(path))
        while up != os.path.dirname(up) and not os.path.lexists(up):
            up = os.path.dirname(up)
        if os.path.lexists(up) and not os.path.isdir(up):
            why = f"{up} is a file, not a folder"
    return ValidationError(
        f"metrics_file: cannot write {path}: {why}",
        hint="fix --metrics-file (a writable path)",
        field="metrics_file",
    )


def _open_metrics_file(path: str) -> Any:
    """Open the JSON-lines metrics file for appending (its folder created)."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return open(path, "a")  # noqa: SIM115 - closed by _MetricsSink.close
    except OSError as exc:
        raise _metrics_file_error(path, exc) from None


def _truncate_metrics_file(path: str, start: int) -> None:
    """Keep the lines of steps ``<= start``: the steps after the checkpoint we resume from
    are trained (and written) again."""
    try:
        with open(path) as fh:
            lines = fh.readlines()
    except FileNotFoundError:
        return
    except OSError as exc:  # a folder, a path through a file: an error, not a traceback
        raise _metrics_file_error(path, exc) from None
    keep = []
    for line in lines:
        try:
            if int(json.loads(line)["step"]) > start:
                continue
        except (ValueError, KeyError, TypeError):
            pass
        keep.append(line if line.endswith("\n") else line + "\n")
    if len(keep) != len(lines):
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as fh:
                fh.writelines(keep)
            os.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise _metrics_file_error(path, exc) from None


def _last_logged_step(mlflow: Any, run_id: str) -> int:
    """The highest step of ``loss`` the run has (-1 when none or unknown)."""
    try:
        hist = mlflow.tracking.MlflowClient().get_metric_history(run_id, "loss")
    except Exception as exc:  # noqa: BLE001 - only used to avoid duplicates
        log.debug("could not read the run's loss history: %s", exc)
        return -1
    return max((int(m.step) for m in hist), default=-1)


_SHAPE_KEYS = ("vocab_size", "seq_len", "n_layer", "n_head", "n_embd", "bias")
_OPTIM_KEYS = ("lr", "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip")


def _check_resume(state: dict[str, Any], gcfg_dict: dict[str, Any], loader: Any) -> None:
    """Refuse a checkpoint of another model shape or loader layout before loading it."""
    have = state.get("gpt_config") or {}
    for key in _SHAPE_KEYS:
        if key in have and have[key] != gcfg_dict[key]:
            raise ValidationError(
                f"{key}: the checkpoint's model has {have[key]!r}, this run has {gcfg_dict[key]!r}",
                hint="resume with the same model settings, or start a new run name "
                "(--run-name) or --no-resume",
                field=key,
            )
    loader_state = state.get("loader")
    if loader_state is not None:
        loader.load_state_dict(loader_state)  # refuses another layout, naming the field


def _not_loadable(state: Any, model: Any, opt: Any, gcfg_dict: dict[str, Any] | None) -> str | None:
    """Why ``state`` cannot be loaded into ``model`` and ``opt`` (None when it loads; it is
    then loaded)."""
    if not isinstance(state, dict):
        return f"it is not a checkpoint ({short_repr(state, 60)})"
    have = state.get("gpt_config")
    if gcfg_dict is not None and isinstance(have, dict):
        for key in _SHAPE_KEYS:
            if key in have and have[key] != gcfg_dict[key]:
                return f"its model has {key} {have[key]!r}, this run has {gcfg_dict[key]!r}"
    for key in ("model", "optimizer"):
        if not isinstance(state.get(key), dict):
            return f"it holds no {key} state ('{key}' is {short_repr(state.get(key), 60)})"
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:600]
    return None


def _older_that_loads(
    store: Any, older: list[int], model: Any, opt: Any, gcfg_dict: dict[str, Any] | None
) -> tuple[int | None, list[int]]:
    """The newest of the ``older`` steps whose checkpoint can be read and loaded into this
    model (None when none can), and the steps tried before it that cannot. Only called on
    the way to an error: it loads each candidate into ``model`` and ``opt``."""
    skipped: list[int] = []
    for step in reversed(older):
        try:
            state = store._read(step)
        except Exception as exc:  # noqa: BLE001 - any unreadable file: not a step to name
            log.debug("checkpoint of step %d cannot be read: %s", step, exc)
            skipped.append(step)
            continue
        if _not_loadable(state, model, opt, gcfg_dict) is None:
            return step, skipped
        skipped.append(step)
    return None, skipped


def _load_weights(
    state: dict[str, Any],
    model: Any,
    opt: Any,
    store: Any,
    gcfg_dict: dict[str, Any] | None = None,
) -> None:
    """Load the checkpoint's model and optimizer state: one that is not this trainer's (no
    model or optimizer state, other parameter names or shapes) is a clear error naming the
    file, not torch's KeyError or RuntimeError. Its hint names the newest older checkpoint
    that does load into this model (each is tried), or says that none does."""
    step = state.get("step")
    try:
        path = store.path_for(int(step))  # type: ignore[arg-type]
        older = [s for s in store.steps() if s < int(step)]  # type: ignore[arg-type]
    except (TypeError, ValueError, OSError):
        path, older = f"{store.url} (step {step!r})", []
    problem = _not_loadable(state, model, opt, None)
    if problem is None:
        return
    good, bad = _older_that_loads(store, older, model, opt, gcfg_dict)
    if good is not None:
        also = ""
        if len(bad) == 1:
            also = f" (and the checkpoint of step {bad[0]}, which does not load either)"
        elif bad:
            also = (
                f" (and the checkpoints of steps {_shown_steps(sorted(bad))}, which do not "
                "load either)"
            )
        how = (
            f"move {path}{also} out of the folder to resume from step {good} (the newest "
            "older checkpoint that loads), or start a new run: another --run-name, or "
            "--no-resume"
        )
    elif older:
        how = (
            f"none of the older checkpoints (steps {_shown_steps(older)}) loads into this "
            "model either: start a new run: another --run-name, or --no-resume (moves them "
            "aside)"
        )
    else:
        how = "start a new run: another --run-name, or --no-resume (moves it aside)"
    raise ValidationError(
        f"checkpoint: {path} is not a checkpoint of this model and trainer: {problem}",
        hint=how,
        field="checkpoint_url",
    )


def _env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValidationError(
            f"{name}: the environment variable is {short_repr(raw)}, not a whole number "
            f"≥ {minimum}",
            hint="unset it for one process, or start the trainer with torchrun or an aistack "
            "'distributed: torch' job",
            field=name,
        )
    return value


def _stop_grace_s() -> float | None:
    """The seconds between the SIGTERM of a cancel or preemption and the SIGKILL after it
    (``AISTACK_GRACE_S``, set by the server for its jobs), or None outside aistack or when
    it is no positive finite number (then nothing is compared with it)."""
    try:
        v = float(os.environ.get("AISTACK_GRACE_S", ""))
    except ValueError:
        return None
    return v if 0 < v < math.inf else None


def _grace_too_short(ckpt_s: float, step_s: float, grace_s: float, step: int) -> str | None:
    """The warning for a checkpoint (``ckpt_s`` seconds to write) that, after up to a step's
    work (``step_s``: a SIGTERM is seen between micro-batches; the checkpoint follows), would
    not be written within the stop grace period ``grace_s``; None when it would be."""
    need = ckpt_s + step_s
    if need <= grace_s:
        return None
    return (
        f"the checkpoint at step {step} took {ckpt_s:.2f} s to write and a step takes "
        f"{step_s:.2f} s: a SIGTERM (cancel, preemption) is followed by SIGKILL {grace_s:g} s "
        f"later (AISTACK_GRACE_S), so the checkpoint it asks for may not be written and the "
        f"job would restart from the one before; give the server a grace period of at least "
        f"{math.ceil(need * 1.5)} s (AISTACK_CANCEL_GRACE_S) or make checkpoints smaller"
    )


SIGNAL_HOOK_ENV = "AISTACK_TRAIN_SIGNAL_AT_STEP"

# DDP: the SIGTERM flag is all-reduced within a step about every _TERM_CHECK_S seconds of
# micro-batches (every _TERM_CHECK_FIRST micro-batches in the first step, before any timing)
_TERM_CHECK_S = 0.1
_TERM_CHECK_FIRST = 8


def _loader_state_at(loader: Any, pos: tuple[int, int]) -> dict[str, Any]:
    """The loader's state with its position set back to ``pos`` (epoch, batch)."""
    st = loader.state_dict()
    st["epoch"], st["batch"] = pos
    st["batches_yielded"] = pos[0] * loader.batches_per_epoch + pos[1]
    return st


def _signal_hook(grad_accum: int = 1) -> tuple[int, int | None, int]:
    """The test hook ``AISTACK_TRAIN_SIGNAL_AT_STEP``: ``N`` sends SIGTERM to this process
    after step N, ``N:USR1`` sends SIGUSR1, ``N:TERM`` SIGTERM; ``N.M`` sends it during step
    N + 1, after its M-th micro-batch (1 ≤ M < ``grad_accum``), and ``N.0`` before its first
    one (after step N's end and its checkpoint: as a signal that came while the checkpoint
    was written); unset, empty or 0: none. Returns ``(N, M, signal)`` (M None: after the
    step). Anything else is an error naming the variable (it was int()'s ValueError)."""
    raw = os.environ.get(SIGNAL_HOOK_ENV, "").strip()
    if not raw:
        return 0, None, signal.SIGTERM
    at, _, name = raw.partition(":")
    step_s, dot, micro_s = at.strip().partition(".")
    sigs = {"": signal.SIGTERM, "TERM": signal.SIGTERM, "INT": signal.SIGINT,
            "USR1": signal.SIGUSR1}  # fmt: skip
    sig_name = name.strip().upper().removeprefix("SIG")
    try:
        step = int(step_s.strip())
        micro = int(micro_s.strip()) if dot else 0
    except ValueError:
        step = micro = -1
    if step < 0 or (dot and not 0 <= micro < grad_accum) or sig_name not in sigs:
        raise ValidationError(
            f"{SIGNAL_HOOK_ENV}: the environment variable is {short_repr(raw)}, not a step "
            "number ≥ 0, optionally followed by '.M' (after micro-batch M of the next step, "
            f"0 ≤ M < grad_accum {grad_accum}; 0: before its first) and ':USR1', ':TERM' or ':INT'",
            hint=f"unset {SIGNAL_HOOK_ENV} (a test hook), or set it to e.g. 7 (SIGTERM after "
            "step 7), 3:USR1 (SIGUSR1 after step 3) or 2.5 (SIGTERM after the 5th "
            "micro-batch of step 3)",
            field=SIGNAL_HOOK_ENV,
        )
    return step, (micro if dot else None), sigs[sig_name]


def _check_tokens(cfg: TrainConfig, loader: Any) -> int:
    """The model's vocabulary size; refuses ids the embedding could not hold."""
    vocab = cfg.vocab_size or loader.vocab_size
    if not vocab:
        raise ValidationError("vocab_size: not in the shard headers", hint="set vocab_size")
    if cfg.vocab_size and loader.vocab_size and cfg.vocab_size < loader.vocab_size:
        over = [
            os.path.basename(src)
            for src, s in zip(loader.sources, loader.shards, strict=True)
            if (s.vocab_size or 0) > cfg.vocab_size
        ]
        shown = ", ".join(over[:5]) + (f" and {len(over) - 5} more" if len(over) > 5 else "")
        raise ValidationError(
            f"vocab_size: {cfg.vocab_size} is smaller than the data's vocabulary "
            f"({loader.vocab_size}, from the shard headers; {len(over)} of "
            f"{len(loader.shards)} shards say more than {cfg.vocab_size}: {shown})",
            hint=f"set --vocab-size to at least {loader.vocab_size}, or leave it unset",
            field="vocab_size",
        )
    _check_one_vocabulary(cfg, loader)
    if cfg.eos_id is not None and cfg.eos_id >= vocab:
        raise ValidationError(
            f"eos_id: {cfg.eos_id} is not below vocab_size {vocab}",
            hint=f"use the tokenizer's end-of-text id (below {vocab}), or set --vocab-size "
            f"to at least {cfg.eos_id + 1}",
            field="eos_id",
        )
    return int(vocab)


def _check_one_vocabulary(cfg: TrainConfig, loader: Any) -> None:
    """Shards whose headers give different vocab sizes are refused unless ``vocab_size`` is
    set; with it set, they are trained together with a warning.

    Why refuse rather than warn: the web-data pipeline writes its tokenizer's vocabulary
    size into each shard header, so two sizes almost always mean two tokenizers, and the same
    id then stands for different text in different shards. A model trained on that mix is
    quietly worse for both, and nothing later shows why; a warning is one line in the log of
    a long (and costly) job. The one case where such shards belong together, a tokenizer
    extended with added tokens (its old shards say the smaller size, and their ids mean the
    same), is a deliberate choice its user makes by setting ``--vocab-size`` (at least the
    largest header's, checked above)."""
    by_vocab: dict[int, list[str]] = {}
    for src, shard in zip(loader.sources, loader.shards, strict=True):
        if shard.vocab_size:
            by_vocab.setdefault(int(shard.vocab_size), []).append(str(src))
    if len(by_vocab) < 2:
        return
    parts = []
    for size, names in sorted(by_vocab.items())[:4]:
        more = f" and {len(names) - 1} more shard(s)" if len(names) > 1 else ""
        parts.append(f"{names[0]}{more} say {size:,}")
    if len(by_vocab) > 4:
        parts.append(f"{len(by_vocab) - 4} more sizes")
    said = "; ".join(parts)
    if cfg.vocab_size:
        log.warning(
            "data: the shard headers give %d vocabulary sizes (%s); training them as one "
            "vocabulary of %d ids because vocab_size is set",
            len(by_vocab),
            said,
            cfg.vocab_size,
        )
        return
    largest = max(by_vocab)
    raise ValidationError(
        f"data: the shards were tokenized with different vocabularies: {said} (vocab_size "
        "in their headers); the same token id would mean different text in different shards",
        hint="tokenize all the data with one tokenizer (aistack webdata run --fresh), or leave "
        "out the shards of the other one; if their ids do mean the same (a tokenizer extended "
        f"with added tokens), set --vocab-size {largest} (or more) to train on them together",
        field="data",
    )


def _bad_ids_error(x: Any, y: Any, vocab: int, loader: Any, step: int) -> ValidationError:
    """The error for a batch holding a token id the model cannot embed (id ≥ ``vocab``),
    naming the shard(s) it came from. Only called once such an id is seen: it gathers the
    batch's windows again to find them (the loader's position is right after that batch)."""
    hi = max(int(x.max()), int(y[:, -1].max()))
    where = "the data (" + ", ".join(str(d) for d in loader.sources[:3]) + ")"
    header = ""
    try:
        epoch, batch = loader.epoch, loader.batch - 1
        ids = np.sort(np.asarray(loader.window_ids(epoch, batch)))
        rows = loader.gather(ids)
        bad = ids[rows.max(axis=1) >= vocab]
        which = sorted(set(loader.shard_of(bad).tolist()))
        if which:
            names = [str(loader.sources[i]) for i in which]
            where = ("shard " if len(names) == 1 else "shards ") + ", ".join(names[:5])
            if len(names) > 5:
                where += f" and {len(names) - 5} more"
            vocabs = sorted({loader.shards[i].vocab_size for i in which} - {None})
            if vocabs:
                said = ", ".join(str(v) for v in vocabs)
                header = f" (header vocab_size {said})"
    except Exception as exc:  # noqa: BLE001 - the data paths are named instead
        log.debug("could not find the shard of the bad batch: %s", exc)
    return ValidationError(
        f"data: token id {hi:,} in the batch of step {step} is not below the model's "
        f"vocab_size {vocab:,} (the embedding has ids 0..{vocab - 1:,}); it comes from "
        f"{where}{header}",
        hint="the shards hold ids the model cannot embed: tokenize the data again with the "
        "tokenizer the run uses (aistack webdata run --fresh), or, if the ids are right, set "
        f"--vocab-size to at least {hi + 1:,}",
        field="vocab_size",
    )


def _diverged(
    what: str, step: int, lr: float, cfg: TrainConfig, last_ckpt: str | None, start: int
) -> ValidationError:
    """The error that stops a run whose loss or weights became NaN/inf (nothing is saved)."""
    if last_ckpt:
        kept = f"the last checkpoint ({last_ckpt}) was written before; a re-run resumes from it"
    elif start:
        kept = f"the checkpoint of step {start} this run resumed from is kept"
    else:
        kept = "no checkpoint was written"
    return ValidationError(
        f"lr: training diverged at step {step}: {what} (lr {lr:.3g}); nothing of this step "
        f"was saved, {kept}",
        hint=f"lower --lr (now {cfg.lr:g}), raise --warmup-steps (now {cfg.warmup_steps}) or "
        "set --grad-clip, or use a new --run-name to start over with other settings",
        field="lr",
    )


def _human_count(n: float) -> str:
    """``124.4M``, ``1.2T``, ``7.9e+15`` (a count in words a reader takes in at once)."""
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:,.1f}{unit}" if n < 1e3 * 1e12 else f"{n:.1e}"
    return f"{int(n)}"


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def _memory_for_training(torch: Any, use_cuda: bool, device: Any) -> tuple[int, int, str]:
    """(bytes free now, bytes in all, where) of the memory the model will be trained in: the
    GPU's (``torch.cuda.mem_get_info``) or this machine's (psutil)."""
    if use_cuda:
        free, total = torch.cuda.mem_get_info(device)
        return int(free), int(total), f"the GPU {device} ({torch.cuda.get_device_name(device)})"
    import psutil

    vm = psutil.virtual_memory()
    return int(vm.available), int(vm.total), "this machine"


def _gpt_config(cfg: TrainConfig, vocab_size: int) -> Any:
    """The model's shape from the run's config, at ``vocab_size``."""
    from aistack.train.model import GPTConfig

    return GPTConfig(
        vocab_size=vocab_size,
        seq_len=cfg.seq_len,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
        dropout=cfg.dropout,
        bias=cfg.bias,
    )


# DDP (gradient_as_bucket_view off, its default) keeps its all-reduce buckets beside the
# gradients: another fp32 copy of them
DDP_BUCKET_BYTES_PER_PARAM = 4


def _check_model_fits(
    gcfg: Any,
    torch: Any,
    use_cuda: bool,
    device: Any,
    *,
    micro_batch_size: int | None = None,
    bf16: bool = False,
    ddp: bool = False,
    local_ranks: int = 1,
) -> None:
    """Refuse, before anything is allocated, a run that cannot fit in the device's free
    memory: building and training it would be killed by the OOM killer (or a CUDA
    out-of-memory error) after minutes of initialisation, or swap the machine to a halt.

    First the model alone: its weights, gradients and AdamW state (16 bytes a parameter;
    20 under DDP, whose all-reduce buckets hold another copy of the gradients). Then, given
    ``micro_batch_size``, those plus a lower bound of one micro-batch's activations
    (:func:`aistack.train.model.activation_terms`: the logits and their gradient, the inputs
    each block keeps for backward), so a huge ``micro_batch_size`` or ``seq_len`` is refused
    too, naming them. On the CPU the ``local_ranks`` processes of this machine share its
    memory: each rank is checked against its share. Both counts are lower bounds: a run that
    passes may still not fit; one that fails cannot."""
    from aistack.train.model import TRAIN_BYTES_PER_PARAM, activation_terms, param_terms

    terms = param_terms(gcfg)
    n_params = sum(n for _, _, n in terms)
    per_param = TRAIN_BYTES_PER_PARAM + (DDP_BUCKET_BYTES_PER_PARAM if ddp else 0)
    need = per_param * n_params
    free, total, where = _memory_for_training(torch, use_cuda, device)
    if not use_cuda and local_ranks > 1:
        # every rank on this machine reads the same free memory before any of them allocates
        free //= local_ranks
        where = f"{where} (its {local_ranks} ranks' share each)"
    terms.sort(key=lambda t: -t[2])
    big = [t for t in terms if t[2] * 2 >= terms[0][2]]
    fields = list(dict.fromkeys(f for t in big for f in t[0]))
    state_is = "weights, gradients and AdamW state" + (" and DDP buckets" if ddp else "")
    if need > free:
        parts = ", ".join(f"{what}: {_human_count(n)}" for _, what, n in big)
        fits = max(free // per_param, 0)
        raise ValidationError(
            f"{', '.join(fields)}: this model has {_human_count(n_params)} parameters ({parts}); "
            f"training it needs at least {_gib(need)} for {state_is} "
            f"({per_param} bytes a parameter, activations not counted), and "
            f"{where} has {_gib(free)} free ({_gib(total)} in all)",
            hint=f"lower {' / '.join(fields)} to a model of at most about {_human_count(fits)} "
            "parameters, or train on a machine (GPU) with more memory",
            field=fields[0],
            fields=fields,
            n_params=n_params,
            need_bytes=need,
            free_bytes=free,
        )
    if not micro_batch_size:
        return
    acts = activation_terms(gcfg, micro_batch_size, bf16=bf16)
    act = sum(n for _, _, n in acts)
    if need + act <= free:
        return
    # what the memory goes to, largest first: the activation parts and the model's state
    parts_all = [*acts, (tuple(fields), state_is, need)]
    parts_all.sort(key=lambda t: -t[2])
    top = [t for t in parts_all if t[2] * 2 >= parts_all[0][2]]
    named = list(dict.fromkeys(f for t in top for f in t[0]))
    per_sample = act / micro_batch_size
    fit_batch = int((free - need) // per_sample) if free > need else 0
    if fit_batch >= 1:
        hint = (
            f"lower micro_batch_size to at most {fit_batch:,} (and raise grad_accum to keep "
            f"the tokens per step), or lower {' / '.join(f for f in named if f != 'micro_batch_size')}"
            if len(named) > 1
            else f"lower micro_batch_size to at most {fit_batch:,} (and raise grad_accum to "
            "keep the tokens per step)"
        )
    else:
        others = [f for f in named if f != "micro_batch_size"] or ["seq_len"]
        hint = (
            f"even micro_batch_size 1 does not fit: lower {' / '.join(others)}, or train on "
            "a machine (GPU) with more memory"
        )
    parts = "; ".join(f"{what}: {_gib(n)}" for _, what, n in acts)
    raise ValidationError(
        f"{', '.join(named)}: one micro-batch (micro_batch_size {micro_batch_size:,} × "
        f"seq_len {gcfg.seq_len:,}) needs at least {_gib(act)} of activations ({parts}) on "
        f"top of {_gib(need)} for the {state_is} of "
        f"{_human_count(n_params)} parameters: {_gib(need + act)} in all, and {where} has "
        f"{_gib(free)} free ({_gib(total)} in all)",
        hint=hint,
        field=named[0],
        fields=named,
        n_params=n_params,
        need_bytes=need + act,
        activation_bytes=act,
        free_bytes=free,
    )


def _check_tokenizer(cfg: TrainConfig) -> None:
    if cfg.tokenizer and "://" not in cfg.tokenizer and not os.path.isfile(cfg.tokenizer):
        raise ValidationError(
            f"tokenizer: {cfg.tokenizer} does not exist",
            hint="fix the path or drop --tokenizer",
            field="tokenizer",
        )


def tokenizer_digest(path: str) -> str:
    """sha256 of a tokenizer file: of its JSON with sorted keys and no whitespace when it is
    JSON (a tokenizer saved again, reformatted, is the same tokenizer), else of its bytes."""
    import hashlib

    with open(path, "rb") as fh:
        raw = fh.read()
    try:
        raw = json.dumps(
            json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _check_tokenizer_pairing(cfg: TrainConfig, loader: Any) -> str | None:
    """The digest of the tokenizer this run's ids come from (None when unknown), after
    refusing a pairing that two tokenizers of one vocabulary size would otherwise hide: the
    shard headers record only the size, so the web-data pipeline's ``tokenizer.json`` beside
    the shards is what tells them apart.

    * shards in folders whose ``tokenizer.json`` files differ: the same id is other text in
      each (field ``data``);
    * ``--tokenizer`` another file than the data's ``tokenizer.json``: the model would be
      logged with a tokenizer that reads its ids as other text (field ``tokenizer``).

    Local files only (a remote data folder or tokenizer URL is not read here)."""
    by_digest: dict[str, list[str]] = {}
    for folder in dict.fromkeys(os.path.dirname(str(src)) for src in loader.sources):
        if "://" in folder:
            continue
        tok = os.path.join(folder, "tokenizer.json")
        if not os.path.isfile(tok):
            continue
        try:
            by_digest.setdefault(tokenizer_digest(tok), []).append(tok)
        except OSError as exc:
            log.debug("the data's tokenizer %s cannot be read: %s", tok, exc)
    if len(by_digest) > 1:
        said = "; ".join(f"{files[0]} ({d[:19]}…)" for d, files in list(by_digest.items())[:4])
        raise ValidationError(
            f"data: the shards come from folders with different tokenizers ({said}): the "
            "shard headers give one vocabulary size, but the same token id means different "
            "text in different shards",
            hint="tokenize all the data with one tokenizer (aistack webdata run --fresh), or "
            "leave out the folders of the other one",
            field="data",
        )
    data_digest, data_files = next(iter(by_digest.items()), (None, []))
    if not cfg.tokenizer or "://" in cfg.tokenizer:
        return data_digest
    try:
        mine = tokenizer_digest(cfg.tokenizer)
    except OSError as exc:
        raise ValidationError(
            f"tokenizer: cannot read {cfg.tokenizer}: {exc.strerror or exc}",
            hint="fix the path or drop --tokenizer",
            field="tokenizer",
        ) from None
    if data_digest is not None and mine != data_digest:
        raise ValidationError(
            f"tokenizer: {cfg.tokenizer} ({mine[:19]}…) is not the tokenizer the data was "
            f"made with ({data_files[0]}, {data_digest[:19]}…); the model would be logged with "
            "a tokenizer that reads its token ids as other text",
            hint=f"pass --tokenizer {data_files[0]}, or tokenize the data again with "
            f"{cfg.tokenizer}",
            field="tokenizer",
        )
    return mine


def _check_resume_tokenizer(state: dict[str, Any], digest: str | None) -> None:
    """Refuse a checkpoint trained on ids of another tokenizer (same vocabulary size: the
    model shape check cannot tell); a checkpoint or run without a known tokenizer passes."""
    have = state.get("tokenizer_sha256")
    if isinstance(have, str) and digest is not None and have != digest:
        raise ValidationError(
            f"tokenizer: the checkpoint's model was trained with tokenizer {have[:19]}…, this "
            f"run's data and --tokenizer are {digest[:19]}… (same vocabulary size, other "
            "tokens): resuming would train its embeddings on ids that mean other text",
            hint="resume with the tokenizer (and data) the run was started with, or start a "
            "new run: another --run-name, or --no-resume",
            field="tokenizer",
        )


def _check_register_as(cfg: TrainConfig) -> None:
    """A ``register_as`` name the registry would refuse fails now, not after training; so
    does one that nothing would register (``--no-mlflow``, ``--no-save-model``), and one
    without ``MLFLOW_TRACKING_URI`` is warned about (the run trains, nothing is registered)."""
    if not cfg.register_as:
        return
    off = [flag for flag, on in (("--no-mlflow", cfg.mlflow), ("--no-save-model", cfg.save_model))
           if not on]  # fmt: skip
    if off:
        raise ValidationError(
            f"register_as: {cfg.register_as!r} would never be registered: {' and '.join(off)} "
            f"turn{'s' if len(off) == 1 else ''} off the MLflow model it is registered from",
            hint=f"drop --register-as, or drop {' and '.join(off)}",
            field="register_as",
        )
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        if int(os.environ.get("RANK", "0") or "0") == 0:
            log.warning(
                "register_as %r: MLFLOW_TRACKING_URI is not set, so nothing is logged to MLflow "
                "and no model will be registered (run as an aistack job, or set "
                "MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN)",
                cfg.register_as,
            )
        return  # nothing is logged, nothing registered
    try:
        from aistack.mlops.registry import check_registered_name
    except ImportError:  # plain MLflow registers (see _register)
        return
    check_registered_name(cfg.register_as)


def _register(run_id: str | None, name: str, model_uri: str) -> str:
    """Register the logged model: through aistack.mlops (copies job/project/git tags onto
    the version) when present, else plain mlflow.register_model."""
    try:
        from aistack.mlops.registry import register_from_run
    except ImportError:
        import mlflow

        return str(mlflow.register_model(model_uri, name).version)
    return str(register_from_run(str(run_id), name, "model")["version"])


def _undo_setup(
    old: dict[Any, Any], loader: Any, sink: _MetricsSink | None, *, killed: bool
) -> None:
    """After a failed set-up: close what it opened (the loader, the metrics sink: its MLflow
    run ends FAILED, or KILLED after a Ctrl-C) and put back the signal handlers ``old``,
    whatever closing raises."""
    try:
        if loader is not None:
            loader.close()
        if sink is not None:
            sink.close(status="KILLED" if killed else "FAILED")
    except Exception as exc:  # noqa: BLE001 - the set-up's own error is the one to raise
        log.debug("closing after a failed set-up: %s", exc)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def train(cfg: TrainConfig) -> TrainResult:
    """Run (or resume) training as configured; returns when done or stopped by a signal."""
    _check_tokenizer(cfg)
    _check_register_as(cfg)
    torch = require("torch", extra="train")
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from aistack.train.checkpoint import CheckpointStore, run_checkpoint_url
    from aistack.train.flops import peak_flops
    from aistack.train.loader import ShardLoader, _is_remote
    from aistack.train.model import GPT, flops_per_token

    world = _env_int("WORLD_SIZE", 1, minimum=1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    # the ranks on this machine (torchrun and aistack's launcher set it): on the CPU they share
    # its memory
    local_ranks = min(_env_int("LOCAL_WORLD_SIZE", 1, minimum=1), world)
    signal_at, hook_micro, hook_sig = _signal_hook(cfg.grad_accum)
    if rank >= world:
        raise ValidationError(
            f"RANK: {rank} is not below WORLD_SIZE {world}",
            hint="start the trainer with torchrun or an aistack 'distributed: torch' job, "
            "which set RANK, LOCAL_RANK and WORLD_SIZE",
            field="RANK",
        )
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    if use_cuda and not 0 <= local_rank < torch.cuda.device_count():
        raise ValidationError(
            f"device: cuda asked for, but this process sees {torch.cuda.device_count()} CUDA "
            f"GPU(s) (LOCAL_RANK {local_rank})",
            hint="check CUDA_VISIBLE_DEVICES and the driver, or use --device cpu",
            field="device",
        )
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        device = torch.device("cpu")
    distributed = world > 1
    if distributed and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", device_id=device if use_cuda else None
        )
    bf16 = cfg.dtype == "bfloat16" or (cfg.dtype == "auto" and use_cuda)
    autocast = (
        torch.autocast(device_type=device.type, dtype=torch.bfloat16)
        if bf16
        else contextlib.nullcontext()
    )

    # before the loader when it would be slow (remote shards are downloaded first) or the
    # vocabulary is known: the model and a micro-batch, at the vocabulary the config gives or
    # else the smallest it allows (the shard headers give the real one: checked again below,
    # where local shards are only opened), so a huge seq_len, micro_batch_size or width is
    # refused at once
    def check_fits(gcfg: Any) -> None:
        _check_model_fits(
            gcfg,
            torch,
            use_cuda,
            device,
            micro_batch_size=cfg.micro_batch_size,
            bf16=bf16,
            ddp=world > 1,
            local_ranks=local_ranks,
        )

    if cfg.vocab_size or any(_is_remote(d) for d in cfg.data):
        check_fits(_gpt_config(cfg, cfg.vocab_size or max(2, (cfg.eos_id or 0) + 1)))

    # Python runs signal handlers in the main thread only (signal.signal raises elsewhere):
    # a train() called from another thread (a notebook's background thread) trains without
    # them
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main and rank == 0:
        log.warning(
            "train() runs outside the main thread: SIGTERM, SIGINT and SIGUSR1 do not "
            "checkpoint it (Python handles signals in the main thread only)"
        )
    stoppers = (signal.SIGTERM, signal.SIGUSR1) if in_main else ()
    old = {s: signal.signal(s, _on_signal) for s in stoppers}
    _SIGNALS.clear()
    loader: Any = None
    sink: _MetricsSink | None = None
    try:
        loader_prefetch = cfg.prefetch if cfg.prefetch is not None else (2 if use_cuda else 0)
        loader = ShardLoader(
            cfg.data,
            seq_len=cfg.seq_len,
            batch_size=cfg.micro_batch_size,
            seed=cfg.seed,
            rank=rank,
            world_size=world,
            pin_memory=use_cuda,
            eos_id=cfg.eos_id,
            prefetch=loader_prefetch,
        )
        vocab = _check_tokens(cfg, loader)
        tok_digest = _check_tokenizer_pairing(cfg, loader)
        gcfg = _gpt_config(cfg, vocab)
        check_fits(gcfg)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed + rank)
        np.random.seed((cfg.seed + rank) % 2**32)  # numpy's seeds stop at 2**32 - 1
        model = GPT(gcfg).to(device)
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
            betas=(cfg.beta1, cfg.beta2),
            fused=use_cuda,
        )
        store = CheckpointStore(
            cfg.checkpoint_url or run_checkpoint_url(cfg.run_name),
            keep=cfg.keep_checkpoints,
            trust=True if cfg.trust_checkpoints else None,  # else AISTACK_TRUST_CHECKPOINTS
        )
        store.check_writable()
        if not cfg.resume and rank == 0:
            moved = store.archive()
            if moved:
                log.warning(
                    "--no-resume: the earlier checkpoints of %s were moved to %s",
                    cfg.run_name,
                    moved,
                )
        start = 0
        resumed_from: int | None = None
        mlflow_run_id: str | None = None
        carried_loss: float | None = None  # the last logged loss of the run we resume
        state = store.load() if cfg.resume else None
        if state is not None:
            _check_resume_tokenizer(state, tok_digest)
            _check_resume(state, gcfg.to_dict(), loader)
            _load_weights(state, model, opt, store, gcfg.to_dict())
            rngs = state.get("rng") or []
            if len(rngs) == world:
                _set_rng_state(torch, rngs[rank])
            start = resumed_from = int(state["step"])
            mlflow_run_id = state.get("mlflow_run_id")
            carried_loss = state.get("last_loss")
            if rank == 0:
                log.info("resumed %s from step %d (%s)", cfg.run_name, start, store.url)
                old_cfg = state.get("config") or {}
                changed = [k for k in _OPTIM_KEYS if k in old_cfg and old_cfg[k] != getattr(cfg, k)]
                if changed:
                    log.warning(
                        "resumed with other settings than the checkpoint's: %s (the optimizer "
                        "state is the checkpoint's; use a new --run-name to start over)",
                        ", ".join(f"{k} {old_cfg[k]!r} -> {getattr(cfg, k)!r}" for k in changed),
                    )
                schedule_note = _schedule_change(old_cfg, cfg, start)
                if schedule_note:
                    log.warning("%s", schedule_note)
                batch_note = _batch_change(old_cfg, cfg, start, world)
                if batch_note:
                    log.warning("%s", batch_note)
                if start >= cfg.max_steps:
                    log.warning(
                        "run %s is already at step %d (max_steps %d): nothing to train; use a new "
                        "--run-name or --no-resume to train again",
                        cfg.run_name,
                        start,
                        cfg.max_steps,
                    )
        del state
        if resumed_from is None:  # same weights on every rank above; per-rank dropout RNG below
            torch.manual_seed(cfg.seed * 1000 + rank)

        n_params = model.num_params()
        fpt = flops_per_token(gcfg, n_params)
        peak = (
            cfg.peak_tflops * 1e12
            if cfg.peak_tflops
            else (peak_flops(torch.cuda.get_device_name(device)) if use_cuda else None)
        )
        train_model: Any = model
        if cfg.compile:
            train_model = torch.compile(model)
        if distributed:
            train_model = DDP(train_model, device_ids=[local_rank] if use_cuda else None)

        resolved = {
            "vocab_size": vocab,
            "eos_id": loader.eos_id,
            "prefetch": loader_prefetch,
            "checkpoint_url": store.url,
            "peak_tflops": peak / 1e12 if peak else None,
        }
        sink = _MetricsSink(cfg, mlflow_run_id, start, resolved) if rank == 0 else None
        warmup_note = _warmup_note(cfg) if start < cfg.max_steps else None
        if rank == 0 and warmup_note:
            log.warning("%s", warmup_note)
        if rank == 0:
            log.info(
                "training %s: %.2fM parameters, %d rank(s), %d tokens/step, device %s%s",
                cfg.run_name,
                n_params / 1e6,
                world,
                cfg.tokens_per_step * world,
                device,
                ", bf16" if bf16 else "",
            )

        def save(
            step_done: int, loader_state: dict[str, Any] | None = None, rng: Any = None
        ) -> str | None:
            # loader_state, rng: those of the end of step_done when the loader and the RNGs have
            # moved on since (a step abandoned part-way by SIGTERM); else the current ones
            # weights that are NaN/inf (an update from non-finite gradients) are never written:
            # they would replace, and prune, the good checkpoints (the same on every rank)
            if not bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all()):
                raise _diverged(
                    "the model's weights are not finite", step_done, lr_at(step_done - 1, cfg), cfg,
                    last_ckpt, start,
                )  # fmt: skip
            t_save = time.perf_counter()
            if rng is None:
                rng = _rng_state(torch)
            rngs: list[Any] = [None] * world
            if distributed:
                dist.all_gather_object(rngs, rng)
            else:
                rngs = [rng]
            path = None
            if rank == 0:
                path = store.save(
                    step_done,
                    {
                        "step": step_done,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "loader": loader_state if loader_state is not None else loader.state_dict(),
                        "rng": rngs,
                        "config": cfg.model_dump(),
                        "gpt_config": gcfg.to_dict(),
                        "tokenizer_sha256": tok_digest,
                        "world_size": world,
                        "mlflow_run_id": sink.run_id if sink else None,
                        "last_loss": losses[-1] if losses else carried_loss,
                    },
                )
            if distributed:
                dist.barrier()
            saved[0] = step_done
            save_s[0] = time.perf_counter() - t_save
            return path

        def term_agreed() -> str | None:
            """The stop signal (SIGTERM, SIGINT) to abandon the step for, None to go on: in DDP,
            one that any rank has, the same on every rank (every rank calls this at the same
            micro-batches, so the all-reduces pair up)."""
            have = _stop_flags(_SIGNALS)
            if distributed:
                flag = torch.tensor(have, device=device)
                dist.all_reduce(flag)
                have = flag.tolist()
            return _first_stop(have)

        losses: list[float] = []
        last_ckpt: str | None = None
        saved = [resumed_from]  # the step whose checkpoint is the latest written (or loaded)
        save_s = [0.0]  # seconds the latest checkpoint took (all ranks, to the barrier after it)
        grace_s = _stop_grace_s()
        grace_warned = False  # said once per run that the grace period is shorter than a save
        # micro-batches between two SIGTERM checks within a step: every one in a single process
        # (a list lookup); in DDP, each check is an all-reduce, spaced about _TERM_CHECK_S apart
        # from the previous step's time per micro-batch (the same all-reduced value on every rank)
        term_every = 1 if not distributed else _TERM_CHECK_FIRST
        after_save = False  # the last step ended with a checkpoint
        stopped_by: str | None = None
        tps = mfu = None
        step = start
        if sink is not None and carried_loss is not None and start >= cfg.max_steps:
            # resumed at the end (a re-run of a finished job): the run still gets its final loss,
            # so promotion gates on `loss` can read it
            sink.log(start, {"loss": float(carried_loss)}, to_file=False)
        end_status = "FAILED"  # unless the body below completes
        # SIGINT (Ctrl-C, a job's stop_signal) stops as SIGTERM does from here on (before, there
        # is no step to checkpoint: it raises KeyboardInterrupt); an ignored one stays ignored
        if in_main and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            old[signal.SIGINT] = signal.signal(signal.SIGINT, _on_signal)
    except BaseException as exc:
        # the set-up failed (a bad config, missing data, a model that does not build): an
        # in-process caller (a notebook, a test) gets its own signal handlers back
        _undo_setup(old, loader, sink, killed=isinstance(exc, KeyboardInterrupt))
        raise
    try:
        train_model.train()
        while step < cfg.max_steps:
            t0 = time.perf_counter()
            lr = lr_at(step, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            loss_acc = torch.zeros((), device=device)
            data_s = 0.0  # host time spent getting batches: the loader keeps up when it is ~0
            # where a SIGTERM part-way through this step rewinds to: the loader position and
            # the RNGs (dropout) at its start; the model and optimizer have not moved yet
            step_pos = (loader.epoch, loader.batch)
            step_rng = _rng_state(torch) if cfg.grad_accum > 1 else None
            abandoned_at: int | None = None
            for micro in range(cfg.grad_accum):
                if hook_micro is not None and micro == hook_micro and step == signal_at:
                    os.kill(os.getpid(), hook_sig)  # test hook: mid-step, this rank only
                # before the first micro-batch too: a SIGTERM that came during the last step's
                # end (its checkpoint) is not left for a whole step (grad_accum 1 had no check
                # within a step); in DDP only after a checkpoint (every rank writes at the same
                # steps), so a step costs no all-reduce more
                if ((micro % term_every == 0) if micro else (not distributed or after_save)) and (
                    stop_sig := term_agreed()
                ):
                    abandoned_at = micro
                    break
                td = time.perf_counter()
                x, y = loader.next_batch()
                # on the host, before the device sees them: an id past the embedding would be
                # an IndexError on CPU and a device-side assert (a dead process) on GPU. x and
                # the last column of y are every token of the batch (a few µs per micro-batch)
                if max(int(x.max()), int(y[:, -1].max())) >= vocab:
                    raise _bad_ids_error(x, y, vocab, loader, step + 1)
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                data_s += time.perf_counter() - td
                sync_ctx = (
                    train_model.no_sync()
                    if distributed and micro < cfg.grad_accum - 1
                    else contextlib.nullcontext()
                )
                with sync_ctx, autocast:
                    _, loss = train_model(x, y)
                    loss = loss / cfg.grad_accum
                loss.backward()
                loss_acc += loss.detach()
            if abandoned_at is not None:
                # SIGTERM within the step: its gradients are dropped (the optimizer has not
                # stepped, so model and optimizer are those of the last completed step), and
                # the checkpoint of that step says where its data started, so a resume
                # replays the dropped micro-batches
                opt.zero_grad(set_to_none=True)
                stopped_by = stop_sig
                if saved[0] != step and step > 0:
                    last_ckpt = save(step, _loader_state_at(loader, step_pos), step_rng)
                elif step > 0 and last_ckpt is None and rank == 0:
                    last_ckpt = store.path_for(step)  # the checkpoint this run resumed from
                if rank == 0:
                    log.warning(
                        "%s: %s; stopping (step %d dropped after %d of its %d "
                        "micro-batches)",
                        stopped_by,
                        f"checkpoint at step {step} saved" if step else "no step to checkpoint",
                        step + 1, abandoned_at, cfg.grad_accum,
                    )  # fmt: skip
                break
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if signal_at and hook_micro is None and step == signal_at:  # test hook: this rank
                os.kill(os.getpid(), hook_sig)
            sigs = list(_SIGNALS)  # signals that arrive after this count at the next step
            flags = torch.stack(
                [
                    loss_acc.float(),
                    torch.tensor(float(bool(sigs)), device=device),
                    *(torch.tensor(v, device=device) for v in _stop_flags(sigs)),
                    torch.tensor((time.perf_counter() - t0) / cfg.grad_accum, device=device),
                ]
            )
            if distributed:
                dist.all_reduce(flags)
            vals = flags.tolist()
            loss_val = vals[0] / world
            if distributed and cfg.grad_accum > 1:
                micro_s = max(vals[-1] / world, 1e-6)
                term_every = max(1, min(cfg.grad_accum, int(_TERM_CHECK_S / micro_s)))
            if not math.isfinite(loss_val):  # every rank sees the same all-reduced value
                raise _diverged(f"the loss is {loss_val}", step, lr, cfg, last_ckpt, start)
            losses.append(loss_val)
            dt = time.perf_counter() - t0
            tps = cfg.tokens_per_step * world / dt
            mfu = (fpt * tps / (peak * world)) if peak else None
            if sink is not None:
                sink.log(
                    step,
                    {
                        "loss": loss_val,
                        "lr": lr,
                        "tokens_per_s": tps,
                        "step_time_s": dt,
                        "data_wait_s": data_s,
                        "mfu": mfu,
                    },
                )
                if step % cfg.log_every == 0 or step == cfg.max_steps:
                    log.info(
                        "step %d/%d loss %.4f lr %.2e %.0f tokens/s %.1f ms/step%s",
                        step,
                        cfg.max_steps,
                        loss_val,
                        lr,
                        tps,
                        dt * 1e3,
                        f" MFU {mfu:.1%}" if mfu is not None else "",
                    )
            # the first stop signal any rank has (the same on every rank), None: go on
            stop_sig = _first_stop(vals[2 : 2 + len(_STOP_SIGNALS)])
            stop_term = stop_sig is not None
            want_ckpt = vals[1] > 0
            after_save = step % cfg.checkpoint_every == 0 or want_ckpt or step == cfg.max_steps
            if after_save:
                last_ckpt = save(step)
                if grace_s is not None and rank == 0 and not stop_term:
                    slow = _grace_too_short(save_s[0], dt, grace_s, step)
                    if slow is not None and not grace_warned:
                        log.warning("%s", slow)
                    grace_warned = grace_warned or slow is not None
                if want_ckpt and not stop_term:
                    # SIGUSR1: checkpoint taken, keep going; a SIGTERM that came during the
                    # checkpoint stays for the next step
                    del _SIGNALS[: len(sigs)]
                    if rank == 0:
                        log.info("SIGUSR1: checkpoint at step %d, continuing", step)
            if stop_term:
                stopped_by = stop_sig
                if rank == 0:
                    log.warning("%s: checkpoint at step %d saved; stopping", stopped_by, step)
                break
        if (
            stopped_by is None
            and rank == 0
            and sink is not None
            and sink.mlflow is not None
            and cfg.save_model
            # a re-run of a finished run: its model is logged (and registered) already
            and not (start >= cfg.max_steps and sink.was_finished)
        ):
            from aistack.train.export import log_model

            uri = log_model(model, gcfg, tokenizer=cfg.tokenizer, run_id=sink.run_id)
            log.info("model logged to MLflow as %s", uri)
            if cfg.register_as:
                registered_version = _register(sink.run_id, cfg.register_as, uri)
                log.info("registered %s version %s", cfg.register_as, registered_version)
        # a stopped run is KILLED until a re-run resumes it
        end_status = "FINISHED" if stopped_by is None else "KILLED"
    except KeyboardInterrupt:
        end_status = "KILLED"
        raise
    finally:
        loader.close()
        if sink is not None:
            sink.close(status=end_status)
        for s, h in old.items():
            signal.signal(s, h)
        if distributed and dist.is_initialized():
            dist.destroy_process_group()
    if last_ckpt is None and resumed_from is not None and rank == 0:
        # a re-run of a finished run (nothing to train): its checkpoint is the one it resumed
        # from, as for a run stopped before its first step
        last_ckpt = store.path_for(resumed_from)
    return TrainResult(
        step=step,
        resumed_from=resumed_from,
        stopped_by=stopped_by,
        last_loss=losses[-1] if losses else carried_loss,
        checkpoint=last_ckpt,
        tokens_per_s=tps,
        mfu=mfu,
        mlflow_run_id=sink.run_id if sink else None,
        losses=losses,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("AISTACK_LOG_LEVEL", "INFO"),
        format=f"%(asctime)s rank{os.environ.get('RANK', '0')} %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    try:
        cfg = parse_args(argv)
        result = train(cfg)
    except AistackError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the first step, or a second one: no traceback
        sys.stderr.write(
            "interrupted (SIGINT): stopped at once, no checkpoint written by this stop; a "
            "re-run resumes from the run's latest checkpoint (one Ctrl-C during training "
            "checkpoints first)\n"
        )
        return 128 + signal.SIGINT
    if int(os.environ.get("RANK", "0")) == 0:
        summary = {
            "step": result.step,
            "resumed_from": result.resumed_from,
            "stopped_by": result.stopped_by,
            "last_loss": result.last_loss,
            "tokens_per_s": result.tokens_per_s,
            "mfu": result.mfu,
            "checkpoint": result.checkpoint,
            "mlflow_run_id": result.mlflow_run_id,
        }
        sys.stdout.write(json.dumps(summary) + "\n")
        sys.stdout.flush()
    return result.exit_code


def run_and_exit(argv: list[str] | None = None) -> None:
    """``main`` as a process: a rank of a distributed run leaves through ``os._exit``.

    After a clean run, torch's gloo backend can still abort the process while the interpreter
    tears down its C++ objects (SIGABRT, "terminate called without an active exception"; seen
    twice in CI, once on a rank that had finished all its steps). The job would then fail with
    exit code 134 although its work was done. So a distributed rank runs the atexit handlers,
    flushes its logs and output, and exits with its code without that teardown. A single
    process exits normally.
    """
    if int(os.environ.get("WORLD_SIZE", "1") or "1") <= 1:
        raise SystemExit(main(argv))
    try:
        code = main(argv)
    except SystemExit:
        raise  # argument errors: before any process group exists
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # the traceback, as Python would print it, then exit 1
        import traceback

        traceback.print_exc()
        code = 1
    _exit_now(code)


def _exit_now(code: int) -> None:
    import atexit

    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run_and_exit()
