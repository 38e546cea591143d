"""`aistack up` wrote Starlette's "starlette.middleware.wsgi is deprecated" warning into
server.log at every start (MLflow's FastAPI app imports that middleware): quiet_mlflow ignores
it where MLflow raises it, and only there."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("starlette.exceptions")

SCRIPT = textwrap.dedent(
    """
    import sys, warnings
    from starlette.exceptions import StarletteDeprecationWarning
    from aistack.mlops.quiet import quiet_mlflow

    quiet_mlflow()
    msg = "starlette.middleware.wsgi is deprecated and will be removed in a future release."
    # as Starlette raises it (stacklevel=2): in the module that imports the middleware
    warnings.warn_explicit(msg, StarletteDeprecationWarning, "fastapi_app.py", 23,
                           module="mlflow.server.fastapi_app")
    print("=== others", file=sys.stderr, flush=True)
    warnings.warn_explicit(msg, StarletteDeprecationWarning, "mine.py", 1, module="mine")
    warnings.warn_explicit("other deprecation", StarletteDeprecationWarning, "f.py", 2,
                           module="mlflow.server.fastapi_app")
    warnings.warn_explicit(msg, DeprecationWarning, "g.py", 3, module="mlflow.server")
    """
)


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["HOME"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )


def test_only_mlflows_starlette_wsgi_warning_is_ignored(tmp_path: Path) -> None:
    r = _run(SCRIPT, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    quiet, others = r.stderr.split("=== others", 1)
    assert "StarletteDeprecationWarning" not in quiet
    # the same text from code of one's own, another text, another category: still shown
    assert "mine.py:1: StarletteDeprecationWarning: starlette.middleware.wsgi" in others
    assert "f.py:2: StarletteDeprecationWarning: other deprecation" in others
    assert "g.py:3: DeprecationWarning: starlette.middleware.wsgi" in others


def test_importing_mlflows_server_app_after_quiet_mlflow_is_silent(tmp_path: Path) -> None:
    code = (
        "from aistack.mlops.quiet import quiet_mlflow\n"
        "quiet_mlflow()\n"
        "import mlflow.server.fastapi_app\n"
        "print('imported')\n"
    )
    r = _run(code, tmp_path)
    assert r.returncode == 0 and "imported" in r.stdout, r.stderr[-3000:]
    assert "starlette.middleware.wsgi is deprecated" not in r.stderr
