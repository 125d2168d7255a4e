"""DynamoDB's atomicity for moto: one request at a time, as DynamoDB applies each to its items.

The app counts on DynamoDB applying a conditional write, an ADD or a transaction as one step:
photo and photographer counts, the pace counters, claims on content hashes. moto handles
requests on whatever thread they arrive and does not lock its tables, so two concurrent requests
can interleave (a lost ADD, or a transaction that deep-copies a table while another request
changes it and fails with HTTP 500). Running moto's DynamoDB requests one at a time gives back the
guarantee the app relies on; it costs little, since moto's work is Python under one GIL anyway.

`serial_dynamodb()` does it for the in-process mock (tests), `SerialDynamoDB` for moto's server
(the sandbox).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_LOCK = threading.RLock()

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@contextmanager
def serial_dynamodb() -> Iterator[None]:
    """While active, the in-process mock answers DynamoDB requests one at a time."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.process_request

    def process_request(self: Any, request: Any) -> Any:
        if "dynamodb." not in str(getattr(request, "url", "")):
            return original(self, request)
        with _LOCK:
            return original(self, request)

    BotocoreStubber.process_request = process_request  # type: ignore[method-assign]
    try:
        yield
    finally:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]


class SerialDynamoDB:
    """WSGI middleware for moto's server: DynamoDB requests (X-Amz-Target DynamoDB_...) one at a time."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with _LOCK:
            return list(self.app(environ, start_response))  # the whole answer, inside the lock


def install_serial_dynamodb(server: Any) -> SerialDynamoDB:
    """Put SerialDynamoDB in front of a started moto ThreadedMotoServer (see s3_post's gate)."""
    wsgi_server = server._server
    if wsgi_server is None:
        raise RuntimeError("start the moto server before installing SerialDynamoDB")
    serial = SerialDynamoDB(wsgi_server.app)
    wsgi_server.app = serial
    return serial
