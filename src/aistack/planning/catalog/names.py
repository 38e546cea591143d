"""Names as the catalog compares them (case and punctuation aside) and close-match suggestions."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from aistack.errors import NotFoundError


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def suggest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The closest names (difflib), compared case- and punctuation-insensitively."""
    choices = list(choices)
    by_norm = {_norm(c): c for c in choices}
    hits = difflib.get_close_matches(_norm(name), list(by_norm), n=n, cutoff=0.4)
    out = [by_norm[h] for h in hits]
    if not out:
        out = [c for c in choices if _norm(name) and _norm(name) in _norm(c)][:n]
    return out


def _not_found(
    kind: str, name: str, choices: Iterable[str], field: str, known: Iterable[str] | None = None
) -> NotFoundError:
    choices = list(choices)
    known = list(known) if known is not None else choices
    close = suggest(name, choices)
    msg = f"{field}: unknown {kind} {name!r}"
    if close:
        msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
    return NotFoundError(
        msg,
        hint=f"known: {', '.join(sorted(known))} (aistack plan catalog; add your own in AISTACK_HOME/catalog/*.yaml)",
        # the field, as the other planning errors give it: the CLI says it as its option (--gpu)
        field=field,
    )
