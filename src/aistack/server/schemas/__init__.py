"""Request and response shapes of the REST API, one module per resource; shared field types
here."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator


def _utc_in_range(t: dt.datetime) -> dt.datetime:
    """The time in UTC; an offset that moves it past year 1 or 9999 is a 422, not a 500."""
    if t.tzinfo is None:
        return t.replace(tzinfo=dt.UTC)
    try:
        return t.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError(
            f"{t.isoformat()} is out of range once converted to UTC (years 1 to 9999)"
        ) from None


UtcTime = Annotated[dt.datetime, AfterValidator(_utc_in_range)]
"""A datetime given with or without an offset, returned in UTC (naive means UTC)."""
