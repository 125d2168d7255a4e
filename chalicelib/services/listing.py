"""One page of a listing: the `limit` rule and signed cursors bound to the listing they came from."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from chalicelib.adapters.table import Page
from chalicelib.config import Settings
from chalicelib.domain.cursors import decode_cursor, encode_cursor
from chalicelib.domain.errors import InvalidLimit

Fetch = Callable[[int, dict[str, Any] | None], Page]


def page(
    view: Callable[[dict[str, Any]], dict[str, Any]],
    settings: Settings,
    listing: tuple[str, ...],
    *,
    limit: str | None,
    cursor: str | None,
    fetch: Fetch,
    items: str = "photos",
) -> dict[str, Any]:
    """Return {items: [view(record)...], "next_cursor"} for one page of `listing`.

    Raises InvalidLimit, or InvalidCursor for a cursor not issued for this listing.
    """
    size = parse_limit(limit, settings)
    secret = settings.cursor_secret.encode()
    # The cursor is bound to this exact listing (its kind and every part that names it).
    scope = json.dumps(listing)
    # An empty cursor is a malformed one, not a missing one (decode_cursor refuses it).
    found = fetch(size, decode_cursor(cursor, scope, secret) if cursor is not None else None)
    return {
        items: [view(record) for record in found.items],
        "next_cursor": encode_cursor(scope, found.last_key, secret) if found.last_key else None,
    }


def parse_limit(raw: str | None, settings: Settings) -> int:
    """Return the page size `raw` asks for (the default when absent); raise InvalidLimit."""
    if raw is None or raw == "":
        return settings.page_default_limit
    if not raw.isascii() or not raw.isdigit():  # int() would also take "1_0", " 7" or "+5"
        raise InvalidLimit(f"limit must be an integer from 1 to {settings.page_max_limit}, got {raw!r}")
    value = int(raw)
    if not 1 <= value <= settings.page_max_limit:
        raise InvalidLimit(f"limit must be an integer from 1 to {settings.page_max_limit}, got {value}")
    return value
