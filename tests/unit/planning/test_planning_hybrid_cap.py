"""`aistack plan hybrid` and /plan/hybrid share one cap on the sweep (whatif.check_sweep_size):
the sweep prices every fleet size up to the peak over every step, so a huge peak or a long
profile with a large peak is refused with the cap and how to get under it, not run for hours."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aistack.cli.plan import app as plan_app
from aistack.errors import ValidationError
from aistack.planning.whatif import (
    MAX_DEMAND_GPUS,
    MAX_SWEEP_CASES,
    check_sweep_size,
    hybrid_sweep,
)

runner = CliRunner()


@pytest.fixture(autouse=True)
def _home(aistack_home: Path) -> Path:
    return aistack_home


def _trace(tmp_path: Path, rows: list[tuple[float, float, str]]) -> Path:
    f = tmp_path / "trace.csv"
    f.write_text(
        "job_id,submission_time,duration,num_gpu\n"
        + "".join(f"j{i},{t:g},{d:g},{g}\n" for i, (t, d, g) in enumerate(rows))
    )
    return f


def _main(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the real entry point (as the `aistack` command does): (exit code, stderr)."""
    from aistack.cli.main import main

    monkeypatch.setattr(sys, "argv", ["aistack", *argv])
    monkeypatch.delenv("AISTACK_DEBUG", raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # rich would wrap the message
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, " ".join(capsys.readouterr().err.split())


def test_a_job_over_the_demand_cap_is_refused_with_its_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: a num_gpu of 1e300 made the sweep loop over 1.25e299 fleet sizes (for ever)."""
    f = _trace(tmp_path, [(0, 3600, "8"), (0, 3600, "1e300")])
    code, err = _main(["plan", "hybrid", "--trace", str(f), "--gpu", "H100"], monkeypatch, capsys)
    assert code == 2
    assert "line 3: num_gpu is 1e+300, over the cap of 1,000,000 GPUs" in err, err
    assert "fix or drop that job" in err
    # inf is a clear error too (int(float('inf')) was an OverflowError traceback)
    f = _trace(tmp_path, [(0, 3600, "inf")])
    res = runner.invoke(plan_app, ["hybrid", "--trace", str(f), "--gpu", "H100"])
    assert isinstance(res.exception, ValidationError), res.output
    assert "line 2: num_gpu is 'inf', not a finite number" in str(res.exception)


def test_jobs_under_the_cap_that_add_up_over_it_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each job within the API's per-job cap, but three at once peak at 3,000,000 GPUs."""
    f = _trace(tmp_path, [(0, 3600, "1000000")] * 3)
    code, err = _main(["plan", "hybrid", "--trace", str(f), "--gpu", "H100"], monkeypatch, capsys)
    assert code == 2
    assert "profile: the peak demand is 3,000,000 GPUs, over the cap of 1,000,000 GPUs" in err, err
    assert "jobs running at once add up" in err


def test_a_long_profile_with_a_large_peak_is_refused_with_how_to_get_under(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A year of 1-minute steps (525,600) with a peak of 80,000 GPUs: 10,001 fleet sizes x
    525,600 steps = 5.3e9 cases (some 13 minutes here) before; now refused at once."""
    f = _trace(tmp_path, [(0, 365 * 86400, "8"), (0, 60, "79992")])
    argv = ["plan", "hybrid", "--trace", str(f), "--gpu", "H100", "--step-minutes", "1"]
    code, err = _main(argv, monkeypatch, capsys)
    assert code == 2
    assert (
        "profile: the sweep would price 10,001 fleet sizes (0 to 10,000 servers of 8 GPUs) over "
        "525,600 steps: 5,256,525,600 cases, over the cap of 100,000,000" in err
    ), err
    assert "--step-minutes of `aistack plan hybrid`" in err
    assert "at most 9,999 steps for this peak" in err and "more GPUs (--server)" in err
    # the way out the hint gives works: daily steps (365 of them) are well under the cap
    argv[-1] = "1440"
    res = runner.invoke(plan_app, [*argv[1:], "--json"])
    assert res.exit_code == 0, res.output


def test_the_check_is_the_sweeps_own_so_the_api_gets_it_too() -> None:
    with pytest.raises(ValidationError, match="over the cap of 1,000,000 GPUs"):
        hybrid_sweep([MAX_DEMAND_GPUS + 1.0], gpu="H100")
    with pytest.raises(ValidationError, match="cases, over the cap"):
        hybrid_sweep([8.0] * 20_000 + [80_000.0], gpu="H100")
    # at the caps it runs
    assert hybrid_sweep([float(MAX_DEMAND_GPUS)], gpu="H100").options[-1].owned_gpus >= 10**6
    check_sweep_size(peak=8 * 99, steps=MAX_SWEEP_CASES // 100, gpus_per_server=8)
    with pytest.raises(ValidationError):
        check_sweep_size(peak=8 * 99, steps=MAX_SWEEP_CASES // 100 + 1, gpus_per_server=8)


def test_the_api_refuses_intervals_that_add_up_over_the_cap(api) -> None:  # type: ignore[no-untyped-def]
    """Each interval passes the schema's per-entry cap; their sum did not have one."""
    r = api.http.post(
        "/api/v1/plan/hybrid",
        json={"intervals": [[0, 3600, 1_000_000]] * 3, "gpu": "H100"},
    )
    assert r.status_code == 422, r.text
    assert r.json()["message"].startswith("profile: the peak demand is 3,000,000 GPUs")
