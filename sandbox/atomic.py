"""DynamoDB's atomicity for moto: one request at a time, as DynamoDB applies each to its items.

The app counts on DynamoDB applying a conditional write, an ADD or a transaction as one step:
photo and photographer counts, the pace counters, claims on content hashes. moto handles
requests on whatever thread they arrive and does not lock its tables, so two concurrent requests
can interleave (a lost ADD, or a transaction that deep-copies a table while another request
changes it and fails with HTTP 500). Running moto's DynamoDB requests one at a time gives back the
guarantee the app relies on; it costs little, since moto's work is Python under one GIL anyway.

`serial_dynamodb()` does it for the in-process mock (tests), `SerialDynamoDB` for moto's server
(the sandbox).

Both also make moto's TransactWriteItems roll back from a journal of the items it names instead
of a deep copy of every table it touches: with one table per stage, that copy grew with the event
(a 500-photo burst spent a quarter of the server's time in it, holding the lock while the
pipeline's pace reservations waited). The journal restores exactly those items, which is all a
transaction can change.
"""

from __future__ import annotations

import copy
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

_LOCK = threading.RLock()
# Stands in for the copy module inside moto's DynamoDB backend during a transaction: its "backup"
# is then the live table, and the journal does the rolling back.
_NO_TABLE_COPY = types.SimpleNamespace(deepcopy=lambda value: value)

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
        with journalled_transactions():
            yield
    finally:
        BotocoreStubber.process_request = original  # type: ignore[method-assign]


@contextmanager
def journalled_transactions() -> Iterator[None]:
    """While active, moto's TransactWriteItems rolls back from a journal of the items it names."""
    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType

    backend = models.DynamoDBBackend
    original = backend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        journal = []
        for entry in transact_items:
            for op in entry.values():
                table = self.tables.get(op.get("TableName"))
                attrs = op.get("Key") or op.get("Item") or {}
                if table is None or table.hash_key_attr not in attrs:
                    continue  # moto refuses it before writing anything
                hash_key = DynamoType(attrs[table.hash_key_attr])
                range_attr = table.range_key_attr
                if range_attr is not None and range_attr not in attrs:
                    continue
                range_key = DynamoType(attrs[range_attr]) if range_attr is not None else None
                before = table.get_item(hash_key, range_key)
                journal.append((table, hash_key, range_key, copy.deepcopy(before)))
        with _LOCK:
            models.copy = _NO_TABLE_COPY  # type: ignore[attr-defined]
            try:
                original(self, transact_items)
            except BaseException:
                for table, hash_key, range_key, before in reversed(journal):
                    _restore(table, hash_key, range_key, before)
                raise
            finally:
                models.copy = copy  # type: ignore[attr-defined]

    backend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    try:
        yield
    finally:
        backend.transact_write_items = original  # type: ignore[method-assign]


def _restore(table: Any, hash_key: Any, range_key: Any, before: Any) -> None:
    """Put one item of a moto table back as it was (None: it did not exist)."""
    if range_key is None:
        if before is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = before
    elif before is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = before


class SerialDynamoDB:
    """WSGI middleware for moto's server: DynamoDB requests (X-Amz-Target DynamoDB_...) one at a time."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with _LOCK:
            return list(self.app(environ, start_response))  # the whole answer, inside the lock


def install_serial_dynamodb(server: Any) -> Callable[[], None]:
    """Put SerialDynamoDB in front of a started moto ThreadedMotoServer (see s3_post's gate) and
    journal its transactions; return the function that takes the journal out again (call it when
    the server stops).

    The journal's context stays referenced by that function: a generator context left to the
    garbage collector is closed, which would put moto's table copying back behind our back.
    """
    wsgi_server = server._server
    if wsgi_server is None:
        raise RuntimeError("start the moto server before installing SerialDynamoDB")
    wsgi_server.app = SerialDynamoDB(wsgi_server.app)
    journal = journalled_transactions()
    journal.__enter__()

    def uninstall() -> None:
        journal.__exit__(None, None, None)

    return uninstall
