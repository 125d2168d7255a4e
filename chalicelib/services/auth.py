"""Organiser tokens: created once and shown once, stored only as a hash, scoped to one org, revocable.

A token is `snr_` followed by 43 random base64url characters (256 bits). The table keeps its
SHA-256 and a short token id (the hash's first 12 hex digits) to list and revoke it by. The
API Gateway authorizer (`verify`) turns the `Authorization` header into a context; every organiser
route then calls `require` with the org in its path, so the answers are the API's own 401 and 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from chalicelib.adapters.table import PhotoTable
from chalicelib.domain import keys
from chalicelib.domain.errors import (
    InvalidId,
    InvalidRequest,
    InvalidToken,
    MissingToken,
    TokenRevoked,
    WrongOrganisation,
)

TOKEN_PREFIX = "snr_"
_TOKEN_ID_DIGITS = 12
_MAX_LABEL = 100
# Context keys the authorizer hands to the routes (API Gateway passes strings only).
_ORG, _TOKEN_ID, _DENIED = "org_id", "token_id", "denied"


def token_hash(token: str) -> str:
    """Return the hex SHA-256 a token is stored under."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    org_id: str, *, label: str | None, table: PhotoTable, now: str
) -> tuple[str, dict[str, Any]]:
    """Create a token for `org_id`; return it (the only time it exists in clear) and its listing."""
    if not keys.is_valid_id(org_id):
        raise InvalidId(f"{org_id!r} is not a valid organisation id")
    if label is not None and len(label) > _MAX_LABEL:
        raise InvalidRequest(f"label is longer than {_MAX_LABEL} characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = token_hash(token)
    record = {
        "org_id": org_id,
        "token_id": digest[:_TOKEN_ID_DIGITS],
        "label": label or "",
        "created_at": now,
    }
    table.put_token(digest, record)
    return token, _listing(record)


def list_tokens(org_id: str, *, table: PhotoTable) -> list[dict[str, Any]]:
    """Return an organisation's tokens (never the tokens themselves), oldest first."""
    return [_listing(record) for record in table.org_tokens(org_id)]


def revoke_token(org_id: str, token_id: str, *, table: PhotoTable, now: str) -> bool:
    """Revoke the organisation's token with this id; return False if it has none such."""
    for record in table.org_tokens(org_id):
        if record["token_id"] == token_id:
            table.revoke_token(record["token_hash"], now=now)
            return True
    return False


def verify(authorization: str | None, *, table: PhotoTable) -> dict[str, str]:
    """Return the authorizer context for an `Authorization` header value.

    {"org_id", "token_id"} for a live token; {"denied": <error name>} otherwise. The routes turn
    a denial into its error (see `require`), so every answer has the API's shape.
    """
    token = _bearer(authorization)
    if token is None:
        return {_DENIED: MissingToken.__name__}
    if not token.startswith(TOKEN_PREFIX):
        return {_DENIED: InvalidToken.__name__}
    digest = token_hash(token)
    record = table.token(digest)
    # compare_digest: the lookup already matched, but a constant-time check costs nothing here.
    if record is None or not hmac.compare_digest(record.get("token_hash", ""), digest):
        return {_DENIED: InvalidToken.__name__}
    if record.get("revoked_at"):
        return {_DENIED: TokenRevoked.__name__}
    return {_ORG: record["org_id"], _TOKEN_ID: record["token_id"]}


def require(context: dict[str, Any] | None, org_id: str) -> str:
    """Return the token id if the authorizer's context allows acting for `org_id`.

    Raises MissingToken or InvalidToken (401), TokenRevoked or WrongOrganisation (403).
    """
    context = context or {}
    denied = context.get(_DENIED)
    if denied == TokenRevoked.__name__:
        raise TokenRevoked("this token was revoked; ask your organisation for a new one")
    if denied == InvalidToken.__name__:
        raise InvalidToken("the bearer token is not valid")
    if denied or not context.get(_ORG):
        raise MissingToken("send Authorization: Bearer <token> (create one with python -m scripts.tokens)")
    if context[_ORG] != org_id:
        raise WrongOrganisation(f"this token belongs to another organisation, not {org_id!r}")
    return str(context[_TOKEN_ID])


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _listing(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "token_id": record["token_id"],
        "org_id": record["org_id"],
        "label": record.get("label") or "",
        "created_at": record["created_at"],
        "revoked_at": record.get("revoked_at"),
    }
