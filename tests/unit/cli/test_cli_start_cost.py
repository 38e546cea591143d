"""What ``import aistack`` and ``aistack models ls`` load.

``import aistack`` loads the SDK names (``Client``, ``JobSpec``, ``Settings``, …) on first use
(PEP 562), so a package below it (``aistack.errors``, a job's ``python -m aistack.train.run``)
does not pay for pydantic-settings, PyYAML and httpx through the package's ``__init__``.
``aistack models ls`` lists an http(s) tracking server through MLflow's REST API without
importing MLflow, with the output the MLflow client gives (checked against a real embedded
server, both ways). Each import check runs a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PACKAGE_INIT_HEAVY = ("pydantic_settings", "yaml", "httpx", "mlflow", "torch")
NOT_FOR_LS = ("mlflow", "torch", "pyarrow", "fastapi", "sqlalchemy", "pandas", "numpy")


def _modules_after(code: str, heavy: tuple[str, ...], env: dict[str, str] | None = None) -> Any:
    probe = f"{code}\nimport sys; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    p = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_import_aistack_loads_none_of_settings_yaml_httpx(aistack_home: Path) -> None:
    assert _modules_after("import aistack", PACKAGE_INIT_HEAVY) == []


@pytest.mark.parametrize("module", ["aistack.errors", "aistack.train.run"])
def test_a_subpackage_does_not_pay_for_the_package_init(aistack_home: Path, module: str) -> None:
    assert _modules_after(f"import {module}", ("pydantic_settings", "yaml", "httpx")) == []


def test_the_public_names_load_on_first_use(aistack_home: Path) -> None:
    code = (
        "import sys, aistack\n"
        "from aistack import Client, JobSpec, Resources, load_spec_file, parse_spec\n"
        "from aistack import Settings, get_settings, AistackError, UserError\n"
        "import aistack.client, aistack.settings, aistack.spec, aistack.errors\n"
        "assert Client is aistack.client.Client and aistack.Client is Client\n"
        "assert Settings is aistack.settings.Settings and aistack.get_settings is get_settings\n"
        "assert JobSpec is aistack.spec.JobSpec and Resources is aistack.spec.Resources\n"
        "assert UserError is aistack.errors.UserError\n"
        "assert set(aistack.__all__) <= set(dir(aistack))\n"
        "try:\n    aistack.no_such_name\nexcept AttributeError as e:\n    print(e)\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert p.stdout.strip() == "module 'aistack' has no attribute 'no_such_name'"
    import aistack

    assert aistack.__all__ == [
        "AistackError",
        "AuthError",
        "BackendError",
        "Client",
        "ConflictError",
        "JobSpec",
        "MissingDependency",
        "NotFoundError",
        "Resources",
        "Settings",
        "UserError",
        "ValidationError",
        "get_settings",
        "load_spec_file",
        "parse_spec",
    ]


_CLI = """
import atexit, json, sys
HEAVY = set(sys.argv[1].split(","))
atexit.register(lambda: sys.stderr.write(
    "\\nIMPORTED " + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & HEAVY)) + "\\n"))
sys.argv = ["aistack", *sys.argv[2:]]
from aistack.cli.main import main
main()
"""


def _cli(*argv: str, env: dict[str, str] | None = None) -> tuple[list[str], str, str, int]:
    """``aistack ARGV`` in a fresh interpreter: (the NOT_FOR_LS packages it imported, stdout,
    stderr, exit status)."""
    p = subprocess.run(
        [sys.executable, "-c", _CLI, ",".join(NOT_FOR_LS), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    line = [x for x in p.stderr.splitlines() if x.startswith("IMPORTED ")]
    assert line, (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    return json.loads(line[-1].removeprefix("IMPORTED ")), p.stdout, p.stderr, p.returncode


@pytest.mark.parametrize("argv", [["--help"], ["jobs"], ["models", "--help"]])
def test_cli_commands_do_not_import_mlflow(aistack_home: Path, argv: list[str]) -> None:
    imported, out, err, _ = _cli(*argv)
    assert imported == [], out + err


def test_models_ls_without_a_server_says_so_without_importing_mlflow(aistack_home: Path) -> None:
    from aistack.mlops.testing import free_port

    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}/mlflow"}
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    imported, out, err, rc = _cli("models", "ls", env=env)
    assert imported == []
    assert rc == 2
    assert err.splitlines()[0] == (
        f"error: list registered models: cannot reach the tracking server at 127.0.0.1:{port} "
        "([Errno 111] Connection refused) (start it with `aistack up` or set MLFLOW_TRACKING_URI)"
    )


# ---- against a real embedded MLflow server: the REST listing = the MLflow client's ----------

NAMES = ["bert", "empty", "gpt", "m-d", "m-e"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("mlflow")
    from aistack.mlops.testing import TrackingServer

    with TrackingServer(tmp_path_factory.mktemp("models-ls"), token="tok") as s:
        os.environ["MLFLOW_TRACKING_TOKEN"] = s.token
        try:
            import mlflow

            c = mlflow.MlflowClient(s.tracking_uri, registry_uri=s.tracking_uri)
            rid = c.create_run(c.create_experiment("ls")).info.run_id
            for name in NAMES:
                c.create_registered_model(name, description="the gpt" if name == "gpt" else None)
            for name, n in (("gpt", 3), ("bert", 1), ("m-d", 1), ("m-e", 2)):
                for _ in range(n):
                    c.create_model_version(name, f"runs:/{rid}/model", run_id=rid)
            c.set_registered_model_alias("gpt", "production", 2)
            c.set_registered_model_alias("gpt", "staging", 3)
            c.set_registered_model_alias("m-e", "champion", 1)
        finally:
            del os.environ["MLFLOW_TRACKING_TOKEN"]
        yield s


@pytest.fixture
def server_env(srv: Any, aistack_home: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", srv.tracking_uri)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", srv.token)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return dict(os.environ)


@pytest.mark.mlflow
def test_rest_listing_equals_the_mlflow_clients_on_every_page(srv: Any, server_env: Any) -> None:
    from aistack.mlops import _rest, registry

    via_mlflow = registry.list_models(tracking_uri=srv.tracking_uri)
    assert [m["name"] for m in via_mlflow] == NAMES
    gpt = next(m for m in via_mlflow if m["name"] == "gpt")
    assert (gpt["latest_version"], gpt["aliases"], gpt["description"]) == (
        3,
        {"production": 2, "staging": 3},
        "the gpt",
    )
    assert next(m for m in via_mlflow if m["name"] == "empty")["latest_version"] is None
    for page_size in (2, 1000):  # 5 models: three pages of 2, or one
        got = _rest.list_registered_models(srv.tracking_uri, token=srv.token, page_size=page_size)
        assert got == via_mlflow


@pytest.mark.mlflow
def test_models_ls_json_does_not_import_mlflow(srv: Any, server_env: dict[str, str]) -> None:
    from aistack.mlops import registry

    imported, out, err, rc = _cli("models", "ls", "--json", env=server_env)
    assert (rc, imported) == (0, []), err
    assert json.loads(out) == registry.list_models(tracking_uri=srv.tracking_uri)


@pytest.mark.mlflow
def test_models_ls_table_is_the_one_mlflow_gives(
    srv: Any, server_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.mlops import _rest

    env = {"COLUMNS": "200"}
    via_rest = CliRunner().invoke(app, ["ls"], env=env)
    assert via_rest.exit_code == 0, via_rest.output
    assert "production→v2, staging→v3" in via_rest.output and "v3" in via_rest.output
    monkeypatch.setattr(_rest, "usable", lambda uri: False)
    via_mlflow = CliRunner().invoke(app, ["ls"], env=env)
    assert via_mlflow.exit_code == 0, via_mlflow.output
    assert via_rest.output == via_mlflow.output


@pytest.mark.mlflow
def test_a_wrong_token_is_the_same_error_both_ways(srv: Any, server_env: Any) -> None:
    from aistack.errors import AistackError
    from aistack.mlops import _rest, registry

    errors = []
    for call in (
        lambda: registry.list_models(tracking_uri=srv.tracking_uri, token="wrong"),
        lambda: _rest.list_registered_models(srv.tracking_uri, token="wrong"),
    ):
        with pytest.raises(AistackError) as ei:
            call()
        errors.append((type(ei.value), ei.value.message, ei.value.hint))
    assert errors[0] == errors[1]
    assert errors[0][1].startswith("list registered models: ")


@pytest.mark.mlflow
def test_a_local_store_still_goes_through_mlflow(tmp_path: Path, aistack_home: Path) -> None:
    pytest.importorskip("mlflow")
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.mlops import _rest

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert not _rest.usable(uri) and _rest.usable("https://mlflow.example/mlflow")
    r = CliRunner().invoke(app, ["ls", "--json", "--tracking-uri", uri])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == []


@pytest.mark.parametrize(
    ("var", "value"),
    [("MLFLOW_HTTP_REQUEST_TIMEOUT", "soon"), ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "-1")],
)
def test_a_bad_http_setting_names_the_variable(
    var: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.errors import ValidationError
    from aistack.mlops import _rest

    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError, match=f"{var}='{value}': must be a whole number"):
        _rest.list_registered_models("http://127.0.0.1:9/mlflow")
