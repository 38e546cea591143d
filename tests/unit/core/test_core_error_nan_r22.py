"""An error whose details hold NaN or inf (a promotion gate on a NaN metric: "actual": nan)
is answered as the refusal it is, with the values as text; it was a 500 (JSON cannot carry
NaN). And the settings' repr does not show the API token."""

from __future__ import annotations

import math

from aistack.errors import ValidationError
from aistack.settings import Settings


def test_nan_in_an_errors_details_is_the_refusal_not_a_500(api) -> None:  # type: ignore[no-untyped-def]
    app = api.http.app

    @app.get("/api/v1/_test_nan")
    def _boom() -> None:
        raise ValidationError(
            "require: val_loss<3 failed", actual=math.nan, bounds=[-math.inf, 3.0, math.inf]
        )

    r = api.http.get("/api/v1/_test_nan")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["message"] == "require: val_loss<3 failed"
    assert body["details"]["actual"] == "nan"
    assert body["details"]["bounds"] == ["-inf", 3.0, "inf"]


def test_the_token_is_not_in_the_settings_repr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings(home=tmp_path, token="s3cr3t-token-value")
    assert "s3cr3t-token-value" not in repr(s) and "s3cr3t-token-value" not in str(s)
    assert s.token == "s3cr3t-token-value"
