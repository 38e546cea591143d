from __future__ import annotations

import aistack


def test_all_sorted_and_complete() -> None:
    assert aistack.__all__ == sorted(aistack.__all__)
    import types

    # names defined by the package itself (submodules imported elsewhere become attributes too);
    # dir() lists the lazily loaded ones (module __getattr__) before they are first read
    public = {
        n
        for n in dir(aistack)
        if not n.startswith("_") and not isinstance(getattr(aistack, n), types.ModuleType)
    }
    assert public == set(aistack.__all__)
    for name in aistack.__all__:
        assert getattr(aistack, name) is not None


def test_layers_do_not_import_the_server_cli_or_web() -> None:
    import pathlib
    import re

    src = pathlib.Path(aistack.__file__).parent
    bad = []
    for layer in (
        "compute",
        "scheduler",
        "executors",
        "launch",
        "storage",
        "webdata",
        "train",
        "mlops",
        "serving",
        "planning",
    ):
        for f in (src / layer).rglob("*.py"):
            for line in f.read_text().splitlines():
                if re.match(r"^\s*(from|import)\s+aistack\.(server|cli|web)\b", line):
                    bad.append(f"{f.relative_to(src)}: {line.strip()}")
    assert bad == []
