"""The whole SnapRace system in one process, with no AWS account.

- moto's server (S3, SQS with its dead-letter queue, DynamoDB, Step Functions, STS) on one port,
  with the stage's resources created as the deploy path creates them, and S3's POST policy rules
  applied to browser-form uploads (sandbox.s3_post), which moto's S3 skips;
- Step Functions executing the real statemachine.json, its Task states calling the app's
  `@app.lambda_function`s in this process, or in worker processes for scale runs
  (sandbox.lambdas);
- a poller feeding the ingest queue to the app's `@app.on_sqs_message` handler the way Lambda's
  event source mapping does;
- a local Rekognition (sandbox.rekognition_service) with offline OCR and face engines (or the
  synthetic ones, for scale runs), optionally under a per-operation requests-per-second quota;
- the API through Chalice's local server, stage `local`.

The app's code is unchanged: this module only sets the endpoints (AWS_ENDPOINT_URL*) and ports.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from unittest import mock

import boto3

from sandbox.atomic import install_serial_dynamodb
from sandbox.lambdas import LocalLambdas
from sandbox.quota import RateQuota
from sandbox.resources import StageResources, create_stage_resources
from sandbox.s3_post import install_post_policy_gate
from sandbox.stage import function_name, stage_environment

if TYPE_CHECKING:
    from sandbox.rekognition_service import LocalRekognition

log = logging.getLogger(__name__)

STAGE = "local"
REGION = "us-east-1"
DEFAULT_PORTS = {"aws": 4566, "rekognition": 4567, "api": 8000}
RECEIVE_MAX = 10  # messages per ReceiveMessage, SQS's most (the poller then hands out batches)


@dataclass
class Ports:
    aws: int = DEFAULT_PORTS["aws"]
    rekognition: int = DEFAULT_PORTS["rekognition"]
    api: int = DEFAULT_PORTS["api"]

    @classmethod
    def free(cls) -> Ports:
        """Three ports nothing listens on (for tests and evaluation runs)."""
        return cls(aws=free_port(), rekognition=free_port(), api=free_port())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def sandbox_environment(ports: Ports) -> dict[str, str]:
    """The process environment: the local stage's variables with the endpoints on `ports`."""
    env = stage_environment(STAGE)
    env.update(
        {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{ports.aws}",
            "AWS_ENDPOINT_URL_REKOGNITION": f"http://127.0.0.1:{ports.rekognition}",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            # moto's Step Functions interpreter calls Lambda on http://localhost:$MOTO_PORT.
            "MOTO_PORT": str(ports.aws),
        }
    )
    env.setdefault("AWS_ACCESS_KEY_ID", "sandbox")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "sandbox")
    return env


@dataclass
class Sandbox:
    """Starts and stops every piece; `resources` and the URLs are valid after start()."""

    ports: Ports = field(default_factory=Ports)
    engines: Callable[[], tuple[Any, Any]] | None = None  # () -> (ocr, faces); default: offline engines
    retry_sleep_scale: float = 1.0
    # AWS scales Rekognition out; this machine has two cores and one engine. Holding the queue while
    # this many executions run keeps each Rekognition call's wait short (the app's clients time
    # out after 60 s and retry, which only piles more work on the engine). None: never hold (scale
    # runs on the synthetic engines, where the quota, not the engine, is the limit).
    max_running_executions: int | None = 3
    quota: RateQuota | None = None  # the local Rekognition's TPS quota; None: unlimited
    # Tell the app that quota (REKOGNITION_TPS), as an operator sets it to the account's: the
    # pipeline then paces its runs to it (services/pacing.py). False: the unpaced baseline.
    pace: bool = True
    # 0: the app's functions run in this process (tests patch them). P > 0: in P worker processes
    # (sandbox.lambdas.WorkerProcesses), for scale runs that need more than one core of Python.
    lambda_processes: int = 0
    resources: StageResources | None = None
    rekognition: LocalRekognition | None = None  # after start(): the service, with its call counts
    _stoppers: list[Callable[[], None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def aws_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.aws}"

    def start(self) -> Sandbox:
        env = sandbox_environment(self.ports)
        if self.quota is not None and self.pace:
            rates = [self.quota.rate(op) for op in ("DetectText", "IndexFaces")]
            if all(rate is not None for rate in rates):
                env["REKOGNITION_TPS"] = str(min(rate for rate in rates if rate is not None))
        saved = dict(os.environ)
        self._stoppers.append(lambda: (os.environ.clear(), os.environ.update(saved)))
        os.environ.update(env)
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's and Chalice's request logs
        # Every function here shares one process and its clients' pools of 10 connections; on AWS
        # each Lambda has its own. Past 10 concurrent calls urllib3 warns on every surplus one.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        self._start_moto()
        self.resources = create_stage_resources(STAGE, region=REGION)
        self._start_rekognition()
        import app as snaprace  # after the environment is set, as `chalice deploy` would
        from chalicelib import clients

        clients.cache_clear()
        self._stoppers.append(clients.cache_clear)
        lambdas = LocalLambdas(
            snaprace.app,
            STAGE,
            retry_sleep_scale=self.retry_sleep_scale,
            environment=env,
            processes=self.lambda_processes,
        )
        installed = lambdas.installed()
        installed.__enter__()
        self._stoppers.append(lambda: installed.__exit__(None, None, None))
        self._start_poller(lambdas, snaprace.app)
        self._start_api(snaprace.app)
        return self

    def stop(self) -> None:
        self._stop.set()
        for stopper in reversed(self._stoppers):
            try:
                stopper()
            except Exception:
                log.exception("while stopping the sandbox")
        self._stoppers.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- pieces -----------------------------------------------------------------------------

    def _start_moto(self) -> None:
        from moto.core.config import default_user_config
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer

        saved = {name: default_user_config.get(name) for name in ("stepfunctions", "lambda")}
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        default_user_config["lambda"] = {"use_docker": False}
        self._stoppers.append(lambda: default_user_config.update(saved))
        # moto's backends are this process's globals: a sandbox started after another one here (a
        # second burst, the next test module) found the last one's tables, objects and executions,
        # and a burst then counted the earlier burst's photos as its own.
        from moto.moto_api._internal import moto_api_backend

        moto_api_backend.reset()
        speedups = _moto_at_scale()
        speedups.__enter__()
        self._stoppers.append(lambda: speedups.__exit__(None, None, None))
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.ports.aws, verbose=False)
        server.start()
        self._stoppers.append(server.stop)
        # moto's S3 stores any browser-form (presigned POST) upload without reading its policy;
        # real S3 refuses a wrong key, content type or size, an expired policy or a bad signature.
        # The gate checks each such form as S3 does, signed with the key the sandbox's clients use.
        install_post_policy_gate(server, secret_key=os.environ["AWS_SECRET_ACCESS_KEY"])
        # DynamoDB applies each request atomically; moto's threads do not (see sandbox/atomic.py).
        self._stoppers.append(install_serial_dynamodb(server))

    def _start_rekognition(self) -> None:
        from sandbox.rekognition_service import LocalRekognition, make_server

        ocr, faces = (self.engines or offline_engines)()
        s3 = boto3.client("s3")

        def read_s3(bucket: str, key: str, version: str | None) -> bytes:
            request = {"Bucket": bucket, "Key": key, **({"VersionId": version} if version else {})}
            return s3.get_object(**request)["Body"].read()

        service = LocalRekognition(ocr, faces, read_s3, REGION, quota=self.quota)
        if self.quota is not None:
            log.info("rekognition quota %s", self.quota.describe())
        server = make_server(service, port=self.ports.rekognition)
        threading.Thread(target=server.serve_forever, name="rekognition", daemon=True).start()
        self.rekognition = service
        self._stoppers.append(lambda: (server.shutdown(), server.server_close(), service.log_call_counts()))

    def _start_poller(self, lambdas: LocalLambdas, app) -> None:
        batch_size = next(
            (source.batch_size for source in app.event_sources if getattr(source, "queue", None)), 1
        )
        sfn = boto3.client("stepfunctions")
        machine = self.resources.state_machine_arn

        limit = self.max_running_executions

        def busy() -> bool:
            if limit is None:
                return False
            running = sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]
            return len(running) >= limit

        poller = QueuePoller(
            queue_url=self.resources.queue_url,
            handler=function_name(STAGE, "on_upload"),
            invoke=lambdas.invoke,
            batch_size=batch_size,
            stop=self._stop,
            queue_arn=self.resources.queue_arn,
            busy=busy,
            # With a hold on running executions, one batch per receive, so the hold stays exact.
            receive_max=RECEIVE_MAX if limit is None else batch_size,
        )
        thread = threading.Thread(target=poller.run, name="sqs-poller", daemon=True)
        thread.start()
        self._stoppers.append(lambda: thread.join(timeout=5))

    def _start_api(self, app) -> None:
        from sandbox.api import start_api

        self._stoppers.append(start_api(app, STAGE, self.ports.api))


@contextmanager
def _moto_at_scale() -> Iterator[None]:
    """Cache two of moto's per-request costs that dominate once hundreds of photos are in flight.

    Behaviour is unchanged. py-spy on `python -m sandbox burst --photos 150` (no quota, synthetic
    engines), as shares of the process's CPU samples, before → after:
    - moto's server lists its own ~190 package folders (a stat each) to route every request, inside
      the one lock all requests share: routing 4.0% → 0.3%;
    - its Step Functions interpreter builds a new boto3 Lambda client for every Task state it runs
      (four per photo), under the GIL every thread here shares: 6.2% → 0.
    And a third, measured on `--photos 300 --rekognition-tps 1.5` while the upload queue held
    ~250 messages: every ReceiveMessage checks its message's retention by computing all of the
    queue's attributes, three of which walk every message (8% of the samples); it now reads the
    retention period alone.
    """
    from moto import backends
    from moto.core.utils import unix_time
    from moto.sqs.models import SQSBackend
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    modules = tuple(backends.list_of_moto_modules())
    build = lambda_eval_utils.boto_client_for

    @functools.cache
    def cached_client(region: str, service: str, port: str | None) -> Any:
        return build(region=region, service=service)

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        # moto's own builder ignores the credentials (it signs with dummies); the port can change
        # between sandboxes in one process, so it is part of the key.
        return cached_client(region, service, os.environ.get("MOTO_PORT"))

    def within_retention(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    with (
        mock.patch.object(backends, "list_of_moto_modules", lambda: modules),
        mock.patch.object(lambda_eval_utils, "boto_client_for", client_for),
        mock.patch.object(SQSBackend, "is_message_valid_based_on_retention_period", within_retention),
    ):
        yield


class QueuePoller:
    """Lambda's SQS event source mapping, in miniature.

    Long-polls the queue (while the pipeline has capacity), hands each batch to the handler as an
    SQS event, deletes the batch's
    messages when the handler succeeds and leaves them when it fails, so they come back after the
    visibility timeout and move to the dead-letter queue after the redrive policy's receive count
    (moto applies the redrive policy on receive, as SQS does).
    """

    def __init__(
        self,
        *,
        queue_url: str,
        handler: str,
        invoke,
        batch_size: int,
        stop: threading.Event | None,
        queue_arn: str,
        busy: Callable[[], bool] = lambda: False,
        receive_max: int = RECEIVE_MAX,
    ) -> None:
        self._sqs = boto3.client("sqs")
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._handler = handler
        self._invoke = invoke
        self._batch_size = batch_size
        self._stop = stop or threading.Event()
        self._busy = busy
        self._receive_max = min(RECEIVE_MAX, max(1, receive_max))

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                if self._busy():
                    time.sleep(0.2)  # messages wait in the queue, as they would for Lambda concurrency
                    continue
                self.poll_once(wait_seconds=1)
            except Exception:
                log.exception("sqs poll failed")
                time.sleep(1)

    def poll_once(self, wait_seconds: int = 0) -> int:
        """Receive up to `receive_max` messages and hand them to the handler `batch_size` at a
        time; return how many were received.

        Lambda's pollers also receive up to 10 at once and invoke per batch. A burst of uploads
        keeps hundreds of messages waiting here, and each of moto's receives walks the queue: one
        receive per 10 messages instead of one per message.
        """
        messages = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=self._receive_max,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        for start in range(0, len(messages), self._batch_size):
            self._handle(messages[start : start + self._batch_size])
        return len(messages)

    def _handle(self, batch: list[dict[str, Any]]) -> None:
        """Invoke the handler with one batch; delete its messages when it succeeds."""
        event = {"Records": [self._record(message) for message in batch]}
        result, failed = self._invoke(self._handler, event)
        if failed:
            log.warning(
                "handler failed for %d message(s), left for redelivery: %s",
                len(batch),
                result.get("errorType"),
            )
            return
        for message in batch:
            self._sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self._queue_arn,
            "awsRegion": REGION,
        }


def offline_engines() -> tuple[Any, Any]:
    """The offline OCR and face engines (heavy imports, so only when the sandbox starts)."""
    from sandbox.engines.faces import FaceEngine
    from sandbox.engines.ocr import OcrEngine

    return OcrEngine(), FaceEngine()


def synthetic_engines() -> tuple[Any, Any]:
    """The synthetic engines: milliseconds per call, reading codes drawn into generated photos."""
    from sandbox.engines.synthetic import synthetic_engines as engines

    return engines()


ENGINES: dict[str, Callable[[], tuple[Any, Any]]] = {
    "offline": offline_engines,
    "synthetic": synthetic_engines,
}
