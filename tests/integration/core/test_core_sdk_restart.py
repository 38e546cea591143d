"""The SDK against a real server that restarts: wait() and follow_logs() ride it out; the server
makes an open home dir owner-only at start."""

from __future__ import annotations

import stat
import threading
import time
from typing import Any

from aistack.client import Client


def test_wait_and_follow_logs_ride_out_a_server_restart(server) -> None:  # type: ignore[no-untyped-def]
    # make_server created the home with the default mode: the server tightened it at start
    assert stat.S_IMODE(server.home.stat().st_mode) == 0o700
    assert "changed it to 0700" in (server.home / "server-test.log").read_text()

    c = server.client()
    jid = c.submit({"command": "echo before; sleep 6; echo after", "resources": {"cpus": 1}})["id"]
    deadline = time.monotonic() + 30
    while c.get_job(jid)["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.1)
    out: dict[str, Any] = {}

    def waiter() -> None:
        try:
            out["job"] = Client(server.url, server.token).wait(jid, timeout=120)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            out["wait_error"] = exc

    def follower() -> None:
        try:
            out["logs"] = "".join(Client(server.url, server.token).follow_logs(jid))
        except Exception as exc:  # noqa: BLE001
            out["logs_error"] = exc

    threads = [threading.Thread(target=waiter), threading.Thread(target=follower)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    server.stop()
    time.sleep(2.0)  # both clients see refused connections meanwhile
    server.start()
    for t in threads:
        t.join(120)
    assert "wait_error" not in out and "logs_error" not in out, out
    assert out["job"]["state"] == "SUCCEEDED"
    assert out["logs"] == "before\nafter\n"
