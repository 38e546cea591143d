"""A SQLite tracking store whose folder does not exist: MLflow created the folder and an empty
store in it without a word (a typo in the path started a new store). It is refused, naming the
folder and how to create it; the store aistack manages (``<AISTACK_HOME>/mlflow.db``) is not."""

from __future__ import annotations

import pytest

mlflow = pytest.importorskip("mlflow")

from aistack.errors import ValidationError  # noqa: E402
from aistack.mlops import registry, tracking  # noqa: E402
from aistack.mlops._client import check_sqlite_folder, open_client  # noqa: E402
from aistack.settings import reset_settings_cache  # noqa: E402


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "home"))
    reset_settings_cache()
    yield
    reset_settings_cache()


def test_a_missing_folder_is_refused_and_not_created(tmp_path):
    typo = tmp_path / "mlfow"  # the store is in tmp_path/mlflow
    uri = f"sqlite:///{typo / 'mlflow.db'}"
    with pytest.raises(ValidationError) as ei:
        open_client(uri)
    err = ei.value
    assert err.message == (
        f"tracking_uri: the folder {str(typo)!r} of the SQLite store {uri!r} does not exist "
        "(MLflow would create it, with a new empty store in it)"
    )
    assert f"mkdir -p {typo}" in (err.hint or "")
    assert err.details == {"field": "tracking_uri"}
    with pytest.raises(ValidationError, match="does not exist"):
        tracking.end_job_run(uri, "a" * 32, "FINISHED")
    with pytest.raises(ValidationError, match="does not exist"):
        registry.list_models(tracking_uri=uri)
    assert not typo.exists()


def test_a_relative_path_and_a_driver_are_checked_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValidationError, match="the folder 'nope' of the SQLite store"):
        open_client("sqlite:///nope/mlflow.db")
    with pytest.raises(ValidationError, match="does not exist"):
        open_client(f"sqlite+pysqlite:///{tmp_path / 'nope' / 'mlflow.db'}?timeout=5")
    assert not (tmp_path / "nope").exists()


def test_a_file_where_the_folder_should_be_is_named(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(
        ValidationError, match=r"'.*/f', the folder of the SQLite store .* is not a folder"
    ):
        open_client(f"sqlite:///{tmp_path / 'f' / 'mlflow.db'}")


def test_an_existing_folder_and_in_memory_stores_are_opened(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    open_client(uri).search_experiments()
    assert (tmp_path / "mlflow.db").is_file()  # a new store in an existing folder: as before
    for mem in ("sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=memory&uri=true"):
        check_sqlite_folder(mem)  # nothing to check


def test_the_store_in_the_aistack_home_is_created(tmp_path):
    home = tmp_path / "home"  # does not exist yet: aistack creates it
    check_sqlite_folder(f"sqlite:///{home / 'mlflow.db'}")
    with pytest.raises(ValidationError, match="does not exist"):
        check_sqlite_folder(f"sqlite:///{home / 'sub' / 'mlflow.db'}")


def test_the_server_refuses_a_backend_override_in_a_missing_folder(tmp_path, monkeypatch):
    from aistack.mlops import server
    from aistack.settings import Settings

    missing = tmp_path / "nowhere"
    monkeypatch.setenv("AISTACK_MLFLOW_BACKEND_URI", f"sqlite:///{missing / 'mlflow.db'}")
    monkeypatch.setattr(server, "_MOUNTED", {})
    with pytest.raises(ValidationError, match="AISTACK_MLFLOW_BACKEND_URI: the folder") as ei:
        server.create_mlflow_asgi(Settings(home=tmp_path / "home"))
    assert ei.value.details == {"field": "AISTACK_MLFLOW_BACKEND_URI"}
    assert not missing.exists()
