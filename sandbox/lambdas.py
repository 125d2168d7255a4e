"""Run the app's Lambda functions in-process for moto's Step Functions interpreter.

moto executes the real statemachine.json; each Task state calls Lambda Invoke, which this module
answers by calling the matching Chalice function through chalice.test.Client, the way Lambda
would: a raised exception becomes a function error whose errorType is the exception's class name.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any
from unittest import mock

from chalice.config import Config
from chalice.test import TestLambdaClient

from sandbox.stage import APP_NAME, PROJECT_DIR

log = logging.getLogger(__name__)

_LAMBDA_BACKEND = "moto.awslambda_simple.models.LambdaSimpleBackend.invoke"
_RETRY_TIME = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl.time"


class LocalLambdas:
    """Dispatches Lambda Invoke calls to the Chalice app's functions in this process."""

    def __init__(
        self, app, stage: str, *, retry_sleep_scale: float = 1.0, environment: dict[str, str] | None = None
    ) -> None:
        # The stage's environment from .chalice/config.json, as Lambda would set it, plus
        # `environment` (the sandbox's endpoints on the ports it actually got).
        config = Config.create(
            chalice_stage=stage,
            project_dir=str(PROJECT_DIR),
            config_from_disk=json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text()),
            environment_variables=dict(environment or {}),
        )
        self._client = TestLambdaClient(app, config)
        hush_presence_probes(json.loads((PROJECT_DIR / "statemachine.json").read_text()))
        self._prefix = f"{APP_NAME}-{stage}-"
        self._scale = retry_sleep_scale
        self._lock = threading.Lock()
        self.invocations: list[str] = []
        self.retry_sleeps: list[float] = []

    def invoke(self, function_name: str, payload: Any) -> tuple[Any, bool]:
        """Call a function by its deployed name or ARN; return (result, is_error)."""
        name = _short_name(function_name)
        if not name.startswith(self._prefix):
            raise LookupError(f"function {function_name!r} is not part of this app")
        with self._lock:
            self.invocations.append(name[len(self._prefix) :])
        try:
            return self._client.invoke(name[len(self._prefix) :], payload).payload, False
        except Exception as exc:  # noqa: BLE001 - reported to Step Functions as Lambda does
            log.debug("function=%s raised %s: %s", name, type(exc).__name__, exc)
            return {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }, True

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            self.retry_sleeps.append(seconds)
        if self._scale > 0:
            time.sleep(seconds * self._scale)

    @contextmanager
    def installed(self) -> Iterator[LocalLambdas]:
        """Patch moto so Lambda Invoke and Step Functions retry waits go through this object."""
        dispatcher = self

        def invoke(backend, function_name, qualifier, body, headers, response_headers):
            payload = json.loads(body) if body else {}
            result, is_error = dispatcher.invoke(function_name, payload)
            if is_error:
                response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(result).encode()

        fake_time = SimpleNamespace(sleep=self._sleep)
        with mock.patch(_LAMBDA_BACKEND, invoke), mock.patch(_RETRY_TIME, fake_time):
            yield self


class _PresenceProbes(logging.Filter):
    """Drops moto's error log for a Choice's IsPresent test of a path that is absent: the test is
    answered correctly (False), but moto also logs NoSuchJsonPathError, once per run."""

    def __init__(self, paths: set[str]) -> None:
        super().__init__()
        self._paths = paths

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "NoSuchJsonPathError" not in message or not any(f"'{p}'" in message for p in self._paths)


def hush_presence_probes(definition: dict[str, Any]) -> None:
    """Install _PresenceProbes for the paths `definition`'s Choice states test with IsPresent."""
    paths = {
        rule["Variable"]
        for state in definition.get("States", {}).values()
        for rule in state.get("Choices", [])
        if "IsPresent" in rule and "Variable" in rule
    }
    target = logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component")
    if paths and not any(isinstance(f, _PresenceProbes) for f in target.filters):
        target.addFilter(_PresenceProbes(paths))


def _short_name(function_name: str) -> str:
    # arn:aws:lambda:region:account:function:name[:qualifier] or a bare name
    if function_name.startswith("arn:"):
        return function_name.split(":")[6]
    return function_name
