"""Organiser tokens for API tests: real ones, issued through the service and stored hashed."""

from __future__ import annotations

from chalicelib.adapters.table import PhotoTable
from chalicelib.services import auth


def bearer(table: PhotoTable, org_id: str) -> dict[str, str]:
    """Return the Authorization header of a new token for `org_id`."""
    token, _ = auth.create_token(org_id, label="tests", table=table, now="2025-05-01T09:00:00Z")
    return {"Authorization": f"Bearer {token}"}
