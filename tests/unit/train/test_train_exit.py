"""How the trainer's process ends: a distributed rank leaves through os._exit after a clean run
(so torch's gloo teardown cannot turn a finished rank into a SIGABRT), running the atexit
handlers and flushing its output first; a single process exits as usual."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import atexit, sys
    import aistack.train.run as run

    atexit.register(lambda: print("atexit ran", flush=True))
    outcome = sys.argv[1]

    def fake_main(argv=None):
        print("summary line")  # buffered: must still reach the pipe
        if outcome == "raise":
            raise RuntimeError("boom in rank")
        if outcome == "ctrl-c":
            raise KeyboardInterrupt
        return int(outcome)

    run.main = fake_main
    run.run_and_exit()
    print("not reached when distributed")
    """
)


def _run(outcome: str, world: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "WORLD_SIZE": world, "PYTHONPATH": ":".join(sys.path)}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, outcome],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.mark.parametrize("outcome,code", [("0", 0), ("143", 143), ("2", 2)])
def test_distributed_rank_exits_with_its_code_after_atexit_and_flush(
    outcome: str, code: int
) -> None:
    res = _run(outcome, "2")
    assert res.returncode == code, res.stderr
    assert res.stdout.splitlines() == ["summary line", "atexit ran"]


def test_distributed_rank_that_raises_prints_the_traceback_and_exits_1() -> None:
    res = _run("raise", "2")
    assert res.returncode == 1
    assert "RuntimeError: boom in rank" in res.stderr
    assert "Traceback" in res.stderr
    assert res.stdout.splitlines() == ["summary line", "atexit ran"]


def test_distributed_rank_interrupted_exits_130() -> None:
    assert _run("ctrl-c", "2").returncode == 130


def test_single_process_exits_normally() -> None:
    res = _run("3", "1")
    assert res.returncode == 3
    assert res.stdout.splitlines() == ["summary line", "atexit ran"]
