"""Helpers for driving the HTTP API through the contract-checking test client."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from PIL import Image

from chalicelib import clients
from chalicelib.config import Settings
from chalicelib.domain.model import Photo
from sandbox.stage import stage_environment
from tests.support.aws import STAGE
from tests.support.fakes import FakeRekognition

# Selfies in the API tests are solid-colour images: the fake "sees" a person per colour.
PEOPLE = {
    (200, 30, 30): ["alice"],
    (30, 200, 30): ["bob"],
    (30, 30, 200): ["alice", "bob"],
    (240, 240, 240): [],
}


def people_in(image: bytes) -> list[str]:
    """The people the fake Rekognition sees in a selfie: by its colour, largest face first."""
    pixel = Image.open(io.BytesIO(image)).convert("RGB").getpixel((0, 0))
    nearest = min(PEOPLE, key=lambda c: sum(abs(a - b) for a, b in zip(c, pixel, strict=True)))
    return PEOPLE[nearest]


def selfie(colour: tuple[int, int, int], size: tuple[int, int] = (400, 400), fmt: str = "JPEG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def index_people(rekognition: FakeRekognition, photos_people: list[tuple[Photo, list[str]]]) -> None:
    """Index each photo's people into the event's collection, as IndexFaces would."""
    for photo, people in photos_people:
        faces = rekognition.collections.setdefault((photo.org_id, photo.event_id), {})
        for person in people:
            faces[f"{photo.photo_id}-{person}-{len(faces)}"] = (person, photo.photo_id)


def get(client: Any, path: str, **headers: str) -> tuple[int, Any]:
    response = client.http.get(path, headers=headers)
    return response.status_code, json.loads(response.body) if response.body else None


def post_selfie(
    client: Any, path: str, body: bytes, content_type: str = "image/jpeg", *, consent: bool = True
) -> tuple[int, Any]:
    """POST an image to a face route; with the runner's consent unless told otherwise."""
    url = f"{path}?consent=true" if consent else path
    response = client.http.post(url, headers={"Content-Type": content_type}, body=body)
    return response.status_code, json.loads(response.body) if response.body else None


def error_code(body: dict[str, Any]) -> str:
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    return str(body["error"]["code"])


def walk(client: Any, path: str, limit: int) -> list[dict[str, Any]]:
    """Follow next_cursor from the first page to the last; return the pages."""
    pages, cursor = [], None
    while True:
        url = f"{path}?limit={limit}" + (f"&cursor={quote(cursor)}" if cursor else "")
        status, body = get(client, url)
        assert status == 200, body
        pages.append(body)
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def use_settings(monkeypatch: Any, **changes: Any) -> None:
    """Run the handlers with the dev stage's settings changed."""
    settings = replace(Settings.from_env(stage_environment(STAGE)), **changes)
    monkeypatch.setattr(clients, "settings", lambda: settings)


class Unavailable:
    """A table whose every read fails with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise self.error

        return fail
