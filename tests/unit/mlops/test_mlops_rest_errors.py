"""aistack.mlops._rest: an answer httpx cannot follow or decode is a clear aistack error."""

from __future__ import annotations

import httpx
import pytest

from aistack.errors import BackendError
from aistack.mlops import _rest


def test_a_redirect_loop_is_a_backend_error_naming_the_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracking URI that redirects to itself raised httpx.TooManyRedirects (a traceback
    from `aistack models ls`); it is a BackendError with the URL and what to check."""

    def loop(request: httpx.Request) -> httpx.Response:
        return httpx.Response(302, headers={"location": str(request.url)})

    real = _rest._http_client

    def client(token: str | None) -> httpx.Client:
        c = real(token)
        c._transport = httpx.MockTransport(loop)
        return c

    monkeypatch.setattr(_rest, "_http_client", client)
    with pytest.raises(BackendError) as e:
        _rest.list_registered_models("http://127.0.0.1:9/mlflow")
    assert "TooManyRedirects" in str(e.value)
    assert "127.0.0.1:9/mlflow" in str(e.value)
    assert "MLFLOW_TRACKING_URI" in (e.value.hint or "")
