"""A second `aistack up` on a database that a running server schedules against is refused
(two schedulers would hand out the same devices); the first keeps serving and keeps its
server.json; a server killed with SIGKILL is replaced at once (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import json
import socket
from typing import Any

import pytest


def twin(srv: Any) -> Any:
    """Another server (the conftest's ServerProc) on the same home and database, its own port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = dict(srv.env, AISTACK_PORT=str(port))
    return dataclasses.replace(srv, url=f"http://127.0.0.1:{port}", port=port, env=env, proc=None)


def test_second_server_on_one_database_is_refused(server) -> None:  # type: ignore[no-untyped-def]
    first = server
    second = twin(first)
    try:
        job = first.client().submit({"name": "keep", "command": "sleep 30"})
        with pytest.raises(RuntimeError, match="server exited") as ei:
            second.start(timeout=60)
        log = str(ei.value)
        assert f"another aistack server at {first.url}" in log
        assert f"pid {first.proc.pid}" in log
        assert "AISTACK_DATABASE_URL" in log
        # the first server is untouched: it answers, still owns server.json, its job is there
        info = json.loads((first.home / "server.json").read_text())
        assert info["pid"] == first.proc.pid and info["url"] == first.url
        assert first.client().get_job(job["id"])["state"] in {"QUEUED", "RUNNING"}

        first.kill9()  # the holder dies without giving the lease back
        third = twin(first)
        third.start(timeout=60)  # taken over at once: the holder's process is gone
        try:
            c = third.client()
            assert c.get_job(job["id"])["state"] in {"QUEUED", "RUNNING"}  # adopted, not lost
            info = json.loads((first.home / "server.json").read_text())
            assert info["pid"] == third.proc.pid
            c.cancel(job["id"])
        finally:
            third.stop()
    finally:
        second.stop()
