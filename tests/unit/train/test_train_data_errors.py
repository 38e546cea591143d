"""Bad data is a clear error of the trainer, never a torch traceback or a quiet skip: token ids
past the model's vocabulary (checked on the host, per batch), shard-named files that are not
shards inside a data folder, and a resume over a changed shard list (which shards differ)."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pytest

from aistack.errors import ValidationError
from aistack.train.loader import ShardLoader
from aistack.train.shards import HEADER, write_token_shard

KW = dict(seq_len=8, batch_size=2, as_torch=False)


def _set_header_vocab(path: Path, vocab: int) -> Path:
    """Both shard formats keep vocab_size as a uint64 at byte 16 of the header."""
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack("<Q", vocab)
    path.write_bytes(bytes(data))
    return path


def _good(root: Path, name: str = "a.tok", n: int = 400, vocab: int = 64) -> Path:
    return write_token_shard(root / name, [np.arange(n) % vocab], vocab)


# --------------------------------------------------------------- P1: ids past the vocabulary


def _bad_ids_data(root: Path) -> Path:
    """a.tok: ids 0..63 (header 64); b.tok: header says 64, but its ids are 60..99 (a header
    that lies: the file was written with another tokenizer's ids); 99 is in every window."""
    data = root / "data"
    _good(data)
    ids = 60 + np.arange(400) % 40
    ids[::4] = 99
    bad = write_token_shard(data / "b.tok", [ids], 100)
    _set_header_vocab(bad, 64)
    return data


def _argv(root: Path, data: Path, name: str, *more: str) -> list[str]:
    return [
        "--data", str(data), "--run-name", name, "--seq-len", "8", "--n-layer", "1",
        "--n-head", "2", "--n-embd", "16", "--micro-batch-size", "2", "--max-steps", "40",
        "--checkpoint-every", "100", "--device", "cpu", "--no-mlflow",
        "--metrics-file", str(root / f"{name}.jsonl"), *more,
    ]  # fmt: skip


def test_token_ids_past_the_vocab_are_a_clear_error_naming_the_shard(
    aistack_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from aistack.train.run import main

    data = _bad_ids_data(tmp_path)
    code = main(_argv(tmp_path, data, "ids"))
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "IndexError" not in err
    line = next(ln for ln in err.splitlines() if ln.startswith("error: "))
    assert line.startswith("error: data: token id 99 in the batch of step ")
    assert "is not below the model's vocab_size 64 (the embedding has ids 0..63)" in line
    assert f"it comes from shard {data / 'b.tok'} (header vocab_size 64)" in line
    assert "a.tok" not in line  # the good shard is not blamed
    assert "tokenize the data again" in line and "--vocab-size to at least 100" in line
    # the check runs before the model sees the batch: at most the steps before it were logged
    steps = (tmp_path / "ids.jsonl").read_text().splitlines()
    assert len(steps) < 40


def test_with_a_large_enough_vocab_size_the_same_data_trains(
    aistack_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from aistack.train.run import main

    data = _bad_ids_data(tmp_path)
    argv = _argv(tmp_path, data, "ok", "--vocab-size", "100")
    argv[argv.index("--max-steps") + 1] = "3"
    assert main(argv) == 0
    assert '"step": 3' in capsys.readouterr().out


def test_vocab_size_below_a_header_names_the_shards(aistack_home: Path, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from aistack.train.config import load_config
    from aistack.train.run import train

    data = tmp_path / "data"
    _good(data, "a.tok", vocab=64)
    _good(data, "b.tok", vocab=300)
    cfg = dict(data=[str(data)], run_name="v", seq_len=8, n_layer=1, n_head=2, n_embd=16)
    with pytest.raises(ValidationError) as ei:
        train(load_config(**cfg, micro_batch_size=2, vocab_size=100, device="cpu", mlflow=False))
    assert ei.value.message == (
        "vocab_size: 100 is smaller than the data's vocabulary (300, from the shard headers; "
        "1 of 2 shards say more than 100: b.tok)"
    )
    assert "--vocab-size to at least 300" in (ei.value.hint or "")


@pytest.mark.parametrize("fmt", ["aistok", "webdata"])
def test_a_header_vocab_size_of_zero_is_refused_when_opened(tmp_path: Path, fmt: str) -> None:
    data = tmp_path / "data"
    _good(data, "a.tok")
    if fmt == "aistok":
        zero = _good(data, "b.tok")
    else:
        from aistack.webdata.shards import write_shard

        zero = data / "shard-00001.bin"
        write_shard(zero, [np.arange(400) % 64], 64)
    _set_header_vocab(zero, 0)
    with pytest.raises(ValidationError) as ei:
        ShardLoader(str(data), **KW)
    assert ei.value.message == (
        f"data: {zero}: the header's vocab_size is 0 (a shard's ids must lie below its vocab_size)"
    )
    assert "tokenize the data again" in (ei.value.hint or "")


# --------------------------------------------------- P2 / P17: files in a data folder


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        ("b.bin", b"this is no shard, it is garbage", "has no token shard header (AISTOK)"),
        ("shard-00003.bin", b"", "is empty"),
        ("c.tok", b"\0" * 100, "has no token shard header (AISTOK)"),
        ("D.BIN", b"garbage", "has no token shard header (AISTOK)"),
    ],
)
def test_a_shard_named_file_that_is_not_a_shard_is_refused(
    tmp_path: Path, name: str, content: bytes, what: str
) -> None:
    data = tmp_path / "data"
    _good(data)
    (data / name).write_bytes(content)
    with pytest.raises(ValidationError) as ei:
        ShardLoader(str(data), **KW)
    assert ei.value.message == (
        f"data: {data / name} is named like a token shard but {what}: it looks damaged or "
        "incompletely copied"
    )
    hint = ei.value.hint or ""
    assert "move it out of the folder" in hint and f"'{data}/shard-*.bin'" in hint


def test_other_files_are_skipped_with_a_warning_in_the_right_number(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    _good(data)
    (data / "notes.txt").write_text("hello")
    with caplog.at_level(logging.INFO, logger="aistack.train.loader"):
        ld = ShardLoader(str(data), **KW)
    assert [Path(p).name for p in ld.sources] == ["a.tok"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", f"data: skipped 1 file that is not a token shard: {data / 'notes.txt'}")
    ]
    caplog.clear()
    (data / "more.json").write_text("{}")
    with caplog.at_level(logging.INFO, logger="aistack.train.loader"):
        ShardLoader(str(data), **KW)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            f"data: skipped 2 files that are not token shards: {data / 'more.json'}, "
            f"{data / 'notes.txt'}",
        )
    ]


def test_a_pipeline_dataset_folder_warns_about_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from aistack.webdata.shards import write_shard

    ds = tmp_path / "out" / "dataset"
    ds.mkdir(parents=True)
    write_shard(ds / "shard-00000.bin", [list(range(40))], 1000)
    (ds / "shard-00001.bin.tmp").write_bytes(b"half written")  # a writer's temporary file
    (ds / "tokenizer.json").write_text('{"model": {}}')
    (ds / "report.json").write_text("{}")
    with caplog.at_level(logging.INFO, logger="aistack.train.loader"):
        ld = ShardLoader(str(ds), seq_len=9, batch_size=2, as_torch=False)
    assert [Path(p).name for p in ld.sources] == ["shard-00000.bin"]
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert caplog.records[0].getMessage() == (
        f"data: skipped the web-data pipeline's metadata: {ds / 'report.json'}, "
        f"{ds / 'tokenizer.json'}"
    )


def test_a_folder_without_shards_says_none_of_its_files_is_one(tmp_path: Path) -> None:
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "report.json").write_text("{}")
    with pytest.raises(ValidationError) as ei:
        ShardLoader(str(meta), **KW)
    assert ei.value.message == (
        f"data: no shard files in {meta}: none of its 1 file is a token shard "
        f"({meta / 'report.json'})"
    )
    (meta / "readme.txt").write_text("x")
    with pytest.raises(ValidationError, match=r"none of its 2 files is a token shard \("):
        ShardLoader(str(meta), **KW)


def test_the_trainer_refuses_a_damaged_shard_in_its_folder(
    aistack_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from aistack.train.run import main

    data = tmp_path / "data"
    _good(data)
    (data / "b.bin").write_bytes(b"garbage")
    assert main(_argv(tmp_path, data, "g")) == 2
    err = capsys.readouterr().err
    assert f"error: data: {data / 'b.bin'} is named like a token shard but has no token " in err
    assert not (tmp_path / "g.jsonl").exists()  # refused before the first step
    # only a garbage .bin in the folder: the same error (not "skipped 1 files", then
    # "no shard files found")
    (data / "a.tok").unlink()
    assert main(_argv(tmp_path, data, "g2")) == 2
    err = capsys.readouterr().err
    assert "skipped 1 files" not in err and "b.bin is named like a token shard" in err


# --------------------------------------------------- P12: resume over another shard list


def _two(data: Path, second: str = "s1.tok", n1: int = 400) -> None:
    for p in data.glob("*.tok"):
        p.unlink()
    _good(data, "s0.tok")
    _good(data, second, n=n1)


def test_resume_over_a_renamed_shard_says_which_shards_differ(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _two(data)
    ld = ShardLoader(str(data), **KW)
    ld.next_batch()
    state = ld.state_dict()
    assert state["shards"] == [["s0.tok", 400], ["s1.tok", 400]]
    _two(data, "s1b.tok")
    with pytest.raises(ValidationError) as ei:
        ShardLoader(str(data), **KW).load_state_dict(dict(state))
    assert ei.value.message == (
        "data: the shards differ from the checkpoint's (only in the checkpoint: s1.tok; only "
        "in this run: s1b.tok) — checkpoint: s0.tok, s1.tok; this run: s0.tok, s1b.tok"
    )
    assert "--no-resume" in (ei.value.hint or "") and "--run-name" in (ei.value.hint or "")
    # an added shard, and a shard of another length
    _two(data, "s1.tok", n1=300)
    _good(data, "s2.tok")
    with pytest.raises(ValidationError) as ei:
        ShardLoader(str(data), **KW).load_state_dict(dict(state))
    assert ei.value.message == (
        "data: the shards differ from the checkpoint's (only in this run: s2.tok; other token "
        "count: s1.tok (400 tokens, now 300)) — checkpoint: s0.tok, s1.tok; this run: s0.tok, "
        "s1.tok, s2.tok"
    )


def test_an_older_state_without_the_shard_list_still_names_this_runs_shards(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    _two(data)
    ld = ShardLoader(str(data), **KW)
    ld.next_batch()
    state = {k: v for k, v in ld.state_dict().items() if k != "shards"}
    same = ShardLoader(str(data), **KW)
    same.load_state_dict(dict(state))  # an older state of the same data still resumes
    assert (same.epoch, same.batch) == (0, 1)
    _two(data, "s1b.tok")
    other = ShardLoader(str(data), **KW)
    with pytest.raises(ValidationError) as ei:
        other.load_state_dict(dict(state))
    assert ei.value.message == (
        f"fingerprint: the checkpoint's loader has {state['fingerprint']!r}, this run has "
        f"{other.fingerprint!r}: the shard names or token counts differ (this checkpoint does "
        "not record its shard list; this run has 2 shards: s0.tok, s1b.tok)"
    )
    assert "--no-resume" in (ei.value.hint or "")


def test_the_trainer_resuming_over_a_renamed_shard_exits_2_naming_them(
    aistack_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    from aistack.train.run import main

    data = tmp_path / "data"
    _two(data)
    argv = _argv(tmp_path, data, "r")
    argv[argv.index("--max-steps") + 1] = "2"
    assert main(argv) == 0
    (data / "s1.tok").rename(data / "s1b.tok")
    argv[argv.index("--max-steps") + 1] = "4"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert (
        "error: data: the shards differ from the checkpoint's (only in the checkpoint: s1.tok; "
        "only in this run: s1b.tok) — checkpoint: s0.tok, s1.tok; this run: s0.tok, s1b.tok"
    ) in err
    assert "--no-resume" in err


def test_header_struct_has_vocab_at_byte_16() -> None:
    # the helper above patches byte 16 of both formats
    assert HEADER.unpack(HEADER.pack(b"AISTOK1\0", 1, 2, 77, 0, 0))[3] == 77


# ------------------------------------------------ shards of different vocabularies


def test_shards_of_different_vocabularies_are_refused_naming_both(
    aistack_home: Path, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from aistack.train.config import load_config
    from aistack.train.run import train

    data = tmp_path / "data"
    _good(data, "a.tok", vocab=64)
    _good(data, "b.tok", vocab=300)
    _good(data, "c.tok", vocab=300)
    cfg = dict(data=[str(data)], run_name="mix", seq_len=8, n_layer=1, n_head=2, n_embd=16)
    cfg |= dict(micro_batch_size=2, max_steps=2, device="cpu", mlflow=False)
    # the old trainer took the largest (300) and trained on the mix
    with pytest.raises(ValidationError) as ei:
        train(load_config(**cfg))
    assert ei.value.message == (
        f"data: the shards were tokenized with different vocabularies: {data / 'a.tok'} say "
        f"64; {data / 'b.tok'} and 1 more shard(s) say 300 (vocab_size in their headers); the "
        "same token id would mean different text in different shards"
    )
    assert ei.value.details["field"] == "data"
    hint = ei.value.hint or ""
    assert "tokenize all the data with one tokenizer" in hint and "--vocab-size 300" in hint
    assert not (aistack_home / "objects" / "checkpoints" / "mix").exists()


def test_shards_of_different_vocabularies_train_with_vocab_size_set_and_a_warning(
    aistack_home: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("torch")
    from aistack.train.config import load_config
    from aistack.train.run import train

    data = tmp_path / "data"
    _good(data, "a.tok", vocab=64)
    _good(data, "b.tok", vocab=300)
    cfg = dict(data=[str(data)], run_name="ext", seq_len=8, n_layer=1, n_head=2, n_embd=16)
    cfg |= dict(micro_batch_size=2, max_steps=2, device="cpu", mlflow=False, vocab_size=320)
    with caplog.at_level(logging.WARNING, logger="aistack.train.run"):
        assert train(load_config(**cfg)).step == 2
    assert any(
        "the shard headers give 2 vocabulary sizes" in r.getMessage()
        and "as one vocabulary of 320 ids because vocab_size is set" in r.getMessage()
        for r in caplog.records
    )
