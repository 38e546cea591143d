"""run_gang refuses bad arguments with a ValidationError naming them, before any rank starts
(they were tracebacks from inside subprocess, a hang, or a failure blaming the program)."""

from __future__ import annotations

import io
import math
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aistack.errors import ValidationError
from aistack.launch import RankSpec, build_rank_envs, run_gang

PY = sys.executable


def _ranks(n: int = 2) -> list[RankSpec]:
    return build_rank_envs("torch", ["127.0.0.1"], n, 29999, "t")


def _refused(field: str, says: str, **kw: Any) -> ValidationError:
    """run_gang with ``kw`` over good arguments raises a ValidationError starting ``says``;
    no rank was started (one would have written its marker file)."""
    marker = Path(kw.pop("marker"))
    args: dict[str, Any] = {
        "ranks": _ranks(2),
        "command": [PY, "-c", f"open({str(marker)!r}, 'a').write('x')"],
        "log_file": None,
    } | kw
    with pytest.raises(ValidationError) as ei:
        run_gang(args.pop("ranks"), args.pop("command"), args.pop("log_file"), **args)
    assert ei.value.message.startswith(says), ei.value.message
    assert ei.value.details.get("field") == field
    assert not marker.exists(), "a rank was started"
    return ei.value


def test_two_ranks_with_one_number_are_refused_not_waited_for_forever(tmp_path: Path) -> None:
    # the exits were counted by rank number: the gang waited for a third that never came
    twice = [RankSpec(host="h", rank=0, local_rank=0), RankSpec(host="h", rank=0, local_rank=1)]
    err = _refused("ranks", "ranks: rank 0 appears twice", ranks=twice, marker=tmp_path / "m")
    assert "build_rank_envs" in (err.hint or "")


@pytest.mark.parametrize(
    ("ranks", "says"),
    [
        ([{"rank": 0}], "ranks: must be a list of RankSpec, got a dict in it"),
        (RankSpec(host="h", rank=0, local_rank=0), "ranks: must be a list of RankSpec, got one"),
        ([RankSpec(host="h", rank=-1, local_rank=0)], "ranks: a rank number must be an integer"),
        (5, "ranks: must be a list of RankSpec, got int"),
    ],
)
def test_ranks_that_are_not_rank_specs_are_refused(tmp_path: Path, ranks: Any, says: str) -> None:
    _refused("ranks", says, ranks=ranks, marker=tmp_path / "m")


def test_ranks_may_be_any_iterable(tmp_path: Path) -> None:
    res = run_gang(iter(_ranks(2)), ["true"], None)
    assert res.exit_code == 0 and res.rank_exit_codes == [0, 0]


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"A": None}, "env: A must be a string, got None"),
        ({"A=B": "1"}, "env: 'A=B' is not an environment variable name"),
        ({"": "1"}, "env: '' is not an environment variable name"),
        ({"A": "x\0"}, "env: the value of A contains a NUL character"),
        ([("A", "1")], "env: must be a mapping"),
    ],
)
def test_an_env_no_process_can_get_is_refused(tmp_path: Path, env: Any, says: str) -> None:
    # TypeError / ValueError('illegal environment variable name', 'embedded null byte') before
    _refused("env", says, env=env, marker=tmp_path / "m")


def test_a_bad_rank_env_is_refused_before_the_first_rank_starts(tmp_path: Path) -> None:
    # rank 1's NUL was found by Popen after rank 0 had started: ValueError from subprocess
    ranks = _ranks(2)
    ranks[1].env["BAD"] = "x\0y"
    _refused("ranks[1].env", "ranks[1].env: the value of BAD", ranks=ranks, marker=tmp_path / "m")
    ranks[1].env["BAD"] = None  # type: ignore[assignment]
    _refused(
        "ranks[1].env", "ranks[1].env: BAD must be a string", ranks=ranks, marker=tmp_path / "m"
    )


def test_numbers_in_the_env_are_written_as_text(tmp_path: Path) -> None:
    # as build_rank_envs does (a TypeError from os.fsencode before)
    buf = io.BytesIO()
    ranks = _ranks(1)
    ranks[0].env["SEED"] = 7  # type: ignore[assignment]
    res = run_gang(ranks, "echo $SEED $EXTRA", buf, env={"PATH": "/usr/bin:/bin", "EXTRA": 1.5})  # type: ignore[dict-item]
    assert res.exit_code == 0 and buf.getvalue() == b"[rank 0] 7 1.5\n"


@pytest.mark.parametrize(
    ("command", "says"),
    [
        (None, "command: must be a list of arguments or a shell command string, got NoneType"),
        (b"true", "command: must be a list of arguments or a shell command string, got bytes"),
        (["echo", None], "command: argument 1 is None, not text"),
        (["echo", "a\0b"], "command: argument 1 contains a NUL character"),
        ("echo a\0b", "command: contains a NUL character"),
        ([""], "command: the program (argument 0) is an empty string"),
    ],
)
def test_a_command_no_process_can_run_is_refused(tmp_path: Path, command: Any, says: str) -> None:
    # TypeError, ValueError('embedded null byte'), or a failure 'could not start b'116''
    _refused("command", says, command=command, marker=tmp_path / "m")


def test_command_arguments_may_be_paths_and_numbers(tmp_path: Path) -> None:
    buf = io.BytesIO()
    res = run_gang(_ranks(1), [Path("/bin/echo"), tmp_path, 3], buf)
    assert res.exit_code == 0 and buf.getvalue() == f"[rank 0] {tmp_path} 3\n".encode()


def test_a_working_directory_that_is_missing_or_a_file_is_refused_by_name(tmp_path: Path) -> None:
    # was a failed gang saying "rank 0 could not start '.../python': [Errno 2] ...": the program
    # blamed for a missing folder
    missing = tmp_path / "nope"
    err = _refused(
        "cwd", f"cwd: working directory {str(missing)!r} does not exist", cwd=missing,
        marker=tmp_path / "m",
    )  # fmt: skip
    assert "existing folder" in (err.hint or "")
    a_file = tmp_path / "f"
    a_file.write_text("")
    _refused("cwd", f"cwd: working directory {str(a_file)!r} is not a folder", cwd=a_file,
             marker=tmp_path / "m")  # fmt: skip
    _refused("cwd", "cwd: empty path", cwd="", marker=tmp_path / "m")
    _refused("cwd", "cwd: must be a folder path, got 5", cwd=5, marker=tmp_path / "m")


def test_the_working_directory_is_used(tmp_path: Path) -> None:
    buf = io.BytesIO()
    assert run_gang(_ranks(1), ["pwd"], buf, cwd=tmp_path).exit_code == 0
    assert buf.getvalue() == f"[rank 0] {tmp_path}\n".encode()


def test_a_log_file_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    # IsADirectoryError / FileNotFoundError tracebacks; an int crashed the output thread
    # (the output was lost)
    err = _refused(
        "log_file", f"log_file: cannot append to {str(tmp_path)!r}: it is a folder",
        log_file=tmp_path, marker=tmp_path / "m",
    )  # fmt: skip
    assert "None to discard" in (err.hint or "")
    _refused("log_file", "log_file: empty path", log_file="", marker=tmp_path / "m")
    _refused(
        "log_file", "log_file: must be a path, an open file or None, got int", log_file=5,
        marker=tmp_path / "m",
    )  # fmt: skip
    blocked = tmp_path / "file"
    blocked.write_text("")
    _refused(
        "log_file", f"log_file: cannot append to {str(blocked / 'x.log')!r}:",
        log_file=blocked / "x.log", marker=tmp_path / "m",
    )  # fmt: skip


@pytest.mark.parametrize("grace", [math.nan, math.inf, -1, "10", True])
def test_a_grace_period_that_is_not_seconds_is_refused(tmp_path: Path, grace: Any) -> None:
    # NaN never reached the SIGKILL; '10' / 'x' failed only when the stop began
    _refused("grace_s", "grace_s: must be a finite number of seconds ≥ 0", grace_s=grace,
             marker=tmp_path / "m")  # fmt: skip


def test_on_start_that_is_not_a_function_is_refused(tmp_path: Path) -> None:
    # a TypeError once every rank had started
    _refused("on_start", "on_start: must be a function", on_start=5, marker=tmp_path / "m")


def test_a_grace_function_returning_nonsense_gets_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NaN from grace_s() (a cancel.json with "grace_s": NaN) never sent the SIGKILL: a rank
    # that ignores SIGTERM ran on
    import aistack.launch.gang as gang

    monkeypatch.setattr(gang, "DEFAULT_GRACE_S", 0.5, raising=False)
    t0 = time.monotonic()
    res = run_gang(
        _ranks(1), "trap '' TERM; sleep 20", None, grace_s=lambda: math.nan, timeout_s=0.3
    )
    assert time.monotonic() - t0 < 10
    assert res.timed_out and res.rank_exit_codes == [137]
    assert "grace_s() returned nan" in caplog.text
