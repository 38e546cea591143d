"""``aistack models`` against a local SQLite registry (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")


def test_ls_shows_a_model_without_versions_as_dash(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.tracking.MlflowClient(uri, registry_uri=uri).create_registered_model("empty")
    r = CliRunner().invoke(app, ["ls", "--tracking-uri", uri], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    row = next(line for line in r.output.splitlines() if "empty" in line)
    assert "vNone" not in row and "-" in row


def _registered(tmp_path: Path, monkeypatch, name: str = "gpt", **metrics: float) -> str:
    """A run that logged ``metrics`` and a model directory, registered as ``name`` v1."""
    from aistack.mlops import registry

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    exp = client.create_experiment("e", artifact_location=(tmp_path / "artifacts").as_uri())
    rid = client.create_run(exp).info.run_id
    for k, v in metrics.items():
        client.log_metric(rid, k, v)
    d = tmp_path / "model"
    d.mkdir()
    (d / "weights.bin").write_bytes(b"\0" * 8)
    client.log_artifacts(rid, str(d), "model")
    client.set_terminated(rid, "FINISHED")
    assert registry.register_from_run(rid, name, "model", tracking_uri=uri)["version"] == 1
    return uri


def test_promote_on_a_metric_the_run_did_not_log_says_which_it_did(
    tmp_path: Path, monkeypatch
) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.errors import ConflictError

    uri = _registered(tmp_path, monkeypatch, loss=3.0, lr=1e-4)
    args = ["promote", "gpt", "--version", "1", "--to", "production", "--tracking-uri", uri]
    r = CliRunner().invoke(app, [*args, "--require", "val_loss<3.2"])
    err = r.exception
    assert isinstance(err, ConflictError), r.output
    assert "'val_loss' was not logged by the run (logged: loss, lr)" in err.message
    # the message lists what it logged; the hint does not repeat it
    assert err.hint == 'require a metric the run logged, e.g. --require "loss<3.2"'
    assert "train a better model" not in err.hint  # no model is to blame for a missing metric

    # a logged metric that fails: that one is the model's fault
    r = CliRunner().invoke(app, [*args, "--require", "loss<2"])
    assert isinstance(r.exception, ConflictError)
    assert r.exception.hint == "train a better model or change --require"

    # both: both hints
    r = CliRunner().invoke(app, [*args, "--require", "loss<2", "--require", "f1>0.5"])
    assert "'f1' was not logged" in r.exception.message
    assert '--require "loss>0.5"' in r.exception.hint
    assert r.exception.hint.endswith("train a better model or change --require")

    r = CliRunner().invoke(app, [*args, "--require", "loss<3.2", "--json"])
    assert r.exit_code == 0, r.output


def test_promote_without_metrics_says_the_run_logged_none(tmp_path: Path, monkeypatch) -> None:
    from aistack.errors import ConflictError
    from aistack.mlops import registry

    uri = _registered(tmp_path, monkeypatch)
    with pytest.raises(ConflictError) as ei:
        registry.promote("gpt", 1, "production", ["val_loss<3.2"], tracking_uri=uri)
    assert ei.value.hint.startswith("log the metrics (mlflow.log_metric)")
    assert ei.value.hint.endswith("or promote without `require`")
    assert "train a better model" not in ei.value.hint


def test_require_help_uses_a_metric_the_trainer_logs() -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app

    r = CliRunner().invoke(app, ["promote", "--help"], env={"COLUMNS": "200"})
    assert "loss<3.2" in r.output and "val_loss" not in r.output


@pytest.mark.parametrize(
    "argv",
    [
        ["promote", "nope", "--version", "1", "--to", "staging"],
        ["promote", "nope", "--version", "1", "--to", "staging", "--require", "loss<3"],
        ["show", "nope"],
        ["lineage", "nope", "--version", "1"],
        ["alias", "nope", "staging", "--version", "1"],
        ["alias", "nope", "staging", "--delete"],
    ],
)
def test_an_unknown_model_name_lists_the_registered_models(
    tmp_path: Path, monkeypatch, argv: list[str]
) -> None:
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.errors import NotFoundError

    uri = _registered(tmp_path, monkeypatch, name="gpt", loss=1.0)
    mlflow.tracking.MlflowClient(uri, registry_uri=uri).create_registered_model("bert")
    r = CliRunner().invoke(app, [*argv, "--tracking-uri", uri])
    err = r.exception
    assert isinstance(err, NotFoundError), r.output
    assert err.message == "there is no model named 'nope' (registered models: bert, gpt)"
    assert "aistack models ls" in err.hint
    assert "no version" not in str(err)


def test_a_missing_version_of_a_known_model_lists_its_versions(tmp_path: Path, monkeypatch) -> None:
    from aistack.errors import NotFoundError
    from aistack.mlops import registry

    uri = _registered(tmp_path, monkeypatch, loss=1.0)
    with pytest.raises(NotFoundError) as ei:
        registry.promote("gpt", 7, "staging", tracking_uri=uri)
    assert ei.value.message == "model 'gpt' has no version 7 (versions: 1)"
    assert ei.value.hint == "list versions with `aistack models show gpt`"


def test_an_unknown_model_with_an_empty_registry(tmp_path: Path, monkeypatch) -> None:
    from aistack.errors import NotFoundError
    from aistack.mlops import registry

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(NotFoundError, match=r"no model named 'nope' \(no models are registered"):
        registry.show_model("nope", tracking_uri=uri)


@pytest.mark.parametrize(
    ("name", "suggested"), [("bad name!", "bad-name"), ("m@x", "m-x"), ("m:3", "m-3")]
)
def test_register_refuses_a_name_serve_deploy_cannot_read(
    tmp_path: Path, monkeypatch, model_run: tuple[str, str], name: str, suggested: str
) -> None:
    """'m@x' was registered, and `serve deploy m@x` then looked for model 'm' (alias 'x')."""
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.errors import ValidationError

    uri, rid = model_run
    r = CliRunner().invoke(app, ["register", "--run", rid, "--name", name, "--tracking-uri", uri])
    err = r.exception
    assert isinstance(err, ValidationError), r.output
    assert err.message == f"name: {name!r} is not a valid registered model name"
    assert "letters, digits, '.', '_' or '-'" in err.hint
    assert err.hint.endswith(f"e.g. --name {suggested}")
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    assert list(client.search_registered_models()) == []  # nothing was created


def test_a_model_stored_under_an_old_name_still_gets_versions_with_a_warning(
    tmp_path: Path, monkeypatch, model_run: tuple[str, str]
) -> None:
    """Only new models are checked: one registered before the check keeps working (with a
    warning that says how to move to a valid name)."""
    from typer.testing import CliRunner

    from aistack.cli.models import app

    uri, rid = model_run
    mlflow.tracking.MlflowClient(uri, registry_uri=uri).create_registered_model("m@x")
    r = CliRunner().invoke(
        app, ["register", "--run", rid, "--name", "m@x", "--tracking-uri", uri, "--json"]
    )
    assert r.exit_code == 0, r.output
    assert '"version": 1' in r.stdout
    assert "warning: 'm@x' is not a valid model name" in r.stderr
    assert f"aistack models register --run {rid} --name m-x" in r.stderr


def test_model_name_rule_is_the_one_serve_deploy_and_datasets_use() -> None:
    from aistack.mlops.registry import MODEL_NAME_RE
    from aistack.serving.spec import _MODEL_NAME_RE
    from aistack.storage.refs import NAME_RE

    assert MODEL_NAME_RE.pattern == _MODEL_NAME_RE.pattern == NAME_RE.pattern


@pytest.mark.parametrize("path", ["../../etc", "model/../../x", ".."])
def test_register_a_path_outside_the_run_is_refused_before_asking_the_server(
    monkeypatch, path: str
) -> None:
    """Over HTTP the tracking server answered '400 Client Error: BAD REQUEST for url ...'; the
    path is refused before any request (the server here does not even exist)."""
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.errors import ValidationError

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    uri = "http://127.0.0.1:9/mlflow"  # the discard port: nothing listens
    args = ["register", "--run", "r1", "--name", "gpt", "--path", path, "--tracking-uri", uri]
    err = CliRunner().invoke(app, args).exception
    assert isinstance(err, ValidationError), err
    assert err.message == f"path: {path!r} points outside the run's artifacts"
    assert "--path model" in err.hint


_BAD_URIS = [
    ("notaurl", "not a URL: it reads as a local folder"),
    ("file:///nonexistent/mlruns", "a local folder, a file store"),
    ("foo://x", "unsupported URI 'foo://x'"),
    ("sqlite:", "Could not parse SQLAlchemy URL"),
    ("http://", "the URL has no host"),
]


@pytest.mark.parametrize(
    ("uri", "why", "argv"),
    [
        *((uri, why, ["ls"]) for uri, why in _BAD_URIS),
        *(
            ("notaurl", _BAD_URIS[0][1], argv)
            for argv in (
                ["show", "gpt"],
                ["register", "--run", "r1", "--name", "gpt"],
                ["promote", "gpt", "--version", "1", "--to", "prod"],
                ["alias", "gpt", "prod", "--delete"],
                ["lineage", "gpt", "--version", "1"],
            )
        ),
    ],
)
def test_a_tracking_uri_mlflow_cannot_open_says_what_to_pass(
    monkeypatch, uri: str, why: str, argv: list[str]
) -> None:
    """`models ls --tracking-uri notaurl` was MLflow's traceback (MlflowException)."""
    from typer.testing import CliRunner

    from aistack.cli.models import app
    from aistack.errors import ValidationError

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    err = CliRunner().invoke(app, [*argv, "--tracking-uri", uri]).exception
    assert isinstance(err, ValidationError), repr(err)
    assert err.message.startswith(f"--tracking-uri {uri.rstrip('/')!r}: MLflow cannot open it")
    assert why in err.message
    assert "http://127.0.0.1:8000/mlflow" in err.hint and "sqlite:///" in err.hint


def test_promote_with_a_threshold_that_is_not_finite_is_a_clear_error_and_moves_nothing(
    tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--require 'loss<1e400'` read the threshold as infinity ("loss below infinity": always
    true) and promoted the version; now `aistack models promote` says which condition and what
    to write (exit 2, one line on stderr, no traceback) and the alias is not set."""
    import sys

    from aistack.cli.main import main

    uri = _registered(tmp_path, monkeypatch, loss=3.0)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("AISTACK_DEBUG", raising=False)
    argv = ["aistack", "models", "promote", "gpt", "--version", "1", "--to", "production"]
    monkeypatch.setattr(sys, "argv", [*argv, "--require", "loss<1e400", "--tracking-uri", uri])
    capsys.readouterr()  # (MLflow's store set-up)
    with pytest.raises(SystemExit) as ei:
        main()
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "error: --require: 'loss<1e400': the threshold 1e400 is not a finite number (a "
        "condition against infinity or NaN holds for every value or for none) (write a finite "
        "NUMBER, at most about 1.8e308 in size, e.g. 'loss<3.2')\n"
    )
    client = mlflow.tracking.MlflowClient(uri, registry_uri=uri)
    assert client.get_registered_model("gpt").aliases == {}


_EMPTY_NAME = "give a registered model's name; list them with `aistack models ls`"
_SHELL = "; an unset shell variable expands to an empty argument"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["show", ""], f"NAME: the model name is empty ({_EMPTY_NAME}{_SHELL})"),
        (["show", " "], f"NAME: the model name ' ' is only whitespace ({_EMPTY_NAME}{_SHELL})"),
        (
            ["register", "--run", "", "--name", "gpt"],
            f"--run: the run id is empty (copy the run id from the MLflow UI{_SHELL})",
        ),
        (
            ["register", "--run", " ", "--name", "gpt"],
            f"--run: the run id ' ' is only whitespace (copy the run id from the MLflow UI{_SHELL})",
        ),
        (
            ["register", "--run", "abc", "--name", ""],
            f"--name: the model name is empty (give the name to register the model as, e.g. "
            f"gpt{_SHELL})",
        ),
        (
            ["register", "--run", "abc", "--name", "gpt", "--path", ""],
            "--path: the path inside the run is empty (give the model's path inside the run, "
            f"e.g. model, the name given to log_model{_SHELL})",
        ),
        (
            ["promote", "", "--version", "1", "--to", "production"],
            f"NAME: the model name is empty ({_EMPTY_NAME}{_SHELL})",
        ),
        (
            ["promote", "gpt", "--version", "1", "--to", " "],
            f"--to: the alias ' ' is only whitespace (give the alias to move, e.g. --to "
            f"production{_SHELL})",
        ),
        (
            ["alias", "", "staging", "--version", "1"],
            f"NAME: the model name is empty ({_EMPTY_NAME}{_SHELL})",
        ),
        (
            ["alias", "gpt", "", "--delete"],
            f"ALIAS: the alias is empty (give an alias, e.g. staging or production{_SHELL})",
        ),
        (
            ["lineage", "\t", "--version", "1"],
            f"NAME: the model name '\\t' is only whitespace ({_EMPTY_NAME}{_SHELL})",
        ),
    ],
)
def test_an_empty_name_run_or_alias_is_a_usage_error_naming_the_argument(
    tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    """`models show ""` and `models register --run ""` printed MLflow's INVALID_PARAMETER_VALUE
    text ("show model '': Missing value for required parameter 'name'.", "Invalid value "" for
    parameter 'run_id' supplied."), after creating the tracking store; now one error line that
    names the argument (exit 2), before the store is opened."""
    import sys

    from aistack.cli.main import main

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.delenv("AISTACK_DEBUG", raising=False)
    db = tmp_path / "mlflow.db"
    monkeypatch.setattr(
        sys, "argv", ["aistack", "models", *argv, "--tracking-uri", f"sqlite:///{db}"]
    )
    with pytest.raises(SystemExit) as ei:
        main()
    assert ei.value.code == 2
    assert capsys.readouterr().err == f"error: {expected}\n"
    assert not db.exists()


@pytest.mark.parametrize(
    ("call", "field", "why"),
    [
        (lambda r, uri: r.show_model("", tracking_uri=uri), "name", "the model name is empty"),
        (
            lambda r, uri: r.lineage(" ", 1, tracking_uri=uri),
            "name",
            "the model name ' ' is only whitespace",
        ),
        (
            lambda r, uri: r.promote("", 1, "production", tracking_uri=uri),
            "name",
            "the model name is empty",
        ),
        (lambda r, uri: r.set_alias("gpt", "", 1, tracking_uri=uri), "alias", "the alias is empty"),
        (
            lambda r, uri: r.delete_alias("", "x", tracking_uri=uri),
            "name",
            "the model name is empty",
        ),
        (
            lambda r, uri: r.register_from_run("", "gpt", tracking_uri=uri),
            "run_id",
            "the run id is empty",
        ),
    ],
)
def test_the_registry_api_refuses_an_empty_name_run_or_alias_naming_it(
    tmp_path: Path, monkeypatch, call, field: str, why: str
) -> None:
    """The same through the Python API (and GET /models/%20 on the server)."""
    from aistack.errors import ValidationError
    from aistack.mlops import registry

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    db = tmp_path / "mlflow.db"
    with pytest.raises(ValidationError) as ei:
        call(registry, f"sqlite:///{db}")
    assert ei.value.message == f"{field}: {why}"
    assert ei.value.details.get("field") == field
    assert not db.exists()
