"""A private one-node Slurm cluster (munged + slurmctld + slurmd) for tests and demos.

Uses Debian's packages (``slurm-wlm``, ``munge``; scripts/ci/install-servers.sh installs
them). Everything lives in one temporary directory: a fresh munge key and socket, the
``slurm.conf`` written at run time (``SlurmctldHost``/``NodeName`` = ``hostname -s`` with
``NodeAddr=127.0.0.1``, CPUs and RealMemory from ``slurmd -C``, free ports, no accounting),
state, spool, logs and pid files. Nothing under /etc, /run or /var is touched, and the
daemons run in the foreground as our children so ``stop()`` ends exactly them, by PID.

Fake GPUs: ``gpus=N`` declares ``Gres=gpu:N`` on the node with a gres.conf entry without
device files, so ``--gres=gpu:N`` requests are scheduled and counted like real ones.

Clients (sbatch, squeue, scontrol, scancel) find the cluster through ``SLURM_CONF``:
``cluster.env()`` returns it, and :class:`aistack.executors.slurm.SlurmExecutor` takes it
as ``slurm_conf=cluster.conf_path``.

Accounting (``accounting=True``): a private MariaDB server (``mariadb-install-db`` +
``mariadbd`` on a free port of 127.0.0.1, its data in the same directory) and ``slurmdbd``
in front of it, so ``sacct`` and ``sacctmgr`` work as on a production cluster; GPUs are
accounted (``AccountingStorageTRES=gres/gpu``, so AllocTRES lists ``gres/gpu=N``). It needs
Debian's ``slurmdbd`` and ``mariadb-server`` and adds a few seconds to the start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aistack.errors import BackendError, NotSupportedError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install them with scripts/ci/install-servers.sh (apt-get install -y slurm-wlm munge)"
)
ACCOUNTING_INSTALL_HINT = (
    "install them with scripts/ci/install-servers.sh (apt-get install -y slurmdbd mariadb-server)"
)
_DAEMONS = ("munged", "slurmctld", "slurmd")
_CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
_ACCOUNTING = ("mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "sacct", "sacctmgr")
_STOP_ORDER = ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def slurm_unavailable_reason(*, accounting: bool = False) -> str | None:
    """None when a private Slurm cluster (with ``accounting``: and its slurmdbd + MariaDB)
    can be started here, else why not (with the fix)."""
    missing = [n for n in _DAEMONS + _CLIENTS if _which(n) is None]
    if missing:
        return f"Slurm/munge programs missing ({', '.join(missing)}): {INSTALL_HINT}"
    missing = [n for n in _ACCOUNTING if accounting and _which(n) is None]
    if missing:
        return (
            f"Slurm accounting programs missing ({', '.join(missing)}): {ACCOUNTING_INSTALL_HINT}"
        )
    if os.geteuid() != 0:
        return "a private Slurm cluster needs root (slurmd starts jobs as their users)"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_hardware() -> dict[str, int]:
    """CPUs and RealMemory (MB) as ``slurmd -C`` reports them for this machine."""
    slurmd = _which("slurmd")
    if slurmd is None:
        raise NotSupportedError(f"slurmd not found: {INSTALL_HINT}")
    out = subprocess.run(
        [slurmd, "-C"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    hw = {"CPUs": os.cpu_count() or 1, "RealMemory": 1024}
    for tok in out.split():
        k, _, v = tok.partition("=")
        if k in ("CPUs", "RealMemory") and v.isdigit():
            hw[k] = int(v)
    return hw


def render_slurm_conf(
    *,
    base: Path,
    host: str,
    cpus: int,
    memory_mb: int,
    gpus: int,
    ctld_port: int,
    slurmd_port: int,
    munge_socket: Path,
    partition: str = "debug",
    kill_wait_s: int = 5,
    dbd_port: int | None = None,
) -> str:
    """slurm.conf for the private cluster; with ``dbd_port``, accounting through the slurmdbd
    listening there (GPUs accounted as ``gres/gpu``)."""
    gres = f" Gres=gpu:{gpus}" if gpus else ""
    accounting = (
        [
            "AccountingStorageType=accounting_storage/slurmdbd",
            "AccountingStorageHost=127.0.0.1",
            f"AccountingStoragePort={dbd_port}",
            "AccountingStorageTRES=gres/gpu",
            # the munge socket for slurmdbd connections (AuthInfo covers only the cluster's)
            f"AccountingStoragePass={munge_socket}",
        ]
        if dbd_port
        else ["AccountingStorageType=accounting_storage/none"]
    )
    return "\n".join(
        [
            "# written by aistack.testing.slurm for a private test cluster",
            "ClusterName=aistack",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={slurmd_port}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={base / 'state'}",
            f"SlurmdSpoolDir={base / 'spool'}",
            f"SlurmctldPidFile={base / 'slurmctld.pid'}",
            f"SlurmdPidFile={base / 'slurmd.pid'}",
            f"SlurmctldLogFile={base / 'slurmctld.log'}",
            f"SlurmdLogFile={base / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=2",
            *accounting,
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=300",
            f"KillWait={kill_wait_s}",
            "InactiveLimit=0",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "GresTypes=gpu",
            f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb}{gres} State=UNKNOWN",
            f"PartitionName={partition} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def render_slurmdbd_conf(
    *, base: Path, dbd_port: int, db_port: int, munge_socket: Path, db_password: str
) -> str:
    """slurmdbd.conf: slurmdbd on 127.0.0.1:``dbd_port``, its database the private MariaDB on
    127.0.0.1:``db_port`` (user ``slurm``). slurmdbd reads it from SLURM_CONF's directory and
    refuses it unless only its owner can read it (0600)."""
    return "\n".join(
        [
            "# written by aistack.testing.slurm for a private test cluster",
            "AuthType=auth/munge",
            f"AuthInfo=socket={munge_socket}",
            "DbdAddr=127.0.0.1",
            "DbdHost=localhost",
            f"DbdPort={dbd_port}",
            "SlurmUser=root",
            f"LogFile={base / 'slurmdbd.log'}",
            f"PidFile={base / 'slurmdbd.pid'}",
            "StorageType=accounting_storage/mysql",
            "StorageHost=127.0.0.1",
            f"StoragePort={db_port}",
            "StorageUser=slurm",
            f"StoragePass={db_password}",
            "StorageLoc=slurm_acct_db",
            "",
        ]
    )


@dataclass(kw_only=True)
class SlurmCluster:
    """A running private Slurm cluster; ``stop()`` ends its daemons by PID."""

    base_dir: Path
    host: str
    partition: str
    gpus: int
    accounting: bool = False
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _stopped: bool = False

    @property
    def conf_path(self) -> Path:
        return self.base_dir / "slurm.conf"

    def env(self) -> dict[str, str]:
        """Environment for Slurm client commands talking to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf_path)}

    def run(
        self, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        res = subprocess.run(
            list(args), capture_output=True, text=True, env=self.env(), timeout=timeout, check=False
        )
        if check and res.returncode != 0:
            raise BackendError(
                f"{' '.join(args)} failed: {res.stderr.strip() or res.stdout.strip()}"
            )
        return res

    def logs(self) -> str:
        out = []
        for name in (
            "munge/munged.log",
            "mysql/error.log",
            "slurmdbd.log",
            "slurmdbd.stdout",
            "slurmctld.log",
            "slurmd.log",
            "slurmd.stdout",
            "slurmctld.stdout",
        ):
            p = self.base_dir / name
            if p.exists():
                out.append(
                    f"--- {name} (last lines)\n"
                    + "\n".join(p.read_text(errors="replace").splitlines()[-30:])
                )
        return "\n".join(out)

    def wait_node_idle(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            for name, p in self.procs.items():
                if p.poll() is not None:
                    raise BackendError(
                        f"{name} exited with {p.returncode} while starting\n{self.logs()}"
                    )
            res = self.run("sinfo", "-h", "-N", "-o", "%t", check=False)
            state = res.stdout.strip()
            if state and all(s.rstrip("*") in ("idle", "mix", "alloc") for s in state.split()):
                return
            time.sleep(0.3)
        raise BackendError(
            f"Slurm node not ready after {timeout_s:.0f} s (state {state!r})\n{self.logs()}"
        )

    def sacct(self, *args: str, timeout: float = 30) -> str:
        """``sacct ARGS`` against this cluster's accounting (``accounting=True``); its stdout."""
        if not self.accounting:
            raise NotSupportedError("this cluster has no accounting: start it with accounting=True")
        return self.run("sacct", *args, timeout=timeout).stdout

    def wait_accounted(self, job_ids: list[str], timeout_s: float = 60) -> None:
        """Wait until slurmdbd has every job of ``job_ids`` with an end time (slurmctld sends
        the records asynchronously, a few seconds after a job ends)."""
        if not self.accounting:
            raise NotSupportedError("this cluster has no accounting: start it with accounting=True")
        deadline = time.monotonic() + timeout_s
        ended: dict[str, str] = {}
        while time.monotonic() < deadline:
            res = self.run(
                "sacct", "-X", "-n", "-a", "--parsable2", "--format=JobID,End,State", check=False
            )  # a transient slurmdbd error is retried like a record not there yet
            ended = {}
            for line in res.stdout.splitlines() if res.returncode == 0 else []:
                jid, _, rest = line.partition("|")
                end, _, state = rest.partition("|")
                if end and end != "Unknown":
                    ended[jid] = state
            if all(j in ended for j in job_ids):
                return
            time.sleep(0.5)
        missing = [j for j in job_ids if j not in ended]
        raise BackendError(
            f"jobs {', '.join(missing)} not accounted as ended after {timeout_s:.0f} s\n"
            + self.logs()
        )

    def restart_controller(self, *, clear_state: bool = False) -> None:
        """Stop slurmctld and start it again (``clear_state``: without its saved state, as
        after a controller lost its disk, so it no longer knows any job; the accounting does)."""
        p = self.procs["slurmctld"]
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
        args = [str(_which("slurmctld")), "-D", "-c" if clear_state else "-i"]
        _spawn(self, "slurmctld", [*args, "-f", str(self.conf_path)], self.env())
        _wait_ctld(self)
        self.wait_node_idle()

    def stop(self, *, remove: bool = True) -> None:
        """Stop the daemons (SIGTERM, then SIGKILL), slurmd first, and remove the dir."""
        if self._stopped:
            return
        self._stopped = True
        for name in _STOP_ORDER:
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    p.kill()
                p.wait(timeout=5)
        if remove:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_slurm(
    *,
    gpus: int = 2,
    partition: str = "debug",
    memory_mb: int | None = None,
    kill_wait_s: int = 5,
    accounting: bool = False,
) -> SlurmCluster:
    """Start munged, slurmctld and slurmd with a config written now; wait until the node is idle.
    With ``accounting``, also a private MariaDB and slurmdbd first (module docstring).

    About 2-4 s (accounting: a few more). Raises NotSupportedError when Slurm or munge (or,
    with accounting, slurmdbd or MariaDB) is missing, with the install command; BackendError
    with the daemons' log tails when they do not come up.
    """
    reason = slurm_unavailable_reason(accounting=accounting)
    if reason:
        raise NotSupportedError(reason)
    import pwd

    base = Path(tempfile.mkdtemp(prefix="aistack-slurm-"))
    os.chmod(base, 0o755)
    cluster = SlurmCluster(
        base_dir=base,
        host=socket.gethostname().split(".")[0],
        partition=partition,
        gpus=gpus,
        accounting=accounting,
    )
    try:
        _start(cluster, pwd.getpwnam("munge"), memory_mb=memory_mb, kill_wait_s=kill_wait_s)
    except BaseException:
        cluster.stop(remove=False)
        logs = cluster.logs()
        shutil.rmtree(base, ignore_errors=True)
        log.error("Slurm did not start:\n%s", logs)
        raise
    return cluster


def _start(
    cluster: SlurmCluster, munge_pw: Any, *, memory_mb: int | None, kill_wait_s: int
) -> None:
    base = cluster.base_dir
    mdir = base / "munge"
    mdir.mkdir(mode=0o700)
    key = mdir / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o600)
    for p in (mdir, key):
        os.chown(p, munge_pw.pw_uid, munge_pw.pw_gid)
    sock = mdir / "munge.socket"
    # munged: as the munge user, in the foreground, everything in our directory
    cluster.procs["munged"] = subprocess.Popen(
        [
            str(_which("munged")),
            "--foreground",
            f"--socket={sock}",
            f"--key-file={key}",
            f"--pid-file={mdir / 'munged.pid'}",
            f"--seed-file={mdir / 'munged.seed'}",
            f"--log-file={mdir / 'munged.log'}",
            "--force",
        ],
        user=munge_pw.pw_uid,
        group=munge_pw.pw_gid,
        extra_groups=[],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(base / "munged.stderr", "wb"),  # noqa: SIM115 - owned by the child
        start_new_session=True,
        cwd="/",
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        if cluster.procs["munged"].poll() is not None or time.monotonic() > deadline:
            err = (base / "munged.stderr").read_text(errors="replace")
            raise BackendError(f"munged did not start: {err.strip()}")
        time.sleep(0.05)
    # the munge socket dir is 0700 munge-owned; root clients can still reach it
    os.chmod(mdir, 0o711)

    hw = node_hardware()
    for d in ("state", "spool"):
        (base / d).mkdir()
    dbd_port = _start_accounting(cluster, sock) if cluster.accounting else None
    conf = render_slurm_conf(
        base=base,
        host=cluster.host,
        cpus=hw["CPUs"],
        memory_mb=memory_mb or hw["RealMemory"],
        gpus=cluster.gpus,
        ctld_port=_free_port(),
        slurmd_port=_free_port(),
        munge_socket=sock,
        partition=cluster.partition,
        kill_wait_s=kill_wait_s,
        dbd_port=dbd_port,
    )
    cluster.conf_path.write_text(conf)
    # Slurm drops GPUs without device files: give each fake GPU a file of its own
    gres_lines = []
    if cluster.gpus:
        (base / "dev").mkdir()
        for i in range(cluster.gpus):
            (base / "dev" / f"fakegpu{i}").touch()
        files = (
            f"{base / 'dev'}/fakegpu[0-{cluster.gpus - 1}]"
            if cluster.gpus > 1
            else f"{base / 'dev'}/fakegpu0"
        )
        gres_lines.append(f"NodeName={cluster.host} Name=gpu File={files}")
    (base / "gres.conf").write_text("AutoDetect=off\n" + "\n".join(gres_lines) + "\n")
    env = cluster.env()
    for name, args in (
        ("slurmctld", [str(_which("slurmctld")), "-D", "-i", "-f", str(cluster.conf_path)]),
        ("slurmd", [str(_which("slurmd")), "-D", "-f", str(cluster.conf_path)]),
    ):
        _spawn(cluster, name, args, env)
        if name == "slurmctld":
            _wait_ctld(cluster)
    cluster.wait_node_idle()
    log.info("Slurm cluster up in %s (node %s, %d fake GPUs)", base, cluster.host, cluster.gpus)


def _spawn(cluster: SlurmCluster, name: str, args: list[str], env: dict[str, str]) -> None:
    cluster.procs[name] = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=open(cluster.base_dir / f"{name}.stdout", "wb"),  # noqa: SIM115 - the child's
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=str(cluster.base_dir),
    )


def _wait_for(cluster: SlurmCluster, name: str, ready: Any, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        p = cluster.procs[name]
        if p.poll() is not None:
            raise BackendError(f"{name} exited with {p.returncode}\n{cluster.logs()}")
        if time.monotonic() > deadline:
            raise BackendError(f"{name} not ready after {timeout_s:.0f} s\n{cluster.logs()}")
        time.sleep(0.1)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _start_accounting(cluster: SlurmCluster, munge_socket: Path) -> int:
    """A private MariaDB (root only through its socket; user ``slurm`` with a random password
    over TCP) and slurmdbd in front of it; returns slurmdbd's port."""
    import secrets

    base = cluster.base_dir
    data, sock = base / "mysql" / "data", base / "mysql" / "mysqld.sock"
    data.parent.mkdir()
    cluster.run(
        str(_which("mariadb-install-db")),
        "--no-defaults",
        f"--datadir={data}",
        "--user=root",
        "--auth-root-authentication-method=socket",
        "--skip-test-db",
        timeout=120,
    )
    db_port = _free_port()
    env = cluster.env()
    _spawn(
        cluster,
        "mariadbd",
        [
            str(_which("mariadbd")),
            "--no-defaults",
            f"--datadir={data}",
            "--user=root",
            "--bind-address=127.0.0.1",
            f"--port={db_port}",
            f"--socket={sock}",
            f"--pid-file={base / 'mysql' / 'mysqld.pid'}",
            f"--log-error={base / 'mysql' / 'error.log'}",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
        ],
        env,
    )
    _wait_for(cluster, "mariadbd", lambda: sock.exists() and _listening(db_port))
    password = secrets.token_hex(12)
    grants = "".join(
        f"CREATE USER 'slurm'@'{h}' IDENTIFIED BY '{password}'; "
        f"GRANT ALL ON slurm_acct_db.* TO 'slurm'@'{h}'; "
        for h in ("localhost", "127.0.0.1")
    )
    cluster.run(
        str(_which("mariadb")), "--no-defaults", f"--socket={sock}", "-u", "root", "-e", grants
    )
    dbd_port = _free_port()
    text = render_slurmdbd_conf(
        base=base,
        dbd_port=dbd_port,
        db_port=db_port,
        munge_socket=munge_socket,
        db_password=password,
    )
    # it holds the database password: only its owner may read it, from the start
    fd = os.open(base / "slurmdbd.conf", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    _spawn(cluster, "slurmdbd", [str(_which("slurmdbd")), "-D"], env)
    _wait_for(cluster, "slurmdbd", lambda: _listening(dbd_port))
    return dbd_port


def _wait_ctld(cluster: SlurmCluster, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        p = cluster.procs["slurmctld"]
        if p.poll() is not None:
            raise BackendError(f"slurmctld exited with {p.returncode}\n{cluster.logs()}")
        if cluster.run("scontrol", "ping", check=False).stdout.count("UP"):
            return
        time.sleep(0.2)
    raise BackendError(f"slurmctld did not answer within {timeout_s:.0f} s\n{cluster.logs()}")


@contextlib.contextmanager
def slurm_cluster(**kwargs: Any) -> Iterator[SlurmCluster]:
    cluster = start_slurm(**kwargs)
    try:
        yield cluster
    finally:
        cluster.stop()
