"""Pagination cursors: a cursor continues only the listing it came from, signed by this deployment."""

from __future__ import annotations

import base64
import json

import pytest

from chalicelib.domain.cursors import decode_cursor, encode_cursor
from chalicelib.domain.errors import InvalidCursor

SECRET = b"test-secret"
KEY = {"PK": "ORG#acme#EVT#e1", "SK": "PHOTO#2026-05-01T08:00:00#p1"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signed(payload: bytes, secret: bytes = SECRET) -> str:
    """A cursor for any payload, signed as the API signs: to test what decoding checks after the signature."""
    import hashlib
    import hmac

    return f"{_b64(payload)}.{_b64(hmac.new(secret, payload, hashlib.sha256).digest())}"


def test_a_cursor_continues_its_listing_from_the_key_it_was_given():
    cursor = encode_cursor("gallery#acme#e1", KEY, SECRET)

    assert decode_cursor(cursor, "gallery#acme#e1", SECRET) == KEY


def test_a_cursor_is_url_safe_with_no_padding():
    for key in ({"PK": "?>?>" * 7}, {"PK": "~~~"}, KEY, {"PK": "a"}, {"PK": "ab"}):
        cursor = encode_cursor("s", key, SECRET)

        assert not set(cursor) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
        assert decode_cursor(cursor, "s", SECRET) == key


def test_the_same_listing_and_key_give_the_same_cursor():
    reordered = dict(reversed(list(KEY.items())))

    assert encode_cursor("s", KEY, SECRET) == encode_cursor("s", reordered, SECRET)


def test_a_cursor_from_another_listing_is_refused():
    cursor = encode_cursor("gallery#acme#e1", KEY, SECRET)

    with pytest.raises(InvalidCursor, match="different listing"):
        decode_cursor(cursor, "gallery#acme#e2", SECRET)


def test_a_cursor_signed_by_another_deployment_is_refused():
    cursor = encode_cursor("s", KEY, b"another-secret")

    with pytest.raises(InvalidCursor, match="altered"):
        decode_cursor(cursor, "s", SECRET)


def test_an_altered_payload_is_refused():
    body, signature = encode_cursor("s", KEY, SECRET).split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["k"]["SK"] = "PHOTO#2099"
    altered = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())

    with pytest.raises(InvalidCursor, match="altered"):
        decode_cursor(f"{altered}.{signature}", "s", SECRET)


@pytest.mark.parametrize(
    "cursor",
    ["", "no-dot", "a.b.c", "abcde.ab", "é.é", "a" * 2000 + "." + "a" * 48],
    ids=["empty", "no-dot", "two-dots", "not-base64", "not-ascii", "too-long"],
)
def test_text_that_is_not_a_cursor_is_refused_as_not_issued(cursor):
    with pytest.raises(InvalidCursor, match="not one this API issued"):
        decode_cursor(cursor, "s", SECRET)


def test_the_longest_cursor_accepted_is_2048_characters():
    # A valid cursor padded with a long key to exactly 2048 characters decodes; one more does not.
    def of_length(n: int) -> str:
        low, high = 0, n
        while low < high:
            middle = (low + high) // 2
            if len(encode_cursor("s", {"PK": "x" * middle}, SECRET)) < n:
                low = middle + 1
            else:
                high = middle
        return encode_cursor("s", {"PK": "x" * low}, SECRET)

    exact = of_length(2048)
    longer = encode_cursor("s", {"PK": "x" * (json.loads(_payload(exact))["k"]["PK"].count("x") + 3)}, SECRET)
    assert len(exact) == 2048 and len(longer) > 2048

    assert decode_cursor(exact, "s", SECRET)["PK"].startswith("x")
    with pytest.raises(InvalidCursor):
        decode_cursor(longer, "s", SECRET)


def _payload(cursor: str) -> bytes:
    body = cursor.split(".")[0]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


@pytest.mark.parametrize(
    "data",
    [{"s": "s", "k": ["PK"]}, {"s": "s", "k": {"PK": 1}}, {"s": "s"}],
    ids=["key-not-a-dict", "value-not-a-string", "no-key"],
)
def test_a_signed_payload_whose_key_is_not_string_attributes_is_refused(data):
    cursor = _signed(json.dumps(data).encode())

    with pytest.raises(InvalidCursor, match="not one this API issued"):
        decode_cursor(cursor, "s", SECRET)
