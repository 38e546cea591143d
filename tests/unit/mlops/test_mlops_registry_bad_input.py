"""The registry with bad arguments: an alias MLflow reserves or refuses, a version that is no
version number, a run id or name that is no string, and a one-string gate are refused naming the
argument (MLflow's own INVALID_PARAMETER_VALUE text, a TypeError, or version 1 for 1.5 before),
and nothing in the registry changes."""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow")

from aistack.errors import ValidationError  # noqa: E402
from aistack.mlops import registry  # noqa: E402


@pytest.fixture
def model(model_run):
    uri, rid = model_run
    assert registry.register_from_run(rid, "m", tracking_uri=uri)["version"] == 1
    registry.set_alias("m", "staging", 1, tracking_uri=uri)
    return uri


@pytest.mark.parametrize(
    ("alias", "why"),
    [
        ("latest", "is reserved: models:/NAME@latest"),  # MLflow: "'latest' alias name (case ..."
        ("LATEST", "is reserved"),
        ("v1", "is reserved: it reads as version 1"),  # MLflow: "Version alias name 'v1' is ..."
        ("V12", "is reserved: it reads as version 12"),
        ("a/b", "may only have letters, digits"),  # MLflow: "Invalid alias name: 'a/b'. ..."
        ("prod\n", "may only have letters, digits"),
        ("a" * 256, "is longer than 255 characters"),
    ],
)
def test_an_alias_mlflow_refuses_is_named(model, alias, why):
    for call, field in (
        (lambda: registry.set_alias("m", alias, 1, tracking_uri=model), "alias"),
        (lambda: registry.promote("m", 1, alias, tracking_uri=model), "to"),
    ):
        with pytest.raises(ValidationError, match=f"^{field}: the alias .* {why}") as ei:
            call()
        assert ei.value.details["field"] == field
    assert registry.show_model("m", tracking_uri=model)["aliases"] == {"staging": 1}
    # usual aliases still work, unicode letters too (MLflow's \w)
    registry.set_alias("m", "prod-v1_é", 1, tracking_uri=model)


@pytest.mark.parametrize("version", [1.5, True, 2**70, "1.5", None])
def test_a_version_that_is_no_version_number_is_refused(model, version):
    """1.5 and True set the alias on version 1; 2**70 was SQLite's 'Python int too large'."""
    with pytest.raises(ValidationError, match="^version: ") as ei:
        registry.set_alias("m", "prod", version, tracking_uri=model)
    assert ei.value.details["field"] == "version"
    with pytest.raises(ValidationError, match="^version: "):
        registry.lineage("m", version, tracking_uri=model)
    assert registry.show_model("m", tracking_uri=model)["aliases"] == {"staging": 1}
    registry.set_alias("m", "prod", 1.0, tracking_uri=model)  # a whole float is still 1


@pytest.mark.parametrize(
    ("call", "field"),
    [
        # MLflow: 'Missing value for required parameter 'name'.'
        (lambda uri: registry.lineage(None, 1, tracking_uri=uri), "name"),
        (lambda uri: registry.show_model(5, tracking_uri=uri), "name"),
        (lambda uri: registry.set_alias("m", None, 1, tracking_uri=uri), "alias"),
        # an AttributeError ('int' object has no attribute 'strip')
        (lambda uri: registry.register_from_run("a" * 32, 5, tracking_uri=uri), "name"),
        # 'expected string or bytes-like object, got 'NoneType'' (a BackendError)
        (lambda uri: registry.register_from_run(None, "m", tracking_uri=uri), "run_id"),
        # MLflow: 'Invalid value "../x" for parameter 'run_id' supplied.'
        (lambda uri: registry.register_from_run("../x", "m", tracking_uri=uri), "run_id"),
    ],
)
def test_names_and_run_ids_that_are_no_strings_or_malformed_are_named(model, call, field):
    with pytest.raises(ValidationError, match=f"^{field}: ") as ei:
        call(model)
    assert ei.value.details["field"] == field
    assert [v["version"] for v in registry.show_model("m", tracking_uri=model)["versions"]] == [1]


def test_a_gate_given_as_one_string_is_refused(model):
    """Each character was a condition: "require[0]: 'l' is not a condition"."""
    with pytest.raises(ValidationError, match=r"^require: expected a list .* 'loss<3'") as ei:
        registry.promote("m", 1, "prod", "loss<3", tracking_uri=model)
    assert "['loss<3']" in (ei.value.hint or "")
    assert registry.show_model("m", tracking_uri=model)["aliases"] == {"staging": 1}
