from __future__ import annotations

from pathlib import Path

import pytest

from aistack import errors


def test_round_trip_keeps_class_and_hint() -> None:
    e = errors.NotFoundError("job 'x' not found", hint="list jobs")
    back = errors.from_dict(e.to_dict())
    assert type(back) is errors.NotFoundError
    assert back.hint == "list jobs" and back.status == 404
    assert "list jobs" in str(back)


def test_missing_dependency_hint() -> None:
    e = errors.MissingDependency("ray", extra="ray")
    assert "pip install 'aistack[ray]'" in str(e)


def test_a_missing_dependency_comes_back_with_its_package_and_extra() -> None:
    back = errors.from_dict(errors.MissingDependency("ray", extra="ray").to_dict())
    assert type(back) is errors.MissingDependency
    assert (back.package, back.extra) == ("ray", "ray")  # an AttributeError before
    assert back.hint == "pip install 'aistack[ray]'"


@pytest.mark.parametrize(
    ("details", "kept"),
    [
        ({"hint": "x", "message": "y"}, {"hint": "x", "message": "y"}),  # a TypeError before
        (["a", "b"], {"details": ["a", "b"]}),  # not a mapping: a TypeError before
        (None, {}),
    ],
)
def test_an_error_body_of_another_shape_is_rebuilt(
    details: object, kept: dict[str, object]
) -> None:
    back = errors.from_dict({"code": "invalid", "message": "bad", "hint": 3, "details": details})
    assert type(back) is errors.ValidationError
    assert (back.message, back.hint, back.details) == ("bad", "3", kept)


def test_codes_are_unique() -> None:
    seen: dict[str, type] = {}

    def walk(c: type) -> None:
        if c.__module__ == "aistack.errors":  # the tree itself; other layers may subclass it
            assert c.code not in seen or seen[c.code] is c, c  # type: ignore[attr-defined]
            seen[c.code] = c  # type: ignore[attr-defined]
        for s in c.__subclasses__():
            walk(s)

    walk(errors.AistackError)
    assert len(seen) >= 10


def test_bad_environment_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from aistack.errors import ValidationError
    from aistack.settings import load_settings

    monkeypatch.setenv("AISTACK_PORT", "abc")
    with pytest.raises(ValidationError, match="AISTACK_PORT"):
        load_settings()
    monkeypatch.delenv("AISTACK_PORT")
    monkeypatch.setenv("AISTACK_POLICY_OPTIONS", "not json")
    with pytest.raises(ValidationError, match="AISTACK_POLICY_OPTIONS could not be parsed"):
        load_settings()
    monkeypatch.setenv("AISTACK_POLICY_OPTIONS", '{"max_wait_factor": 20}')
    assert load_settings().policy_options == {"max_wait_factor": 20}


def test_aistack_home_that_is_a_file_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistack.errors import ValidationError
    from aistack.settings import load_settings

    f = tmp_path / "home-file"
    f.write_text("")
    for home, why in ((f, "it is a file"), (f / "sub", f"its parent {f} is a file")):
        monkeypatch.setenv("AISTACK_HOME", str(home))
        with pytest.raises(ValidationError) as ei:
            load_settings()
        assert f"AISTACK_HOME: {home} is not a directory: {why}" in str(ei.value)
    monkeypatch.setenv("AISTACK_HOME", str(tmp_path / "new" / "home"))
    assert load_settings().home == tmp_path / "new" / "home"  # a missing dir is created later


@pytest.mark.parametrize("port", ["0", "70000"])
def test_aistack_port_out_of_range_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    from aistack.errors import ValidationError
    from aistack.settings import load_settings

    monkeypatch.setenv("AISTACK_PORT", port)
    with pytest.raises(ValidationError, match="AISTACK_PORT"):
        load_settings()


def test_an_error_answer_keeps_at_most_max_message_chars() -> None:
    # an API error quoting a 100 kB input (an unknown project's name) came back whole
    long = "x" * 100_000
    d = errors.NotFoundError(f"no project named {long!r}", hint=f"not {long}").to_dict()
    assert d["message"].startswith("no project named 'xxx") and d["message"].endswith("xxx'")
    assert "(98,019 characters left out)" in d["message"]
    assert len(d["message"]) < errors.MAX_MESSAGE_CHARS + 60
    assert len(d["hint"]) < errors.MAX_MESSAGE_CHARS + 60
    short = errors.ValidationError("memory: bad", hint="use 16GB").to_dict()
    assert (short["message"], short["hint"]) == ("memory: bad", "use 16GB")
    assert errors.short_repr("ab") == "'ab'"
    assert errors.short_repr("a" * 200, 10) == "'aaaaaaaa… (202 characters)"
