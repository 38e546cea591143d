from __future__ import annotations

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
