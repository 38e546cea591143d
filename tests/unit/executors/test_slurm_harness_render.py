"""The private Slurm cluster's configs (``aistack.testing.slurm``), without starting daemons:
accounting goes through slurmdbd with GPUs as a TRES, and a missing accounting program is
named with the install command."""

from __future__ import annotations

from pathlib import Path

import pytest

from aistack.testing import slurm


def _conf(**kw: object) -> dict[str, str]:
    text = slurm.render_slurm_conf(
        base=Path("/b"),
        host="h",
        cpus=2,
        memory_mb=1024,
        gpus=2,
        ctld_port=1,
        slurmd_port=2,
        munge_socket=Path("/b/munge/munge.socket"),
        **kw,  # type: ignore[arg-type]
    )
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line and " " not in line)


def test_without_accounting_nothing_is_stored() -> None:
    conf = _conf()
    assert conf["AccountingStorageType"] == "accounting_storage/none"
    assert "AccountingStoragePort" not in conf


def test_accounting_goes_to_slurmdbd_with_gpus_as_a_tres() -> None:
    conf = _conf(dbd_port=6819)
    assert conf["AccountingStorageType"] == "accounting_storage/slurmdbd"
    assert (conf["AccountingStorageHost"], conf["AccountingStoragePort"]) == ("127.0.0.1", "6819")
    assert conf["AccountingStorageTRES"] == "gres/gpu"
    # slurmdbd connections authenticate with the private munged, not /run/munge
    assert conf["AccountingStoragePass"] == "/b/munge/munge.socket"


def test_slurmdbd_conf_points_at_the_private_database() -> None:
    text = slurm.render_slurmdbd_conf(
        base=Path("/b"),
        dbd_port=6819,
        db_port=3307,
        munge_socket=Path("/b/munge/munge.socket"),
        db_password="pw",
    )
    conf = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    assert (conf["DbdAddr"], conf["DbdPort"]) == ("127.0.0.1", "6819")
    assert (conf["StorageHost"], conf["StoragePort"]) == ("127.0.0.1", "3307")
    assert (conf["StorageUser"], conf["StoragePass"], conf["StorageLoc"]) == (
        "slurm",
        "pw",
        "slurm_acct_db",
    )
    assert conf["AuthInfo"] == "socket=/b/munge/munge.socket"


def test_a_missing_accounting_program_is_named_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slurm, "_which", lambda name: None if name == "slurmdbd" else "/x")
    monkeypatch.setattr(slurm.os, "geteuid", lambda: 0)
    assert slurm.slurm_unavailable_reason() is None  # plain Slurm does not need it
    reason = slurm.slurm_unavailable_reason(accounting=True)
    assert reason is not None
    assert "(slurmdbd)" in reason and "apt-get install -y slurmdbd mariadb-server" in reason
