"""train() in-process: its SIGTERM/SIGUSR1 (and SIGINT) handlers are the caller's again after
every exit, a set-up that fails (missing data, a bad config, a model that does not build)
included; and the stop flags are encoded and decoded in one place (_stop_flags/_first_stop)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.train.shards import write_token_shard

SIGS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def _mine(_signum: int, _frame: Any) -> None:  # the caller's own handler
    pass


@pytest.fixture
def callers_handlers() -> Iterator[None]:
    before = {s: signal.getsignal(s) for s in SIGS}
    for s in SIGS:
        signal.signal(s, _mine)
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def _cfg(tmp_path: Path, data: Path, *more: str) -> Any:
    from aistack.train.config import parse_args

    return parse_args(
        [
            "--data", str(data), "--run-name", "sig", "--seq-len", "8", "--n-layer", "1",
            "--n-head", "2", "--n-embd", "16", "--micro-batch-size", "2", "--max-steps", "2",
            "--device", "cpu", "--no-mlflow", "--checkpoint-url", str(tmp_path / "ckpt"),
            *more,
        ]
    )  # fmt: skip


def _data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    write_token_shard(folder / "a.tok", [np.arange(400) % 64], 64)
    return folder


def _assert_callers_handlers() -> None:
    assert {s.name: signal.getsignal(s) for s in SIGS} == {s.name: _mine for s in SIGS}


@pytest.mark.usefixtures("aistack_home", "callers_handlers")
def test_missing_data_puts_the_callers_handlers_back(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from aistack.train.run import train

    with pytest.raises(ValidationError, match="does not exist"):
        train(_cfg(tmp_path, tmp_path / "no-such-data"))
    _assert_callers_handlers()


@pytest.mark.usefixtures("aistack_home", "callers_handlers")
def test_a_bad_config_found_after_the_loader_puts_the_handlers_back_and_closes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from aistack.train import loader as loader_mod
    from aistack.train.run import train

    closed: list[bool] = []
    real_close = loader_mod.ShardLoader.close

    def close(self: Any) -> None:
        closed.append(True)
        real_close(self)

    monkeypatch.setattr(loader_mod.ShardLoader, "close", close)
    # eos_id past the headers' vocabulary: refused after the loader has opened the shards
    with pytest.raises(ValidationError, match="eos_id: 500 is not below vocab_size 64"):
        train(_cfg(tmp_path, _data(tmp_path), "--eos-id", "500"))
    _assert_callers_handlers()
    assert closed == [True]


@pytest.mark.usefixtures("aistack_home", "callers_handlers")
def test_a_model_that_does_not_build_puts_the_handlers_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from aistack.train import model as model_mod
    from aistack.train.run import train

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("model build failed")

    monkeypatch.setattr(model_mod, "GPT", broken)
    with pytest.raises(RuntimeError, match="model build failed"):
        train(_cfg(tmp_path, _data(tmp_path)))
    _assert_callers_handlers()


@pytest.mark.usefixtures("aistack_home", "callers_handlers")
def test_a_ctrl_c_during_the_set_up_puts_the_handlers_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from aistack.train import checkpoint as ckpt_mod
    from aistack.train.run import train

    def interrupted(self: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt_mod.CheckpointStore, "check_writable", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, _data(tmp_path)))
    _assert_callers_handlers()


@pytest.mark.usefixtures("aistack_home", "callers_handlers")
def test_a_run_that_trains_puts_the_handlers_back(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from aistack.train.run import train

    result = train(_cfg(tmp_path, _data(tmp_path)))
    assert result.step == 2 and result.stopped_by is None
    _assert_callers_handlers()


def test_stop_flags_are_encoded_and_decoded_in_one_place() -> None:
    from aistack.train.run import _first_stop, _stop_flags

    term, intr, usr1 = signal.SIGTERM, signal.SIGINT, signal.SIGUSR1
    assert _stop_flags([]) == [0.0, 0.0]
    assert _stop_flags([usr1]) == [0.0, 0.0]  # SIGUSR1 checkpoints, it does not stop
    assert _stop_flags([intr]) == [0.0, 1.0]
    assert _stop_flags([intr, usr1, term]) == [1.0, 1.0]
    assert _first_stop(_stop_flags([])) is None
    assert _first_stop(_stop_flags([usr1])) is None
    assert _first_stop(_stop_flags([intr])) == "SIGINT"
    # ranks sent different signals all stop with the first of _STOP_SIGNALS: SIGTERM
    assert _first_stop(_stop_flags([intr, term])) == "SIGTERM"
    # flags summed over 3 ranks by the all-reduce
    assert _first_stop([0.0, 3.0]) == "SIGINT"
    assert _first_stop([2.0, 1.0]) == "SIGTERM"


@pytest.mark.usefixtures("aistack_home", "callers_handlers")
def test_train_in_a_thread_trains_without_signal_handlers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """signal.signal raises ValueError outside the main thread: train() from a notebook's
    background thread failed before its first step."""
    pytest.importorskip("torch")
    import threading

    from aistack.train.run import train

    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = train(_cfg(tmp_path, _data(tmp_path)))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            out["error"] = exc

    with caplog.at_level("WARNING", logger="aistack.train.run"):
        th = threading.Thread(target=run)
        th.start()
        th.join(timeout=120)
    assert "error" not in out, out
    assert out["result"].step == 2 and out["result"].stopped_by is None
    assert "train() runs outside the main thread: SIGTERM, SIGINT and SIGUSR1 do not " in (
        caplog.text
    )
    _assert_callers_handlers()
