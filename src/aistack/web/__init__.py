"""The web dashboard, served by ``aistack up`` at /. Assets come from this package (no CDN):
a small HTML shell, one stylesheet, and vanilla JavaScript that calls the REST API with the
token kept in a cookie after log-in (``/login``)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent
# the dashboard's pages load only this server's scripts: an injected <script> or on*= handler
# does not run even where escaping was missed (inline style attributes stay allowed: the
# pages and charts use them); no framing (clickjacking), forms post only here
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def safe_next(value: str | None) -> str:
    """Where the log-in form sends the browser afterwards: a path on this server ("/",
    "/#/jobs/abc", "/mlflow/"), else "/". Anything that could leave this origin is refused: a
    scheme or host ("https://x", "//x"), a backslash ("/\\x", which browsers read as "//x"),
    control characters (browsers drop tabs and newlines, so "/<tab>/x" is "//x"); the log-in
    and log-out pages themselves go to "/" too."""
    if not value or len(value) > 2048 or not value.startswith("/"):
        return "/"
    if value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.rstrip("/") in ("/login", "/logout"):
        return "/"
    return value


def mount(app: FastAPI, ctx: Any) -> None:
    from aistack.server.auth import token_matches

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    index_html = (HERE / "templates" / "index.html").read_text()
    # the token file this server reads (AISTACK_HOME may move it from ~/.aistack/token)
    login_html = (HERE / "templates" / "login.html").read_text()
    if getattr(ctx.settings, "token_file", None) is not None:
        login_html = login_html.replace(
            "~/.aistack/token", html.escape(str(ctx.settings.token_file))
        )

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(index_html, headers=HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/login", include_in_schema=False)
    def login_page(error: str | None = None, next: str | None = None) -> HTMLResponse:
        msg = (
            '<p class="error" id="login-error">Wrong token: copy it from '
            + html.escape(str(ctx.settings.token_file))
            + " on the server's host.</p>"
            if error
            else ""
        )
        # the page asked for before the log-in (login.js adds a #/page the server never sees)
        page = login_html.replace("<!--ERROR-->", msg).replace(
            'id="next" value="/"', f'id="next" value="{html.escape(safe_next(next))}"'
        )
        return HTMLResponse(page, headers=HEADERS)

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: str = Form(...), next: str = Form("/")) -> Response:
        target = safe_next(next)
        if not token_matches(token.strip(), ctx.token):
            again = "/login?error=1" + ("" if target == "/" else "&next=" + quote(target, safe=""))
            return RedirectResponse(again, status_code=303)
        resp = RedirectResponse(target, status_code=303)
        # Secure when the browser came over HTTPS (directly or through a TLS proxy); plain HTTP
        # on 127.0.0.1, the default, could not send a Secure cookie back at all
        proto = request.headers.get("x-forwarded-proto", request.url.scheme)
        resp.set_cookie(
            "aistack_token",
            token.strip(),
            httponly=True,
            samesite="strict",
            max_age=30 * 86400,
            secure=proto.split(",")[0].strip().lower() == "https",
        )
        return resp

    @app.get("/logout", include_in_schema=False)
    def logout(_request: Request) -> Response:
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie("aistack_token")
        return resp
