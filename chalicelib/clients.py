"""Lazily built, cached boto3 clients and adapters.

Nothing is built at import time, so a moto mock is active before any client exists; tests call
`cache_clear()` between cases. Endpoints come from the standard AWS_ENDPOINT_URL_<SERVICE>
variables (the sandbox stage sets them), so this code is the same everywhere.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.adapters.functions import Functions
from chalicelib.adapters.rekognition import Rekognition
from chalicelib.adapters.storage import Storage
from chalicelib.adapters.table import PhotoTable
from chalicelib.adapters.workflow import Workflow
from chalicelib.config import Settings
from chalicelib.services.events import EventGate

# Standard retry mode: botocore retries throttling and 5xx with backoff before we ever see them.
# total_max_attempts counts the first call too (botocore's max_attempts counts only the retries).
_BOTO_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 4}, signature_version="v4")


@functools.cache
def settings() -> Settings:
    return Settings.from_env()


# functools.cache does not stop two threads that miss together from both building: in a process
# that runs many functions at once (the sandbox), a burst's first calls built dozens of identical
# clients, each loading botocore's endpoint data. Clients are built one at a time, each once.
_building = threading.Lock()


def _client(service: str, attempts: int = 4) -> Any:
    with _building:
        return _cached_client(service, attempts)  # one cache key per (service, attempts), however called


@functools.cache
def _cached_client(service: str, attempts: int) -> Any:
    config = _BOTO_CONFIG.merge(Config(retries={"mode": "standard", "total_max_attempts": attempts}))
    return _session().client(service, config=config)


@functools.cache
def _session() -> boto3.session.Session:
    """One session for every client: it loads botocore's data files once, not once per client
    (a session is not safe to build clients from in several threads; _client serialises that)."""
    return boto3.session.Session()


@functools.cache
def storage() -> Storage:
    return Storage(_client("s3"))


# DetectText and IndexFaces are retried by Step Functions (statemachine.json): one botocore attempt
# each, so every call Rekognition sees took its paced turn and a throttle goes straight back.
STEP_RETRIED = 1


def rekognition(attempts: int = 4) -> Rekognition:
    return _rekognition(attempts)  # one adapter per retry setting, however called


@functools.cache
def _rekognition(attempts: int) -> Rekognition:
    return Rekognition(_client("rekognition", attempts), settings().collection_prefix)


@functools.cache
def table() -> PhotoTable:
    current = settings()
    return PhotoTable(
        _client("dynamodb"),
        current.table_name,
        max_attempts=current.fanout_max_attempts,
        base_delay=current.fanout_base_delay_ms / 1000,
        max_delay=current.fanout_max_delay_ms / 1000,
    )


@functools.cache
def workflow() -> Workflow:
    return Workflow(_client("stepfunctions"), _client("sts"), settings().state_machine_name)


@functools.cache
def functions() -> Functions:
    return Functions(_client("lambda"), settings().jobs_function)


@functools.cache
def photo_bucket() -> str:
    """The stage's photo bucket: its configured prefix plus this account's id (as the template names it)."""
    return settings().photo_bucket_prefix + workflow().account


@functools.cache
def event_gate() -> EventGate:
    return EventGate(table(), ttl=settings().event_cache_seconds)


def cache_clear() -> None:
    """Forget every client, adapter and setting (tests switch mocks and environments)."""
    for cached in (
        settings,
        _session,
        _cached_client,
        storage,
        _rekognition,
        table,
        workflow,
        functions,
        photo_bucket,
        event_gate,
    ):
        cached.cache_clear()
