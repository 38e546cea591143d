from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from aistack.errors import ValidationError
from aistack.launch import build_rank_envs, run_gang

PY = sys.executable


def _ranks(n: int = 2):
    return build_rank_envs("torch", ["127.0.0.1"], n, 29999, "t")


def test_all_ranks_run_with_their_env_and_prefixed_log(tmp_path: Path) -> None:
    log = tmp_path / "job.log"
    code = "import os; print('hello', os.environ['RANK'], os.environ['WORLD_SIZE'])"
    pids: list[int] = []
    res = run_gang(_ranks(3), [PY, "-c", code], log, on_start=pids.extend)
    assert res.exit_code == 0 and res.failed_rank is None
    assert res.rank_exit_codes == [0, 0, 0]
    assert len(pids) == 3 and len(set(pids)) == 3
    lines = sorted(log.read_text().splitlines())
    assert lines == ["[rank 0] hello 0 3", "[rank 1] hello 1 3", "[rank 2] hello 2 3"]


def test_instantly_exiting_ranks_all_start() -> None:
    # rank 0 leads the process group; reaping it before the last rank joined made setpgid fail
    for _ in range(3):
        res = run_gang(_ranks(16), ["/bin/true"], None)
        assert res.exit_code == 0, res.message
        assert res.rank_exit_codes == [0] * 16


def test_ranks_share_one_new_process_group(tmp_path: Path) -> None:
    code = "import os; print(os.getpgid(0))"
    buf = io.StringIO()
    res = run_gang(_ranks(2), [PY, "-c", code], buf)
    assert res.exit_code == 0
    pgids = {line.split()[-1] for line in buf.getvalue().splitlines()}
    assert len(pgids) == 1
    assert int(pgids.pop()) != os.getpgid(0)


def test_failing_rank_stops_the_others_and_reports_its_error(tmp_path: Path) -> None:
    code = (
        "import os, sys, time\n"
        "if os.environ['RANK'] == '1':\n"
        "    print('working', flush=True)\n"
        "    sys.stderr.write('ValueError: bad shard 17\\n'); sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    t0 = time.monotonic()
    res = run_gang(_ranks(3), [PY, "-c", code], tmp_path / "log", grace_s=5)
    assert time.monotonic() - t0 < 30
    assert res.exit_code == 3
    assert res.failed_rank == 1
    assert "rank 1 exited with code 3" in res.message
    assert "ValueError: bad shard 17" in res.message
    assert res.rank_exit_codes[0] == 128 + signal.SIGTERM
    assert res.rank_exit_codes[2] == 128 + signal.SIGTERM


def test_rank_ignoring_sigterm_is_killed_after_grace(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "if os.environ['RANK'] == '0':\n"
        "    time.sleep(0.3); sys.exit(1)\n"
        "time.sleep(60)\n"
    )
    t0 = time.monotonic()
    res = run_gang(_ranks(2), [PY, "-c", code], None, grace_s=0.5)
    assert time.monotonic() - t0 < 20
    assert res.failed_rank == 0 and res.exit_code == 1
    assert res.rank_exit_codes[1] == 128 + signal.SIGKILL


def test_sigterm_and_sigusr1_are_forwarded_to_every_rank(tmp_path: Path) -> None:
    code = (
        "import os, signal, sys, time\n"
        "got = []\n"
        "signal.signal(signal.SIGUSR1, lambda s, f: got.append('USR1'))\n"
        "signal.signal(signal.SIGTERM, lambda s, f: got.append('TERM'))\n"
        "print('ready', flush=True)\n"
        "while 'TERM' not in got: time.sleep(0.01)\n"
        "print('saw', ','.join(got), flush=True)\n"
        "sys.exit(143)\n"
    )
    log = tmp_path / "log"

    def on_start(pids: list[int]) -> None:
        def send() -> None:
            deadline = time.monotonic() + 20
            while log.read_text().count("ready") < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGUSR1)
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=send, daemon=True).start()

    before = signal.getsignal(signal.SIGTERM)
    res = run_gang(_ranks(2), [PY, "-c", code], log, on_start=on_start)
    assert signal.getsignal(signal.SIGTERM) == before  # handlers restored
    assert res.signals_forwarded == ["SIGUSR1", "SIGTERM"]
    assert res.exit_code == 143
    assert "after SIGUSR1, SIGTERM was forwarded" in res.message
    text = log.read_text()
    assert "[rank 0] saw USR1,TERM" in text and "[rank 1] saw USR1,TERM" in text


def test_string_command_runs_in_shell(tmp_path: Path) -> None:
    buf = io.BytesIO()
    res = run_gang(_ranks(1), "echo rank=$RANK && exit 0", buf)
    assert res.exit_code == 0
    assert buf.getvalue() == b"[rank 0] rank=0\n"


def test_missing_program_fails_cleanly(tmp_path: Path) -> None:
    res = run_gang(_ranks(2), ["/nonexistent/prog"], tmp_path / "log")
    assert res.exit_code == 127 and res.failed_rank == 0
    assert "could not start" in res.message


@pytest.mark.parametrize("cmd", ["", "   ", []])
def test_empty_command_is_a_validation_error(cmd) -> None:
    with pytest.raises(ValidationError, match="command"):
        run_gang(_ranks(1), cmd, None)


def test_no_ranks_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="ranks"):
        run_gang([], ["true"], None)


# a rank that checkpoints on SIGTERM: 1 s of "saving", then a file, then exit 143
CHECKPOINTING_RANK = (
    "import os, signal, sys, time\n"
    "out = sys.argv[1]\n"
    "def term(s, f):\n"
    "    time.sleep(1.0)\n"
    "    open(os.path.join(out, 'rank%s.saved' % os.environ['RANK']), 'w').write('ok')\n"
    "    print('checkpoint saved', flush=True)\n"
    "    sys.exit(143)\n"
    "signal.signal(signal.SIGTERM, term)\n"
    "print('ready', os.getpid(), os.getpgid(0), flush=True)\n"
    "time.sleep(60)\n"
)


def _sigterm_when_ready(log: Path, n: int):
    def on_start(_pids: list[int]) -> None:
        def send() -> None:
            deadline = time.monotonic() + 20
            while log.read_text().count("ready") < n and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=send, daemon=True).start()

    return on_start


@pytest.mark.parametrize("wrap", ["{cmd}", "{cmd}; exit $?"], ids=["plain", "compound"])
def test_forwarded_sigterm_lets_ranks_under_a_shell_checkpoint(tmp_path: Path, wrap: str) -> None:
    # a string command runs under a shell: the SIGTERM reaches the whole group, the shell may
    # die at once, and the real rank process still gets its grace period (it was SIGKILLed)
    script = tmp_path / "rank.py"
    script.write_text(CHECKPOINTING_RANK)
    log = tmp_path / "log"
    cmd = wrap.format(cmd=f"{PY} {script} {tmp_path}")
    res = run_gang(_ranks(2), cmd, log, on_start=_sigterm_when_ready(log, 2), grace_s=20)
    text = log.read_text()
    assert (tmp_path / "rank0.saved").exists() and (tmp_path / "rank1.saved").exists(), text
    assert text.count("checkpoint saved") == 2
    assert res.signals_forwarded == ["SIGTERM"]
    assert res.exit_code == 143


def test_plain_string_command_is_execed_so_the_rank_is_the_program(tmp_path: Path) -> None:
    buf = io.StringIO()
    pids: list[int] = []
    res = run_gang(_ranks(1), f"{PY} -c 'import os; print(os.getpid())'", buf, on_start=pids.extend)
    assert res.exit_code == 0
    assert buf.getvalue().split()[-1] == str(pids[0])


def test_forwarded_sigterm_kills_after_the_grace_period(tmp_path: Path) -> None:
    code = (
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "log"
    t0 = time.monotonic()
    res = run_gang(
        _ranks(2), f'{PY} -c "{code}"; true', log, on_start=_sigterm_when_ready(log, 2), grace_s=0.5
    )
    assert time.monotonic() - t0 < 20
    assert res.signals_forwarded == ["SIGTERM"]
    assert res.exit_code != 0


def test_grace_can_be_read_when_the_stop_begins(tmp_path: Path) -> None:
    script = tmp_path / "rank.py"
    script.write_text(CHECKPOINTING_RANK)
    log = tmp_path / "log"
    asked: list[int] = []

    def grace() -> float:
        asked.append(1)
        return 20.0

    res = run_gang(
        _ranks(1), f"{PY} {script} {tmp_path}; exit $?", log,
        on_start=_sigterm_when_ready(log, 1), grace_s=grace,
    )  # fmt: skip
    assert asked and (tmp_path / "rank0.saved").exists()
    assert res.exit_code == 143


def test_a_huge_line_is_cut_into_parts_and_the_message_stays_short(tmp_path: Path) -> None:
    from aistack.launch.gang import MAX_LINE_BYTES, TAIL_CHARS

    # 3 MB on stderr without a newline, then a failure: the runner reads it in parts (not
    # one 3 MB line in memory) and quotes only the end of it in the message (the job record)
    code = (
        "import os, sys\n"
        "if os.environ['RANK'] == '1':\n"
        "    sys.stderr.write('x' * 3_000_000); sys.stderr.flush(); sys.exit(3)\n"
    )
    log = tmp_path / "log"
    res = run_gang(_ranks(2), [PY, "-c", code], log, grace_s=5)
    assert res.exit_code == 3 and res.failed_rank == 1
    assert len(res.message) <= TAIL_CHARS + 100
    assert res.message.startswith("rank 1 exited with code 3:\n") and res.message.endswith("xxx")
    data = log.read_bytes()
    assert data.count(b"x") == 3_000_000
    lines = data.splitlines()
    assert len(lines) >= 3_000_000 // MAX_LINE_BYTES
    assert all(ln.startswith(b"[rank 1] ") and len(ln) <= MAX_LINE_BYTES + 9 for ln in lines)
