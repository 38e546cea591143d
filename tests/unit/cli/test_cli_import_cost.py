"""What a CLI start imports: every ``aistack`` command pays for ``import aistack.cli.main``, so
the packages only some commands need are imported inside them. httpx (and, through its own
command-line module, rich.progress and pygments) comes with ``aistack.Client`` when one is made,
not with ``import aistack``: the local ``aistack data`` commands and ``--help`` never load it.

Each check runs a fresh interpreter (``sys.modules`` of the test process has everything)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# what no command needs just to start (the ones that use them import them when they run)
HEAVY = (
    "anyio",
    "fastapi",
    "h11",
    "httpcore",
    "httpx",
    "mlflow",
    "numpy",
    "pandas",
    "pyarrow",
    "sqlalchemy",
    "starlette",
    "torch",
    "uvicorn",
)
# imported by ``aistack data`` (the catalog and the object store), so not in this list there
CLIENT_ONLY = ("anyio", "h11", "httpcore", "httpx")

_REPORT = """
import atexit, json, sys
HEAVY = set(sys.argv[1].split(","))
def report():
    mods = sorted({m.split(".")[0] for m in sys.modules} & HEAVY)
    sys.stderr.write("\\nIMPORTED " + json.dumps(mods) + "\\n")
atexit.register(report)
sys.argv = ["aistack", *sys.argv[2:]]
from aistack.cli.main import main
main()
"""


def _imported(*argv: str, heavy: tuple[str, ...] = HEAVY) -> tuple[list[str], str]:
    """Run ``aistack ARGV`` in a fresh interpreter: (the packages of ``heavy`` it imported, its
    output)."""
    p = subprocess.run(
        [sys.executable, "-c", _REPORT, ",".join(heavy), *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = [x for x in p.stderr.splitlines() if x.startswith("IMPORTED ")]
    assert line, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    return json.loads(line[-1].removeprefix("IMPORTED ")), p.stdout + p.stderr


def test_importing_the_cli_loads_none_of_the_heavy_packages(aistack_home: Path) -> None:
    code = (
        "import aistack.cli.main, json, sys; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(p.stdout) == []


def test_help_loads_none_of_the_heavy_packages(aistack_home: Path) -> None:
    imported, out = _imported("--help")
    assert "Usage: aistack" in out
    assert imported == []


@pytest.mark.parametrize("argv", [["data", "ls"], ["data", "log", "nothing-here"]])
def test_local_data_commands_do_not_load_the_http_client(
    aistack_home: Path, argv: list[str]
) -> None:
    imported, out = _imported(*argv, heavy=CLIENT_ONLY)
    assert imported == [], out


def test_a_command_that_calls_the_server_still_loads_the_client(aistack_home: Path) -> None:
    """The other side: ``aistack jobs`` makes a Client, which imports httpx when it is made
    (here it finds no server and says so)."""
    imported, out = _imported("jobs", heavy=CLIENT_ONLY)
    assert "httpx" in imported
    assert "cannot reach the aistack server" in out


def test_the_client_module_imports_httpx_only_when_a_client_is_made(aistack_home: Path) -> None:
    code = (
        "import sys; from aistack.client import Client; "
        "before = 'httpx' in sys.modules; "
        "c = Client(url='http://127.0.0.1:9'); "
        "print(before, 'httpx' in sys.modules, type(c._http).__module__.split('.')[0])"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert p.stdout.split() == ["False", "True", "httpx"]
