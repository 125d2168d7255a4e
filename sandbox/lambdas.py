"""Run the app's Lambda functions in-process for moto's Step Functions interpreter.

moto executes the real statemachine.json; each Task state calls Lambda Invoke, which this module
answers by calling the matching Chalice function through chalice.test.Client, the way Lambda
would: a raised exception becomes a function error whose errorType is the exception's class name.

By default the functions run in this process, so tests can patch them. With `processes=P` they run
in P worker processes instead (each with the same environment, threads for concurrent calls):
Lambda gives every function its own process, and a scale run (`python -m sandbox burst`) then has
more than one core's worth of Python for moto, Step Functions and the functions together.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import multiprocessing
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import SimpleNamespace
from typing import Any
from unittest import mock

from chalice.config import Config
from chalice.test import TestLambdaClient

from sandbox.stage import APP_NAME, PROJECT_DIR

log = logging.getLogger(__name__)

_LAMBDA_BACKEND = "moto.awslambda_simple.models.LambdaSimpleBackend.invoke"
_RETRY_TIME = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl.time"
# Concurrent calls per worker process (each on a thread): in a burst hundreds of functions can be
# waiting at once, for their Rekognition turn or on moto; past this, calls queue in the worker.
WORKER_THREADS = 512
WORKER_START_TIMEOUT = 120.0  # seconds for a worker to import the app and say READY
READY = "ready"


class LocalLambdas:
    """Dispatches Lambda Invoke calls to the Chalice app's functions in this process."""

    def __init__(
        self,
        app,
        stage: str,
        *,
        retry_sleep_scale: float = 1.0,
        environment: dict[str, str] | None = None,
        processes: int = 0,
    ) -> None:
        self._stage = stage
        self._environment = dict(environment or {})
        self._client = function_client(app, stage, self._environment)
        hush_presence_probes(json.loads((PROJECT_DIR / "statemachine.json").read_text()))
        self._prefix = f"{APP_NAME}-{stage}-"
        self._scale = retry_sleep_scale
        self._lock = threading.Lock()
        self._processes = processes
        self._workers: WorkerProcesses | None = None
        self.invocations: list[str] = []
        self.retry_sleeps: list[float] = []

    def invoke(self, function_name: str, payload: Any) -> tuple[Any, bool]:
        """Call a function by its deployed name or ARN; return (result, is_error)."""
        name = _short_name(function_name)
        if not name.startswith(self._prefix):
            raise LookupError(f"function {function_name!r} is not part of this app")
        short = name[len(self._prefix) :]
        with self._lock:
            self.invocations.append(short)
        if self._workers is not None:
            return self._workers.invoke(short, payload)
        return call_function(self._client, short, payload)

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
            if self._processes > 0:
                self._workers = WorkerProcesses(self._processes, self._stage, self._environment)
            try:
                yield self
            finally:
                if self._workers is not None:
                    self._workers.close()
                    self._workers = None


def function_client(app, stage: str, environment: dict[str, str]) -> TestLambdaClient:
    """Chalice's Lambda test client for `stage`: the stage's environment from .chalice/config.json,
    as Lambda would set it, plus `environment` (the sandbox's endpoints on the ports it got)."""
    config = Config.create(
        chalice_stage=stage,
        project_dir=str(PROJECT_DIR),
        config_from_disk=json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text()),
        environment_variables=dict(environment),
    )
    return TestLambdaClient(app, config)


def call_function(client: TestLambdaClient, short_name: str, payload: Any) -> tuple[Any, bool]:
    """Call the app's function `short_name`; return (result, is_error) as Lambda reports them."""
    try:
        return client.invoke(short_name, payload).payload, False
    except Exception as exc:  # noqa: BLE001 - reported to Step Functions as Lambda does
        log.debug("function=%s raised %s: %s", short_name, type(exc).__name__, exc)
        return {
            "errorType": type(exc).__name__,
            "errorMessage": str(exc),
            "stackTrace": traceback.format_tb(exc.__traceback__),
        }, True


class WorkerProcesses:
    """The app's functions in `count` spawned processes, calls spread over them in turn.

    Each worker imports the app with this process's environment (set before it starts) and runs
    every call it gets on a thread of its own, as concurrent Lambda invocations would run; a call
    blocks its caller here until the worker answers. The constructor returns once every worker has
    imported the app (seconds each: a burst's clock starts after that, not during it). Workers are
    daemons: they end with this process even when close() is never reached.
    """

    def __init__(self, count: int, stage: str, environment: dict[str, str]) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process full of threads
        self._pending: list[dict[int, Future[tuple[Any, bool]]]] = [{} for _ in range(count)]
        self._lock = threading.Lock()
        self._ended: set[int] = set()
        self._ids = itertools.count()
        self._connections: list[Connection] = []
        self._processes: list[BaseProcess] = []
        self._readers: list[threading.Thread] = []
        self._sends: list[threading.Lock] = []
        try:
            for index in range(count):
                self._start_worker(context, index, stage, environment)
        except BaseException:
            self.close()  # the workers that did start
            raise

    def _start_worker(self, context: Any, index: int, stage: str, environment: dict[str, str]) -> None:
        ours, theirs = context.Pipe()
        process = context.Process(
            target=_worker_main, args=(theirs, stage, environment), name=f"lambda-worker-{index}", daemon=True
        )
        process.start()
        theirs.close()
        _await_ready(ours, process)
        reader = threading.Thread(
            target=self._read, args=(index, ours), name=f"lambda-reader-{index}", daemon=True
        )
        reader.start()
        self._connections.append(ours)
        self._processes.append(process)
        self._readers.append(reader)
        self._sends.append(threading.Lock())

    def invoke(self, short_name: str, payload: Any) -> tuple[Any, bool]:
        request = next(self._ids)
        answer: Future[tuple[Any, bool]] = Future()
        worker = request % len(self._connections)
        with self._lock:
            if worker in self._ended:
                raise RuntimeError(f"Lambda worker process {worker} has ended")
            self._pending[worker][request] = answer
        with self._sends[worker]:
            self._connections[worker].send((request, short_name, payload))
        return answer.result()

    def close(self) -> None:
        for connection, send in zip(self._connections, self._sends, strict=True):
            with send, contextlib.suppress(OSError):  # OSError: that worker already ended
                connection.send(None)
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
        for reader in self._readers:
            reader.join(timeout=5)
        for connection in self._connections:
            connection.close()

    def _read(self, worker: int, connection: Connection) -> None:
        while True:
            try:
                request, result, is_error = connection.recv()
            except (EOFError, OSError):
                break  # the worker ended: close(), or it died
            with self._lock:
                answer = self._pending[worker].pop(request, None)
            if answer is not None:
                answer.set_result((result, is_error))
        with self._lock:
            self._ended.add(worker)
            unanswered, self._pending[worker] = self._pending[worker], {}
        for answer in unanswered.values():  # no caller waits forever on a worker that is gone
            answer.set_exception(RuntimeError(f"Lambda worker process {worker} ended before answering"))


def _await_ready(connection: Connection, process: BaseProcess) -> None:
    """Wait for a new worker's READY; raise if it ends or stays silent for WORKER_START_TIMEOUT."""
    try:
        ready = connection.poll(WORKER_START_TIMEOUT) and connection.recv() == READY
    except (EOFError, OSError):  # it ended while importing
        ready = False
    if not ready:
        process.terminate()
        raise RuntimeError(
            f"Lambda worker process {process.name} did not start within {WORKER_START_TIMEOUT:g} s"
            f" (exit code {process.exitcode})"
        )


def _worker_main(connection: Connection, stage: str, environment: dict[str, str]) -> None:
    """A worker process: import the app, then run each call it receives on a thread of its own."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    import app as snaprace  # after the environment is set (inherited), as `chalice deploy` would

    client = function_client(snaprace.app, stage, environment)
    send = threading.Lock()
    connection.send(READY)

    def run(request: int, short_name: str, payload: Any) -> None:
        result, is_error = call_function(client, short_name, payload)
        with send:
            connection.send((request, result, is_error))

    with ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="lambda") as pool:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                break
            if message is None:
                break
            pool.submit(run, *message)


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
