"""Checkpoints are loaded without unpickling code: a checkpoint store can be shared (a bucket,
an NFS folder), and ``torch.load(weights_only=False)`` of a file someone put there runs
whatever it names. What the trainer writes loads with ``weights_only=True``; so does a
checkpoint of the earlier format (numpy's RNG state as an array); a file naming any other
Python object is refused, naming it and how to opt in (``trust``,
``AISTACK_TRUST_CHECKPOINTS``), and is not skipped for an older checkpoint."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.train.config import load_config, parse_args

torch = pytest.importorskip("torch")

from test_train_checkpoint_safety import _shards  # noqa: E402

import aistack.train.run as run_mod  # noqa: E402
from aistack.train.checkpoint import CheckpointStore  # noqa: E402
from aistack.train.run import train  # noqa: E402


class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: a stand-in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> Any:
        return (os.mkdir, (self.marker,))


def _malicious(marker: Path, fmt: str) -> bytes:
    state = {"step": 9, "model": {}, "optimizer": {}, "x": _Payload(marker)}
    if fmt == "pickle":  # a bare pickle: torch.load reads it as its legacy format
        return pickle.dumps(state, protocol=2)
    buf = io.BytesIO()
    torch.save(state, buf, _use_new_zipfile_serialization=fmt == "zip")
    return buf.getvalue()


def _cfg(root: Path, name: str, **kw: Any) -> Any:
    data = root / "s" if (root / "s").exists() else _shards(root)
    base = dict(
        data=[str(data)], run_name=name, seq_len=8, n_layer=1, n_head=2, n_embd=8,
        micro_batch_size=2, grad_accum=2, dropout=0.1, max_steps=6, checkpoint_every=2,
        warmup_steps=0, min_lr=0.0, mlflow=False, device="cpu",
        metrics_file=str(root / f"{name}.jsonl"),
    )  # fmt: skip
    return load_config(**(base | kw))


def _losses(path: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, path.read_text().splitlines())}


def _ckpt_dir(home: Path, run: str) -> Path:
    return home / "objects" / "checkpoints" / run


def _old_rng_state(torch: Any) -> dict[str, Any]:
    """The trainer's RNG state as the earlier format saved it (numpy's state as an array)."""
    st = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


@pytest.mark.parametrize("fmt", ["zip", "legacy", "pickle"])
def test_a_malicious_checkpoint_is_refused_and_its_code_never_runs(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AISTACK_TRUST_CHECKPOINTS", raising=False)
    marker = tmp_path / "code-ran"
    store = CheckpointStore(str(tmp_path / "ck"))
    store.save(4, {"step": 4, "model": {"w": torch.ones(2)}, "optimizer": {}})
    Path(store.path_for(9)).write_bytes(_malicious(marker, fmt))

    err: BaseException | None = None
    try:
        store.load()
    except ValidationError as exc:
        err = exc
    assert not marker.exists(), "loading the checkpoint ran the code it holds"
    assert type(err).__name__ == "UntrustedCheckpointError"  # not skipped for step 4
    text = str(err)
    assert store.path_for(9) in text and "posix.mkdir" in text
    assert "weights_only=True" in text
    assert "load it with --trust-checkpoints or AISTACK_TRUST_CHECKPOINTS=1" in text
    assert "--no-resume" in text
    # asked for by step: the same error, not "damaged file"
    with pytest.raises(ValidationError, match="was not loaded: it names Python objects"):
        store.load(9)
    assert not marker.exists()
    # the good checkpoint still loads by its step
    assert store.load(4)["step"] == 4


def test_the_trainer_refuses_to_resume_from_a_malicious_checkpoint(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AISTACK_TRUST_CHECKPOINTS", raising=False)
    train(_cfg(tmp_path, "evil", max_steps=2))
    marker = tmp_path / "code-ran"
    (_ckpt_dir(aistack_home, "evil") / "step_00000003.pt").write_bytes(_malicious(marker, "zip"))
    err: BaseException | None = None
    try:
        train(_cfg(tmp_path, "evil", max_steps=4))
    except ValidationError as exc:
        err = exc
    assert not marker.exists(), "resuming ran the code the checkpoint holds"
    assert type(err).__name__ == "UntrustedCheckpointError"
    assert "step_00000003.pt" in str(err) and "posix.mkdir" in str(err)
    # the process's own loads are as strict as before (no numpy allowed left behind)
    assert not torch.serialization.get_safe_globals() or np.ndarray not in (
        torch.serialization.get_safe_globals()
    )


def test_trust_loads_such_a_checkpoint_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AISTACK_TRUST_CHECKPOINTS", raising=False)
    marker = tmp_path / "code-ran"
    Path(tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "step_00000009.pt").write_bytes(_malicious(marker, "zip"))
    state = CheckpointStore(str(tmp_path / "ck"), trust=True).load()
    assert state is not None and state["step"] == 9 and marker.is_dir()
    assert "loading it in full because checkpoints are trusted" in caplog.text
    marker.rmdir()
    monkeypatch.setenv("AISTACK_TRUST_CHECKPOINTS", "yes")
    assert CheckpointStore(str(tmp_path / "ck")).load()["step"] == 9 and marker.is_dir()
    # trust=False given explicitly wins over the environment
    with pytest.raises(ValidationError, match="was not loaded"):
        CheckpointStore(str(tmp_path / "ck"), trust=False).load()
    monkeypatch.setenv("AISTACK_TRUST_CHECKPOINTS", "maybe")
    with pytest.raises(ValidationError, match="AISTACK_TRUST_CHECKPOINTS: expected 1 or 0"):
        CheckpointStore(str(tmp_path / "ck"))
    with pytest.raises(ValidationError, match="trust: expected true or false"):
        CheckpointStore(str(tmp_path / "ck"), trust="yes")  # type: ignore[arg-type]
    # the trainer's flag
    assert parse_args(["--data", "x", "--trust-checkpoints"]).trust_checkpoints is True
    assert parse_args(["--data", "x"]).trust_checkpoints is False


def test_a_new_checkpoint_names_no_object_beyond_torchs_safe_ones(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a SIGTERM part-way through a step: the checkpoint holds the RNGs of the step's start
    monkeypatch.setenv("AISTACK_TRAIN_SIGNAL_AT_STEP", "3.1")
    res = train(_cfg(tmp_path, "plain"))
    assert res.stopped_by == "SIGTERM" and res.step == 3
    monkeypatch.delenv("AISTACK_TRAIN_SIGNAL_AT_STEP")
    paths = sorted(_ckpt_dir(aistack_home, "plain").glob("step_*.pt"))
    assert [p.name for p in paths] == ["step_00000002.pt", "step_00000003.pt"]
    for p in paths:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(str(p)) == []
        state = torch.load(p, weights_only=True)  # torch's own safe loader, nothing allowed
        kind, keys, pos, has_gauss, cached = state["rng"][0]["numpy"]
        assert kind == "MT19937" and len(keys) == 624 and all(type(k) is int for k in keys)
        assert type(pos) is int and type(has_gauss) is int and type(cached) is float


def test_numpys_rng_state_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    np.random.seed(123)
    np.random.normal()  # a cached gaussian in the state
    random.seed(5)
    store = CheckpointStore(str(tmp_path / "ck"))
    store.save(1, {"step": 1, "rng": [run_mod._rng_state(torch)]})
    want = (np.random.normal(size=4), np.random.rand(3), random.random(), torch.rand(3))
    np.random.seed(0)
    random.seed(0)
    torch.manual_seed(0)
    run_mod._set_rng_state(torch, store.load()["rng"][0])
    got = (np.random.normal(size=4), np.random.rand(3), random.random(), torch.rand(3))
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert got[2] == want[2] and torch.equal(got[3], want[3])


def test_a_checkpoint_of_the_earlier_format_still_resumes_to_the_same_losses(
    aistack_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AISTACK_TRUST_CHECKPOINTS", raising=False)
    ref = train(_cfg(tmp_path, "ref"))
    assert ref.step == 6
    # the run cut at step 3 by SIGTERM, its checkpoints written as the earlier trainer did
    new_rng_state = run_mod._rng_state
    monkeypatch.setattr(run_mod, "_rng_state", _old_rng_state)
    monkeypatch.setenv("AISTACK_TRAIN_SIGNAL_AT_STEP", "3")
    first = train(_cfg(tmp_path, "cut"))
    assert first.stopped_by == "SIGTERM" and first.step == 3
    monkeypatch.setattr(run_mod, "_rng_state", new_rng_state)
    monkeypatch.delenv("AISTACK_TRAIN_SIGNAL_AT_STEP")
    old = _ckpt_dir(aistack_home, "cut") / "step_00000003.pt"
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(str(old))
    # numpy 1.x named the array's rebuild function numpy.core.multiarray._reconstruct
    _rename_global(old, b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert "numpy.core.multiarray._reconstruct" in (
        torch.serialization.get_unsafe_globals_in_checkpoint(str(old))
    )

    second = train(_cfg(tmp_path, "cut"))
    assert second.resumed_from == 3 and second.step == 6
    want, got = _losses(tmp_path / "ref.jsonl"), _losses(tmp_path / "cut.jsonl")
    assert sorted(got) == list(range(1, 7))
    assert got == want  # identical: weights, optimizer, loader and RNGs all restored
    new = _ckpt_dir(aistack_home, "cut") / "step_00000006.pt"
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(new)) == []


def _rename_global(path: Path, old: bytes, new: bytes) -> None:
    """Rewrite the pickle of a torch zip checkpoint with a GLOBAL's module renamed."""
    with zipfile.ZipFile(path) as zin:
        items = [(i, zin.read(i.filename)) for i in zin.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for info, data in items:
            if info.filename.endswith("/data.pkl"):
                assert old in data
                data = data.replace(old, new)
            zout.writestr(info.filename, data)
