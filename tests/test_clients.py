"""chalicelib.clients: lazily built clients, each built once even when many threads ask at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3

from chalicelib import clients


def test_threads_that_miss_together_build_one_client(monkeypatch):
    # The sandbox runs many functions in one process; a burst's first DetectText calls all asked
    # for the Rekognition client before any had been built, and each built its own.
    built: list[str] = []
    real = boto3.session.Session.client

    def slow_client(self, *args, **kwargs):
        built.append(args[0] if args else kwargs["service_name"])
        time.sleep(0.05)  # building takes a while: every other thread arrives meanwhile
        return real(self, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", slow_client)
    clients.cache_clear()
    start = threading.Barrier(8)

    def first_call(_: int) -> object:
        start.wait()
        return clients._client("rekognition", clients.STEP_RETRIED)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(pool.map(first_call, range(8)))
    finally:
        clients.cache_clear()
    assert built == ["rekognition"]
    assert all(client is got[0] for client in got)


def test_clients_share_one_session_until_the_cache_is_cleared():
    clients.cache_clear()
    try:
        s3, dynamodb = clients._client("s3"), clients._client("dynamodb")
        assert s3 is clients._client("s3")
        assert s3 is not clients._client("s3", 1)  # another retry budget is another client
        session = clients._session()
        assert dynamodb is not s3
        clients.cache_clear()
        assert clients._session() is not session
        assert clients._client("s3") is not s3
    finally:
        clients.cache_clear()
