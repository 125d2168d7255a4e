"""A local Rekognition service on a free port for one test, and a boto3 client of it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config

from sandbox.rekognition_service import LocalRekognition, make_server


@contextmanager
def served(service: LocalRekognition, *, config: Config | None = None) -> Iterator[Any]:
    """Serve `service` on a free port while the block runs; yield a boto3 Rekognition client of it."""
    server = make_server(service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield boto3.client(
            "rekognition",
            endpoint_url=f"http://127.0.0.1:{server.server_port}",
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
            config=config,
        )
    finally:
        server.shutdown()
        server.server_close()
