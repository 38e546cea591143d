"""A reference whose holder still runs cannot be dropped through the Python API either (before,
only `aistack data unref` asked the server about a job, and nothing protected a running
web-data pipeline run's ``webdata:`` reference): a job the metadata DB's ``jobs`` table says
has not finished, or a reference a live process holds a lease on (:mod:`aistack.storage.holds`),
is kept unless ``force=True``; a dead holder's lease blocks nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aistack.errors import ConflictError


def _referenced(home: Path, *refs: tuple[str, str]) -> Any:
    from aistack.storage import Datasets

    src = home / "f.txt"
    src.write_text("x")
    ds = Datasets.from_settings()
    ds.add("d", str(src))
    for kind, ident in refs:
        ds.add_reference("d@v1", kind, ident)
    return ds


def _refs(ds: Any) -> list[tuple[str, str]]:
    return [(r["kind"], r["id"]) for r in ds.references("d@v1")]


def _server_jobs(ds: Any, **states: str) -> None:
    """The aistack server's ``jobs`` table in the catalog's DB (they share it), with ``states``."""
    import datetime as dt

    import sqlalchemy as sa

    from aistack.server.db.models import Base, Job

    Base.metadata.create_all(ds.catalog.engine, tables=[Job.__table__])  # type: ignore[list-item]
    now = dt.datetime(2024, 1, 1)
    with ds.catalog.engine.begin() as conn:
        for seq, (job_id, state) in enumerate(states.items()):
            conn.execute(
                sa.insert(Job.__table__).values(  # type: ignore[arg-type]
                    id=job_id,
                    seq=seq,
                    name=job_id,
                    project="p",
                    user="u",
                    kind="batch",
                    spec={},
                    state=state,
                    priority=0,
                    attempt=0,
                    retries_left=0,
                    cancel_requested=False,
                    preempt_requested=False,
                    preempt_count=0,
                    attained_service_s=0.0,
                    submitted_at=now,
                    updated_at=now,
                )  # fmt: skip
            )


def test_final_states_are_the_servers() -> None:
    from aistack.server.schemas.jobs import FINAL_STATES
    from aistack.storage.holds import JOB_FINAL_STATES

    assert JOB_FINAL_STATES == FINAL_STATES


@pytest.mark.parametrize("state", ["QUEUED", "STARTING", "RUNNING", "CANCELLING"])
def test_python_api_keeps_the_reference_of_a_job_that_has_not_finished(
    home: Path, state: str
) -> None:
    ds = _referenced(home, ("job", "j1"), ("model", "m@v1"))
    _server_jobs(ds, j1=state)
    with pytest.raises(ConflictError) as refused:
        ds.remove_references("d@v1", [("model", "m@v1"), ("job", "j1")])
    assert refused.value.message == (
        f"job j1 is {state}: its reference to d@v1 cannot be dropped, since `aistack data rm` "
        "and gc could then delete data it still reads; nothing was dropped"
    )
    assert refused.value.hint == (
        "wait for the job to end (`aistack wait j1`) or cancel (`aistack cancel j1`); or drop "
        "its reference anyway with `aistack data unref --force` (Python: force=True)"
    )
    with pytest.raises(ConflictError, match=f"job j1 is {state}"):
        ds.remove_reference("d@v1", "job", "j1")
    assert _refs(ds) == [("job", "j1"), ("model", "m@v1")]  # all or nothing
    with pytest.raises(ConflictError, match="referenced by job j1"):  # `data rm` still refuses
        ds.delete("d@v1")
    assert ds.remove_reference("d@v1", "job", "j1", force=True) is True
    assert _refs(ds) == [("model", "m@v1")]


def test_python_api_drops_the_reference_of_a_finished_or_unknown_job(home: Path) -> None:
    ds = _referenced(home, ("job", "a"), ("job", "b"), ("job", "c"))
    _server_jobs(ds, a="SUCCEEDED", b="FAILED", x="RUNNING")  # c: not the server's
    v, left = ds.remove_references("d@v1", [("job", "a"), ("job", "c")])
    assert (v.ref, left[0]["id"], len(left)) == ("d@v1", "b", 1)
    assert ds.remove_reference("d@v1", "job", "b") is True
    assert _refs(ds) == []


def test_the_cli_refuses_a_job_the_db_says_runs_even_when_the_server_does_not_know_it(
    home: Path, aistack_server: Any
) -> None:
    ds = _referenced(home, ("job", "a"), ("job", "b"))
    _server_jobs(ds, a="RUNNING", b="QUEUED")
    r = CliRunner().invoke(
        _data_app(), ["unref", "d@v1", "--by", "job:a", "--by", "job:b"], catch_exceptions=True
    )
    assert isinstance(r.exception, ConflictError)
    assert r.exception.message.startswith(
        "job a is RUNNING, job b is QUEUED: their references to d@v1 cannot be dropped"
    )
    assert "cancel (`aistack cancel a b`)" in (r.exception.hint or "")
    assert _refs(ds) == [("job", "a"), ("job", "b")]
    r = CliRunner().invoke(_data_app(), ["unref", "d@v1", "--by", "job:a", "--force", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["references"][0]["id"] == "b"
    assert aistack_server.asked == []  # not asked: the DB said it first; --force asks none


def _data_app() -> Any:
    from aistack.cli.data import app

    return app


HOLDER = textwrap.dedent(
    """
    import sys
    from aistack.storage.holds import hold_reference
    with hold_reference("webdata", sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()  # until the test closes it, or kills this process
    """
)


def _holder(ident: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, ident],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),  # the test's AISTACK_HOME: the same lease folder
    )
    assert p.stdout is not None and p.stdout.readline() == "held\n"
    return p


def test_a_running_holders_webdata_reference_is_kept_until_it_dies(home: Path) -> None:
    from aistack.storage.holds import default_lease_dir

    ident = "corpus@3f2a9c0d1e4b5a6c"
    ds = _referenced(home, ("webdata", ident), ("run", "r1"))
    p = _holder(ident)
    try:
        with pytest.raises(ConflictError) as refused:
            ds.remove_references("d@v1", [("webdata", ident), ("run", "r1")])
        msg = refused.value.message
        assert msg.startswith(f"webdata:{ident} is held by the running process {p.pid} on "), msg
        assert msg.endswith(
            "its reference to d@v1 cannot be dropped, since `aistack data rm` and gc could then "
            "delete data it still reads; nothing was dropped"
        )
        assert "a web-data pipeline run holds its references until it ends" in (
            refused.value.hint or ""
        )
        with pytest.raises(ConflictError, match=f"held by the running process {p.pid}"):
            ds.remove_reference("d@v1", "webdata", ident)
        r = CliRunner().invoke(_data_app(), ["unref", "d@v1", "--by", f"webdata:{ident}"])
        assert isinstance(r.exception, ConflictError)
        assert _refs(ds) == [("run", "r1"), ("webdata", ident)]
    finally:
        p.send_signal(signal.SIGKILL)  # dies holding it: no clean-up of its own
        p.wait()
    [lease] = list(default_lease_dir().iterdir())  # left behind by the killed holder
    assert json.loads(lease.read_text())["pid"] == p.pid
    # a dead process's lease blocks nothing, and the check removes it
    v, left = ds.remove_references("d@v1", [("webdata", ident)])
    assert [(x["kind"], x["id"]) for x in left] == [("run", "r1")]
    assert list(default_lease_dir().iterdir()) == []


def test_force_drops_a_held_reference_and_an_ended_holder_leaves_no_lease(home: Path) -> None:
    from aistack.storage.holds import default_lease_dir

    ds = _referenced(home, ("webdata", "a@1"), ("webdata", "b@2"))
    p = _holder("a@1")
    try:
        r = CliRunner().invoke(
            _data_app(), ["unref", "d@v1", "--by", "webdata:a@1", "--force", "--json"]
        )
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["removed"] == [{"kind": "webdata", "id": "a@1"}]
        assert ds.remove_reference("d@v1", "webdata", "b@2") is True  # another id: not held
    finally:
        assert p.stdin is not None
        p.stdin.close()  # ends normally
        assert p.wait(timeout=60) == 0
    assert _refs(ds) == [] and list(default_lease_dir().iterdir()) == []


def test_the_holders_own_process_may_drop_its_reference(home: Path) -> None:
    from aistack.storage.holds import hold_reference

    ds = _referenced(home, ("webdata", "a@1"), ("webdata", "a@2"))
    with hold_reference("webdata", "a@1"), hold_reference("webdata", "a@2"):
        assert ds.remove_reference("d@v1", "webdata", "a@1") is True
        v, left = ds.remove_references("d@v1", [("webdata", "a@2")])
    assert left == []


UNREF = textwrap.dedent(
    """
    import sys
    from aistack.errors import ConflictError
    from aistack.storage import Datasets
    try:
        Datasets.from_settings().remove_references(sys.argv[1], [("webdata", sys.argv[2])])
        print("dropped")
    except ConflictError as exc:
        print(exc.message)
    """
)


def test_a_pipeline_run_holds_its_webdata_reference_while_it_runs(home: Path) -> None:
    from aistack.storage import Datasets
    from aistack.webdata.crawler import WarcWriter
    from aistack.webdata.pipeline import run_pipeline
    from aistack.webdata.spec import parse_spec

    src = home / "src"
    src.mkdir()
    w = WarcWriter(src / "crawl-0.warc.gz")
    w.write("conversion", "http://a/", b"one two three four five six", content_type="text/plain")
    w.close()
    Datasets.from_settings().add("raw", str(src))
    out = home / "out"
    spec = parse_spec(
        {
            "name": "t",
            "input": {"dataset": "raw"},
            "output": str(out),
            "steps": ["dedup", {"register": {"name": "wd-out"}}],
        }
    )
    seen: list[str] = []

    def progress(stage: str, n: int, total: int) -> None:
        if stage == "process" and n == 0:  # the run is reading raw@v1: another process unrefs
            fp = json.loads((out / ".tasks" / "spec.json").read_text())["fingerprint"]
            seen.append(f"t@{fp}")
            done = subprocess.run(
                [sys.executable, "-c", UNREF, "raw@v1", f"t@{fp}"],
                capture_output=True,
                text=True,
                timeout=120,
                env=os.environ.copy(),
            )
            seen.append(done.stdout.strip() or done.stderr)

    rep = run_pipeline(spec, progress=progress)
    ident, said = seen
    assert said.startswith(f"webdata:{ident} is held by the running process {os.getpid()} on ")
    # moved to its lineage node at the end, as before; the run over, nothing holds it
    run = rep["lineage"]["run"].partition(":")[2]
    ds = Datasets.from_settings()
    assert [(r["kind"], r["id"]) for r in ds.references("raw@v1")] == [("webdata", run)]
    from aistack.storage import holds

    assert holds.live_holder("webdata", run) is None
    assert list(holds.default_lease_dir().iterdir()) == []
    v, left = ds.remove_references("raw@v1", [("webdata", run)])
    assert left == []


@pytest.mark.parametrize("api", ["remove_references", "remove_reference"])
def test_a_holder_that_came_during_the_drop_gets_its_reference_back(
    home: Path, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    """Check, then drop: a web-data run resuming in between took its lease and found its
    reference still there (so it did not add it again), and the drop then took it away: the
    run read a version `data rm` could delete. Now the check runs again after the drop, and a
    holder found then gets the reference back; the caller gets the ConflictError."""
    from aistack.storage import holds

    ds = _referenced(home, ("webdata", "corpus@abc"))
    real = holds.refuse_held
    calls: list[int] = []

    def arrives_after_first_check(label, pairs, states, directory=None):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) > 1:  # the run took its lease meanwhile
            raise ConflictError(f"{label} is held by the running process 4242")
        return real(label, pairs, states, directory)

    monkeypatch.setattr(holds, "refuse_held", arrives_after_first_check)
    with pytest.raises(ConflictError, match="4242"):
        if api == "remove_references":
            ds.remove_references("d@v1", [("webdata", "corpus@abc")])
        else:
            ds.remove_reference("d@v1", "webdata", "corpus@abc")
    assert _refs(ds) == [("webdata", "corpus@abc")]
    assert len(calls) == 2
