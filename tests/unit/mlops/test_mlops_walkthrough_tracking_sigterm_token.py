"""BufferedMetricsLogger in a job that is cancelled (SIGTERM) and outside a job (the token).

- A job is cancelled or preempted with SIGTERM; Python's default action ended the process at
  once, without atexit, and the points still buffered were lost without a word (a cancelled job
  logged 609 points, 430 reached its run). The logger now closes on SIGTERM, then the process
  dies of it as before.
- On the host of ``aistack up``, the logger and ``replay_spool`` find the server's ``/mlflow``
  from AISTACK_HOME but did not send its token (MLflow sends only $MLFLOW_TRACKING_TOKEN): every
  batch was refused ("INTERNAL_ERROR: missing or wrong API token"), retried, then spooled.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from aistack.mlops import replay_spool  # noqa: E402
from aistack.mlops.logger import BufferedMetricsLogger  # noqa: E402
from aistack.settings import reset_settings_cache  # noqa: E402

RUN = "a" * 32
TOKEN = "s3cret-token"


def _script(body: str) -> str:
    return textwrap.dedent(
        """
        import json, os, sys, time
        from aistack.mlops.logger import BufferedMetricsLogger

        class FileClient:
            def log_batch(self, run_id, metrics):
                with open(sys.argv[1], "a") as f:
                    for m in metrics:
                        f.write(json.dumps([m.key, m.value, m.step]) + "\\n")
        """
    ) + textwrap.dedent(body)


def _run_and_term(tmp_path: Path, body: str, env: dict[str, str] | None = None) -> tuple:
    out = tmp_path / "sent.jsonl"
    script = tmp_path / "job.py"
    script.write_text(_script(body).replace("RUNID", RUN))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "AISTACK_HOME": str(tmp_path / "home"), **(env or {})},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    sent = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    return proc.returncode, sent, err


def test_sigterm_sends_the_buffered_points_then_dies_of_sigterm(tmp_path: Path) -> None:
    code, sent, err = _run_and_term(
        tmp_path,
        """
        ml = BufferedMetricsLogger(run_id="RUNID", client=FileClient(), flush_interval_s=600)
        for i in range(250):
            ml.log("loss", float(i), step=i)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    assert code == -signal.SIGTERM, err  # still ended by the signal (a cancel reads the same)
    assert sent == [["loss", float(i), i] for i in range(250)]  # was []: all lost


def test_sigterm_unsendable_points_are_spooled_within_the_grace(tmp_path: Path) -> None:
    code, sent, err = _run_and_term(
        tmp_path,
        """
        class Down:
            def log_batch(self, run_id, metrics):
                raise ConnectionError("server unavailable")

        ml = BufferedMetricsLogger(run_id="RUNID", client=Down(), flush_interval_s=600,
                                   max_backoff_s=0.05, spool_dir=sys.argv[1] + ".spool")
        for i in range(7):
            ml.log("loss", float(i), step=i)
        print("ready", flush=True)
        time.sleep(60)
        """,
        env={"AISTACK_GRACE_S": "2"},
    )
    assert code == -signal.SIGTERM, err
    files = list((tmp_path / "sent.jsonl.spool").glob(f"{RUN}-*.jsonl"))
    assert len(files) == 1, err
    lines = [json.loads(x) for x in files[0].read_text().splitlines()]
    assert [(d["key"], d["step"]) for d in lines] == [("loss", i) for i in range(7)]
    assert "replay_spool" in err  # the error names the file and how to send it


def test_a_handler_the_program_set_is_left_alone(tmp_path: Path) -> None:
    code, sent, err = _run_and_term(
        tmp_path,
        """
        import signal
        def mine(signum, frame):
            print("mine", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, mine)
        ml = BufferedMetricsLogger(run_id="RUNID", client=FileClient(), flush_interval_s=600)
        assert signal.getsignal(signal.SIGTERM) is mine
        ml.log("loss", 1.0, step=0)
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    assert code == 7, err  # the program's own handler ran (atexit then closed the logger)
    assert sent == [["loss", 1.0, 0]]


class _FakeMlflow(BaseHTTPRequestHandler):
    """Answers MLflow's REST calls like the aistack server: 401 without its bearer token."""

    seen: list[tuple[str, str, str | None]] = []

    def _answer(self, method: str) -> None:
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        auth = self.headers.get("authorization")
        type(self).seen.append((method, self.path, auth))
        if auth != f"Bearer {TOKEN}":
            body, status = {"code": "unauthorized", "message": "missing or wrong API token"}, 401
        else:
            body, status = {"metrics": []}, 200
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def aistack_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fake aistack server found from AISTACK_HOME (server.json, token file); yields its URL."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _FakeMlflow)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text(TOKEN + "\n")
    (home / "server.json").write_text(json.dumps({"url": url}))
    monkeypatch.setenv("AISTACK_HOME", str(home))
    for var in ("AISTACK_URL", "AISTACK_TOKEN", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    reset_settings_cache()
    _FakeMlflow.seen = []
    yield url
    srv.shutdown()
    srv.server_close()
    reset_settings_cache()


def test_logger_sends_the_aistack_token_to_the_aistack_server(
    aistack_server: str, tmp_path: Path
) -> None:
    ml = BufferedMetricsLogger(run_id=RUN, close_timeout_s=2, spool_dir=tmp_path / "spool")
    ml.log("loss", 0.5, step=3)
    ml.flush(timeout_s=10)  # was BackendError: timed out, every batch refused (401)
    ml.close()
    posts = [s for s in _FakeMlflow.seen if s[0] == "POST"]
    assert posts and posts[-1][1] == "/mlflow/api/2.0/mlflow/runs/log-batch"
    assert {s[2] for s in posts} == {f"Bearer {TOKEN}"}
    assert not (tmp_path / "spool").exists()


def test_replay_spool_sends_the_aistack_token(aistack_server: str, tmp_path: Path) -> None:
    class Down:
        def log_batch(self, run_id: str, metrics: list) -> None:
            raise ConnectionError("server unavailable")

    ml = BufferedMetricsLogger(
        run_id=RUN, client=Down(), close_timeout_s=0.2, spool_dir=tmp_path / "spool"
    )
    ml.log("loss", 0.5, step=3)
    with pytest.raises(Exception, match="replay_spool"):
        ml.close()
    (path,) = ml.spooled
    assert replay_spool(path) == 1  # was BackendError: 'missing or wrong API token'
    assert {s[2] for s in _FakeMlflow.seen} == {f"Bearer {TOKEN}"}
    assert not path.exists()


def test_the_aistack_token_goes_to_the_aistack_server_only(
    aistack_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.mlops._client import token_for

    assert token_for(None) == TOKEN
    assert token_for(aistack_server + "/mlflow/") == TOKEN
    assert token_for("http://tracking.example.com/mlflow") is None  # not sent elsewhere
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example.com")
    assert token_for(None) is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", aistack_server + "/mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "given")
    assert token_for(None) is None  # MLflow sends the one given itself
