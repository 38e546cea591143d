"""Keep the README true: every ``aistack ...`` command line, option, ``make`` target, ``bench/`` /
``scripts/`` path and ``aistack.x.y`` Python name that README.md and docs/*.md show in code (fenced
blocks and inline code spans) must exist with that spelling.

Commands are resolved through the real typer app's click command tree (nothing is run): each
word names a sub-command of the group before it, and every ``--option`` / ``-o`` must be an
option of the command reached. Arguments may be anything, placeholders (NAME, ``<x>``,
``{a,b}``, ``...``) included. Prose ("aistack is a stack") is never read: only code.
"""

from __future__ import annotations

import glob
import importlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer

from aistack.cli.main import app

ROOT = Path(__file__).resolve().parents[3]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# shell operators that end one command and may start another
_OPERATORS = {"&&", "||", ";", "|", "(", ")", "&"}
# an `aistack` executable as a shell word: `aistack`, `.venv/bin/aistack`, `$VENV/bin/aistack`
_AISTACK_EXE = re.compile(r"^(?:\S*/)?aistack$")
_ELLIPSIS = {"...", "…"}


@dataclass(frozen=True)
class Snippet:
    """A piece of code from a doc: its text, where it is, and whether it is a fenced block."""

    text: str
    where: str
    block: bool


# --- extraction ---------------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")


def snippets(text: str, name: str) -> list[Snippet]:
    """The fenced code blocks and inline code spans of a markdown text, with line numbers."""
    out: list[Snippet] = []
    lines = text.split("\n")
    prose: list[str] = []
    fence: str | None = None
    body: list[str] = []
    start = 0
    for i, line in enumerate(lines, 1):
        m = _FENCE.match(line)
        if fence is None and m:
            fence, body, start = m.group(1), [], i
            prose.append("")
            continue
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                out.append(Snippet("\n".join(body), f"{name}:{start + 1}", True))
                fence = None
            else:
                body.append(line)
            prose.append("")
            continue
        prose.append(line)
    # inline code spans (CommonMark: a run of n backticks closed by the next run of exactly n,
    # possibly across line breaks, not across a blank line)
    joined = "\n".join(prose)
    pos = 0
    run = re.compile(r"`+")
    while True:
        m = run.search(joined, pos)
        if m is None:
            break
        ticks = m.group(0)
        close = re.compile(r"(?<!`)" + ticks + r"(?!`)")
        c = close.search(joined, m.end())
        if c is None or "\n\n" in joined[m.end() : c.start()]:
            pos = m.end()
            continue
        content = " ".join(joined[m.end() : c.start()].split())
        line_no = joined.count("\n", 0, m.start()) + 1
        out.append(Snippet(content, f"{name}:{line_no}", False))
        pos = c.end()
    return out


def _words(line: str) -> list[str]:
    """A shell line as words and operators; comments dropped. Unbalanced quotes (a doc's
    shorthand) fall back to splitting on spaces."""
    try:
        # `|` is not a punctuation char here: `[--copy|--link]`, `exact|none|2` are a doc's
        # alternatives, not pipes; a pipe is written as a word of its own (`a | b`, `a || b`)
        lex = shlex.shlex(line, posix=True, punctuation_chars=";&()")
        lex.whitespace_split = True
        lex.commenters = "#"
        return list(lex)
    except ValueError:
        return line.split("#", 1)[0].split()


def _logical_lines(block: str) -> list[tuple[int, str]]:
    """A code block's lines, as (offset of its first line, text), with backslash continuations
    joined and `$ ` prompts removed."""
    out: list[tuple[int, str]] = []
    cur = ""
    first = 0
    for n, raw in enumerate(block.split("\n")):
        line = raw.strip()
        if not cur:
            first = n
            if line.startswith("$ "):
                line = line[2:]
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        out.append((first, cur + line))
        cur = ""
    if cur:
        out.append((first, cur))
    return out


def _lines_of(s: Snippet) -> list[tuple[str, str]]:
    """A snippet's command lines as (where, text): a block's lines each with its own line number,
    an inline span as one line."""
    if not s.block:
        return [(s.where, s.text)]
    name, _, start = s.where.rpartition(":")
    return [(f"{name}:{int(start) + off}", text) for off, text in _logical_lines(s.text)]


def _groups() -> set[str]:
    """The CLI's sub-command groups (data, serve, plan, ...)."""
    root = _root()
    return {n for n, c in root.commands.items() if hasattr(c, "commands")}


def aistack_commands(
    snips: list[Snippet], groups: set[str] | None = None
) -> list[tuple[str, list[str]]]:
    """Every ``aistack ...`` command line in the snippets, as (where, argv after `aistack`).

    An inline span counts only when it *starts* with the command (``aistack up``,
    ``.venv/bin/aistack jobs --all``), or with a group and one more word, the docs' shorthand
    for the same (``data log NAME``, ``serve ls|status``); in a fenced block, `aistack` counts
    at any command position (line start, after ``&&``, ``;``, ``|``, ``(``, ``VAR=value``)."""
    groups = _groups() if groups is None else groups
    found: list[tuple[str, list[str]]] = []
    for s in snips:
        if not s.block:
            first = s.text.split(" ", 1)[0]
            if first in groups and len(s.text.split()) >= 2:
                found.append((s.where, _words(s.text)))
                continue
            if not _AISTACK_EXE.match(first) or " " not in s.text:
                # `aistack` alone names the tool; `aistack.webdata` is a Python name
                if _AISTACK_EXE.match(s.text):
                    found.append((s.where, []))
                continue
        for where, line in _lines_of(s):
            words = _words(line)
            at_start = True
            for i, w in enumerate(words):
                if w in _OPERATORS:
                    at_start = True
                    continue
                if at_start and _AISTACK_EXE.match(w):
                    argv = []
                    for a in words[i + 1 :]:
                        if a in _OPERATORS:
                            break
                        argv.append(a)
                    found.append((where, argv))
                # `AISTACK_HOME=x aistack up`: an assignment keeps the command position
                at_start = at_start and bool(re.match(r"^[A-Za-z_]\w*=", w))
    return found


# --- resolution against the click tree ----------------------------------------------------------


def _is_option(word: str) -> bool:
    return word.startswith("-") and word not in ("-", "--") and not re.match(r"^-[\d.]", word)


def _option_names(cmd: Any) -> set[str]:
    names = {"--help"}
    for p in cmd.params:
        if getattr(p, "param_type_name", "") == "option":
            names.update(p.opts)
            names.update(p.secondary_opts)
    return names


def _alternatives(word: str) -> list[str]:
    """`[--json]` -> `--json`; `[--copy|--link]` / `{a,b}` -> each of them."""
    w = word.strip("[]")
    if w.startswith("{") and w.endswith("}") and "," in w:
        return [a for a in w[1:-1].split(",") if a]
    if "|" in w and all(_is_option(a) for a in w.split("|") if a):
        return [a for a in w.split("|") if a]
    return [w]


def check_command(argv: list[str], root: Any) -> list[str]:
    """What is wrong with `aistack ARGV` (an empty list: nothing)."""
    cmd = root
    path = ["aistack"]
    problems: list[str] = []
    words = list(argv)
    # walk the sub-command words while the command is a group
    while words and hasattr(cmd, "commands"):
        w = words[0]
        if w in _ELLIPSIS or _is_option(w.strip("[]")):
            break
        alts = _alternatives(w)
        if len(alts) == 1 and "|" in w:  # `serve ls|status|logs`
            alts = [a for a in w.strip("[]").split("|") if a]
        missing = [a for a in alts if a not in cmd.commands]
        if missing:
            problems.append(f"`{' '.join(path)}` has no sub-command {', '.join(missing)}")
            return problems
        if len(alts) > 1:  # `aistack {up,down}`: check each branch to the end
            for a in alts:
                problems += check_command([a, *words[1:]], root=cmd)
            return problems
        cmd = cmd.commands[w]
        path.append(w)
        words.pop(0)
    known = _option_names(cmd)
    for w in words:
        if w == "--":
            break
        for alt in _alternatives(w):
            if not _is_option(alt):
                continue
            name = alt.split("=", 1)[0]
            if name not in known:
                problems.append(f"`{' '.join(path)}` has no option {name}")
    return problems


def _root() -> Any:
    return typer.main.get_command(app)


# --- make targets, bench/ and scripts/ paths, Python names --------------------------------------


def make_targets(makefile: Path) -> set[str]:
    targets: set[str] = set()
    for line in makefile.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.%/$() -]+?)\s*::?(?!=)", line)
        if m and not line.startswith(("\t", "#")):
            targets.update(m.group(1).split())
    return targets


def make_uses(snips: list[Snippet]) -> list[tuple[str, str]]:
    out = []
    for s in snips:
        for where, line in _lines_of(s):
            words = _words(line)
            at_start = True
            for i, w in enumerate(words):
                if w in _OPERATORS:
                    at_start = True
                    continue
                if at_start and w == "make":
                    for t in words[i + 1 :]:
                        if t in _OPERATORS:
                            break
                        if not t.startswith("-") and "=" not in t:
                            out.append((where, t))
                at_start = False
    return out


_PATH = re.compile(r"(?<![\w/.-])((?:bench|scripts|tests|examples|src)/[^\s`'\",;)\]]+)")
# `scheduler/base.py`: a module's file named relative to src/aistack
_MODULE_FILE = re.compile(r"^(?:[a-z_]+/)+[a-z_]+\.py$")


def repo_paths(snips: list[Snippet]) -> list[tuple[str, str]]:
    """`bench/...`, `scripts/...`, `tests/...`, `examples/...` paths named in code, and files of
    the package named as inline spans (`scheduler/base.py` -> src/aistack/scheduler/base.py)."""
    out = []
    for s in snips:
        for m in _PATH.finditer(s.text):
            out.append((s.where, m.group(1).rstrip(".:")))
        if not s.block and _MODULE_FILE.match(s.text) and not _PATH.match(s.text):
            out.append((s.where, f"src/aistack/{s.text}"))
    return out


def check_path(path: str, root: Path = ROOT) -> str | None:
    if "<" in path or path.endswith("/"):  # bench/<script>, bench/results/<name>.json
        return None
    pattern = path.replace("…", "*").replace("...", "*")
    if pattern != path:  # `history/…T22-55_reps5_nodvc`: an abbreviated name, suffix left off
        pattern += "*"
    if any(ch in pattern for ch in "*?["):
        return None if glob.glob(str(root / pattern)) else f"nothing matches {path}"
    return None if (root / path).exists() else f"no such file {path}"


def bench_options(snips: list[Snippet]) -> list[tuple[str, str, str]]:
    """(where, bench script, --option) for `python bench/X.py --option ...` command lines."""
    out = []
    for s in snips:
        for where, line in _lines_of(s):
            words = _words(line)
            for i, w in enumerate(words):
                if re.fullmatch(r"bench/[\w-]+\.py", w) and i and words[i - 1].endswith("python"):
                    for a in words[i + 1 :]:
                        if a in _OPERATORS:
                            break
                        if a.startswith("--"):
                            out.append((where, w, a.strip("[]").split("=", 1)[0]))
    return out


_PYNAME = re.compile(r"(?<![\w.])aistack(?:\.[A-Za-z_]\w*)+")
# names in the docs that are not Python objects: MLflow tags/params aistack sets, config keys
_NOT_PYTHON = re.compile(r"^aistack\.(job_id|attempt|project|user|run_id|data|commit)\b")


_FROM_IMPORT = re.compile(r"^\s*from (aistack(?:\.\w+)*) import \(?([\w, ]+)\)?", re.M)


def python_names(snips: list[Snippet]) -> list[tuple[str, str]]:
    out = []
    for s in snips:
        if s.block and not re.search(r"^\s*(from|import) aistack", s.text, re.M):
            continue  # a fenced block is read only when it is Python that imports aistack
        for m in _FROM_IMPORT.finditer(s.text):
            for n in m.group(2).split(","):
                n = n.split(" as ")[0].strip()
                if n:
                    out.append((s.where, f"{m.group(1)}.{n}"))
        for m in _PYNAME.finditer(s.text):
            name = m.group(0)
            if "something" in name or "example" in name.split(".")[1:2]:
                continue
            out.append((s.where, name))
    return out


def resolve_python(name: str) -> str | None:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        mod_name = ".".join(parts[:i])
        try:
            obj: Any = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name and not mod_name.startswith(exc.name) and exc.name != mod_name:
                return f"importing {mod_name} needs {exc.name}"
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return f"{'.'.join(parts[:i])} has no {'.'.join(parts[i:])}"
            obj = getattr(obj, attr)
        return None
    return f"no module {parts[0]}"


# --- the checks ---------------------------------------------------------------------------------


def _all_snippets() -> list[Snippet]:
    out: list[Snippet] = []
    for f in DOC_FILES:
        out += snippets(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))
    return out


def problems_in(snips: list[Snippet], root: Any) -> list[str]:
    out = []
    for where, argv in aistack_commands(snips):
        for p in check_command(argv, root):
            out.append(f"{where}: aistack {' '.join(argv)}: {p}")
    return out


def test_docs_find_commands() -> None:
    """The extractor sees the docs' commands at all (a broken one would pass everything)."""
    found = aistack_commands(_all_snippets())
    assert len(found) > 40
    assert any(argv[:2] == ["plan", "train"] for _, argv in found)


def test_documented_aistack_commands_exist() -> None:
    problems = problems_in(_all_snippets(), _root())
    assert not problems, "docs name commands/options the CLI does not have:\n" + "\n".join(problems)


def test_documented_make_targets_exist() -> None:
    targets = make_targets(ROOT / "Makefile")
    uses = make_uses(_all_snippets())
    assert uses, "no `make` target found in the docs"
    bad = [f"{w}: make {t}" for w, t in uses if t not in targets]
    assert not bad, "docs name make targets the Makefile does not have:\n" + "\n".join(bad)


def test_documented_paths_exist() -> None:
    bad = []
    for where, path in repo_paths(_all_snippets()):
        p = check_path(path)
        if p:
            bad.append(f"{where}: {p}")
    assert not bad, "\n".join(bad)


def test_documented_bench_options_exist() -> None:
    bad = []
    common = (ROOT / "bench" / "_common.py").read_text()
    for where, script, opt in bench_options(_all_snippets()):
        path = ROOT / script
        if not path.exists():
            continue  # reported by test_documented_paths_exist
        if f'"{opt}"' not in path.read_text() and f'"{opt}"' not in common:
            bad.append(f"{where}: {script} has no option {opt}")
    assert not bad, "\n".join(bad)


def test_documented_python_names_exist() -> None:
    bad = []
    for where, name in python_names(_all_snippets()):
        p = resolve_python(name)
        if p:
            bad.append(f"{where}: {name}: {p}")
    assert not bad, "\n".join(bad)


_LINK = re.compile(r"\]\(([^)\s]+)\)")


def broken_links(text: str, doc: Path) -> list[str]:
    """Relative markdown links (`[x](docs/scheduler.md)`, images) whose file is missing."""
    bad = []
    for m in _LINK.finditer(text):
        target = m.group(1).split("#", 1)[0]
        if not target or re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # an anchor in the same page, http(s):, mailto:
        if not (doc.parent / target).exists():
            bad.append(f"{doc.name}:{text.count(chr(10), 0, m.start()) + 1}: no file {target}")
    return bad


def test_documented_links_exist() -> None:
    bad = []
    for doc in DOC_FILES:
        bad += broken_links(doc.read_text(encoding="utf-8"), doc)
    assert not bad, "\n".join(bad)


_EXTRAS = re.compile(r"\baistack\[([\w,-]+)\]")


def test_documented_pip_extras_exist() -> None:
    """`pip install 'aistack[ray,postgres]'`: every extra is in pyproject.toml."""
    import tomllib

    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get(
            "optional-dependencies", {}
        )
    )
    bad = []
    for s in _all_snippets():
        for m in _EXTRAS.finditer(s.text):
            bad += [f"{s.where}: no extra {e}" for e in m.group(1).split(",") if e not in extras]
    assert not bad, "\n".join(bad)


# --- self-tests: the checker fails on a wrong doc and ignores prose ------------------------------

_FAKE_DOC = """\
aistack is a stack; aistack up in prose is not read.

```bash
.venv/bin/aistack up --detach            # fine
aistack nosuchcmd --json
aistack data add NAME PATH --no-such-flag \\
    -m msg
cd x && aistack projects set NAME --gpu-quota 8 --bogus
```

Run `aistack jobs --all --frobnicate` or `aistack serve deploy NAME@production --min 1
--max 4` or `aistack plan tco [--chart tco.png]` or `aistack {up,down,nope}` or
`aistack data ...` or `aistack` itself; `aistack.webdata` is a module; shorthand:
`data log NAME --deleted`, `serve ls|status|nope`, `data nosuch`; `run` and `data` alone are words.
"""


def test_self_test_fake_doc_fails() -> None:
    snips = snippets(_FAKE_DOC, "fake.md")
    problems = problems_in(snips, _root())
    joined = "\n".join(problems)
    assert "has no sub-command nosuchcmd" in joined
    assert "`aistack data add` has no option --no-such-flag" in joined
    assert "`aistack projects set` has no option --bogus" in joined
    assert "`aistack jobs` has no option --frobnicate" in joined
    assert "`aistack` has no sub-command nope" in joined
    assert "`aistack serve` has no sub-command nope" in joined
    assert "`aistack data` has no sub-command nosuch" in joined
    assert len(problems) == 7, joined
    where = {w for w, _ in aistack_commands(snips)}
    assert "fake.md:1" not in where  # prose is not a command
    assert "fake.md:4" in where and "fake.md:11" in where


def test_self_test_good_commands_pass() -> None:
    root = _root()
    for argv in (
        ["up", "--detach"],
        ["data", "get", "REF", "DEST", "[--copy|--link]", "--force"],
        ["sim", "whatif", "--gpus-delta", "-8", "--json"],
        ["plan", "train", "--params=70e9", "--help"],
        ["logs", "<job>", "-f"],
        ["serve", "..."],
    ):
        assert check_command(argv, root) == [], argv
    assert check_command(["serve", "deploy", "--nope"], root)
    assert check_command(["serve", "nope"], root)


def test_self_test_other_checks() -> None:
    snips = snippets("`make demo` and `make nosuch`; `bench/nope.py`; `aistack.cli.nope`", "f")
    targets = make_targets(ROOT / "Makefile")
    assert "demo" in targets
    assert [t for _, t in make_uses(snips) if t not in targets] == ["nosuch"]
    assert check_path("bench/nope.py")
    assert check_path("bench/results/<name>.json") is None
    assert resolve_python("aistack.cli.nope")
    assert resolve_python("aistack.cli.main.app") is None
    block = Snippet("from aistack.cli.main import app, nope as x\n", "f:1", True)
    names = [n for _, n in python_names([block])]
    assert "aistack.cli.main.app" in names and "aistack.cli.main.nope" in names
    assert ("f:1", "src/aistack/cli/nope.py") in repo_paths([Snippet("cli/nope.py", "f:1", False)])
    assert check_path("src/aistack/cli/main.py") is None
    assert broken_links("[a](docs/nope.md) [b](https://x) [c](#top)", ROOT / "README.md") == [
        "README.md:1: no file docs/nope.md"
    ]
    env = Snippet("AISTACK_HOME=/x aistack nope", "f:1", True)
    assert aistack_commands([env], groups=set()) == [("f:1", ["nope"])]


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_each_doc_is_read(doc: Path) -> None:
    assert doc.read_text(encoding="utf-8").strip()
