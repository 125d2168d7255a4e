"""Opaque, tamper-evident pagination cursors (pure).

A cursor is `base64url(json payload) "." base64url(HMAC-SHA256(secret, payload))`. The payload
binds DynamoDB's LastEvaluatedKey to the listing it came from, so a cursor from one event, bib or
photographer cannot page through another, and any edit breaks the signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from chalicelib.domain.errors import InvalidCursor

_MAX_LENGTH = 2048


def encode_cursor(scope: str, last_key: dict[str, str], secret: bytes) -> str:
    """Return a signed cursor for continuing the listing `scope` after `last_key`."""
    payload = json.dumps({"s": scope, "k": last_key}, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(payload)}.{_b64(_sign(payload, secret))}"


def decode_cursor(cursor: str, scope: str, secret: bytes) -> dict[str, str]:
    """Return the key a cursor continues from; raise InvalidCursor if forged, altered or foreign."""
    if not cursor or len(cursor) > _MAX_LENGTH or cursor.count(".") != 1:
        raise InvalidCursor("cursor is not one this API issued")
    body, signature = cursor.split(".")
    try:
        payload = _unb64(body)
        given = _unb64(signature)
    except (ValueError, binascii.Error) as exc:
        raise InvalidCursor("cursor is not one this API issued") from exc
    if not hmac.compare_digest(given, _sign(payload, secret)):
        raise InvalidCursor("cursor was altered or issued by another deployment")
    data: Any = json.loads(payload)
    if data.get("s") != scope:
        raise InvalidCursor("cursor belongs to a different listing")
    key = data.get("k")
    if not isinstance(key, dict) or not all(isinstance(v, str) for v in key.values()):
        raise InvalidCursor("cursor is not one this API issued")
    return key


def _sign(payload: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
