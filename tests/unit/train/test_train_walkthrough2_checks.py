"""Second walkthrough of the trainer: a run that ends in its warm-up is warned about (it never
reaches lr), a resume with another grad_accum says the batch of a step changes, a bad
--metrics-file on a resume is an error (it was a NotADirectoryError / IsADirectoryError
traceback) that says what is wrong, and an unreadable checkpoint is described in words (it
was pickle's "invalid literal for int() with base 10: 'arbage'")."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

# the grace test's tiny config (its directory is on sys.path: pytest's prepend mode)
from test_train_grace_warning import _cfg as grace_cfg  # noqa: E402

from aistack.errors import BackendError, ValidationError  # noqa: E402
from aistack.train.checkpoint import CheckpointStore  # noqa: E402
from aistack.train.run import train  # noqa: E402


def _cfg(root: Path, **kw):  # noqa: ANN202
    base = {"run_name": "wt2", "max_steps": 4, "checkpoint_every": 100, "warmup_steps": 0}
    return grace_cfg(root, **(base | kw))


def _warned(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and words in r.getMessage()
    ]


def test_a_run_that_ends_in_its_warm_up_is_warned_about_with_its_last_lr(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="aistack.train.run")
    result = train(_cfg(tmp_path, warmup_steps=100, lr=1e-3, min_lr=1e-4))
    assert result.step == 4  # warned, not refused: a short try of a long run's config
    (said,) = _warned(caplog, "warmup_steps")
    assert said.startswith("warmup_steps 100 is more than max_steps 4: the run ends in its ")
    # the last step's lr: 4/100 of the peak
    assert "warm-up at lr 4.00e-05 (4.0% of lr 0.001), never reaching lr" in said
    assert "set --warmup-steps below 4 (e.g. 0)" in said


@pytest.mark.parametrize("warmup", [0, 4])
def test_a_warm_up_within_the_run_is_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, warmup: int
) -> None:
    caplog.set_level(logging.WARNING, logger="aistack.train.run")
    train(_cfg(tmp_path, warmup_steps=warmup))
    assert _warned(caplog, "warmup_steps") == []


def test_a_resume_with_another_grad_accum_says_the_step_batch_changes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = train(_cfg(tmp_path, grad_accum=2, max_steps=2))
    assert first.step == 2
    caplog.set_level(logging.WARNING, logger="aistack.train.run")
    again = train(_cfg(tmp_path, grad_accum=3, max_steps=4))
    assert (again.resumed_from, again.step) == (2, 4)
    (said,) = _warned(caplog, "grad_accum")
    # micro_batch_size 4 × seq_len 16 = 64 tokens a micro-batch
    assert said.startswith("grad_accum 2 -> 3: a step now takes 3 micro-batches (192 tokens ")
    assert "a step instead of 128); the data continues where the checkpoint left it" in said
    assert said.endswith("(resume with --grad-accum 2 to keep it)")
    # the same grad_accum: nothing said
    caplog.clear()
    train(_cfg(tmp_path, grad_accum=3, max_steps=5))
    assert _warned(caplog, "grad_accum") == []


@pytest.mark.parametrize(
    "where,why",
    [("folder", "it is a folder, not a file"), ("through-file", "is a file, not a folder")],
)
def test_a_bad_metrics_file_on_a_resume_is_an_error_not_a_traceback(
    tmp_path: Path, where: str, why: str
) -> None:
    train(_cfg(tmp_path, max_steps=2))  # a checkpoint to resume from
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "adir" if where == "folder" else tmp_path / "afile" / "m.jsonl"
    (tmp_path / "adir").mkdir()
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path, max_steps=3, metrics_file=str(bad)))
    assert ei.value.details["field"] == "metrics_file"
    assert ei.value.message.startswith(f"metrics_file: cannot write {bad}: ")
    assert ei.value.message.endswith(why)
    if where == "through-file":
        assert f"{tmp_path / 'afile'} is a file" in ei.value.message


def test_a_metrics_file_below_a_file_says_which_part_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    bad = tmp_path / "afile" / "m.jsonl"
    with pytest.raises(ValidationError) as ei:
        train(_cfg(tmp_path, metrics_file=str(bad)))
    # it said "File exists" (os.makedirs' word for a folder on the way being a file)
    assert ei.value.message == (
        f"metrics_file: cannot write {bad}: {tmp_path / 'afile'} is a file, not a folder"
    )


@pytest.mark.parametrize(
    "content,said",
    [
        (b"garbage\n", "not a PyTorch checkpoint file (8 bytes starting b'garbage\\n'; one "),
        (b"", "the file is empty (0 bytes): not a checkpoint"),
        (b"PK\x03\x04" + b"\0" * 40, "a damaged or truncated PyTorch file (44 bytes; torch.load:"),
    ],
)
def test_an_unreadable_checkpoint_is_described_in_words_naming_the_file(
    tmp_path: Path, content: bytes, said: str
) -> None:
    ck = tmp_path / "ckpt"
    ck.mkdir()
    (ck / "step_00000005.pt").write_bytes(content)
    with pytest.raises(BackendError) as ei:
        train(_cfg(tmp_path))
    msg = ei.value.message
    assert f"{ck / 'step_00000005.pt'} (ValueError: {said}" in msg
    assert "invalid literal" not in msg
    store = CheckpointStore(str(ck))
    with pytest.raises(BackendError, match="step_00000005.pt cannot be read") as one:
        store.load(5)
    assert said in one.value.message


def test_the_grad_accum_help_says_what_a_stop_signal_does_within_a_step() -> None:
    from aistack.train.config import build_parser

    helptext = " ".join(build_parser().format_help().split())
    # it said "a step is never cut short: signals and checkpoints wait for its end", but a
    # SIGTERM (and now SIGINT) is acted on between micro-batches
    assert "never cut short" not in helptext
    assert "SIGTERM/SIGINT drop the step part-way and checkpoint the one before" in helptext
