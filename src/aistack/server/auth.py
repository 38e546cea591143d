"""The API token: created at first start in the home dir (mode 0600), required on every call
except /healthz and the dashboard's login page. Sent as ``Authorization: Bearer <token>`` or as
the ``aistack_token`` cookie (the dashboard)."""

from __future__ import annotations

import hmac
import os
import secrets

from aistack.settings import Settings


def load_or_create_token(settings: Settings) -> str:
    if settings.token:
        return settings.token
    path = settings.token_file
    if path.exists():
        tok = path.read_text().strip()
        if tok:
            return tok
    settings.ensure_home()
    tok = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(tok + "\n")
    return tok


def read_token(settings: Settings) -> str | None:
    if settings.token:
        return settings.token
    try:
        return settings.token_file.read_text().strip() or None
    except OSError:
        return None


def token_matches(given: str | None, expected: str) -> bool:
    """Constant-time comparison of the bytes: a token with non-ASCII characters (from a header,
    cookie or form) is simply wrong, not an error."""
    if not given:
        return False
    try:
        return hmac.compare_digest(
            str(given).encode("utf-8", "surrogateescape"),
            expected.encode("utf-8", "surrogateescape"),
        )
    except (TypeError, ValueError, UnicodeError):
        return False
