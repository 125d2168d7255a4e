"""Cost per 1,000 published photos, Standard and Express workflows side by side.

Run from the repo root: `.venv/bin/python -m bench.cost [--photos 5] [--sim-photos 20000] [--no-sim]
[--faces 3]`.

Every price is in PRICES, one dated table below; nothing else in this file holds a price. The
quantities per photo come from three places, each named on its line of the output:

- measured: the app's own functions run in this process on realistic 24-megapixel photos
  (bench.preprocess.make_photo), through chalice.test.Client as Lambda would call them, against
  moto (S3, SQS, DynamoDB, Step Functions) with the prod stage's environment and an in-memory
  Rekognition (tests/support/fakes.py) that finds two bibs and --faces faces. Each function is
  timed (median over the photos after the first, which pays for imports), and every AWS request
  it makes is counted through botocore's event hooks: S3 requests by price class, DynamoDB read
  and write request units sized from the items themselves (reads of 4 KB strongly consistent, writes
  of 1 KB, the larger of the item before and after, each GSI the item is in, transactions twice,
  a failed condition still billed), log bytes at the prod LOG_LEVEL.
- simulated: bench.event_day at 5 TPS (20 000 photos over an hour) for what only appears under
  load: state transitions with retries (the WaitForTurn state included), Rekognition calls, the
  pace table's UpdateItems (under load the
  conditional one fails and a second one follows), the time each Rekognition step waits for its
  turn and its answer (billed Lambda time), and Express's billed duration. --no-sim uses the
  ASL's success path and an unloaded pipeline instead.
- .chalice/config.json: each function's memory as Chalice deploys it.

Not counted: data transfer out (photo downloads by runners), the search API, CloudWatch alarms
(fixed, about $1.30 a month), the SQS event source's empty long polls (fixed: a few hundred
thousand requests a month), and the free tiers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from bench import event_day
from bench.asl import Retrier, all_states, retriers, success_path
from infra.stack import chalice_config
from tests.support.aws import REGION, use_mocked_aws

# --- prices: the one table ----------------------------------------------------------------------

PRICES_AS_OF = "as published, us-east-1, 2025-06 (the last I checked, offline since); verify before quoting"
PRICES: dict[str, tuple[float, str]] = {
    # Rekognition Image: DetectText (group 2) and IndexFaces (group 1), first 1M images a month.
    "rekognition_image": (0.001, "per image analysed (DetectText, IndexFaces)"),
    "rekognition_face": (0.00001, "per face stored, per month"),
    "sfn_transition": (0.000025, "Standard: per state transition"),
    "sfn_express_request": (0.000001, "Express: per execution"),
    "sfn_express_gb_second": (0.00001667, "Express: per GB-second (64 MB steps, 100 ms steps)"),
    "lambda_request": (0.0000002, "per invocation"),
    "lambda_gb_second": (0.0000166667, "per GB-second, x86"),
    "s3_put": (0.000005, "S3 Standard: PUT, COPY, POST, LIST request"),
    "s3_get": (0.0000004, "S3 Standard: GET and every other request"),
    "s3_transition_glacier_ir": (0.00002, "lifecycle transition to Glacier Instant Retrieval"),
    "s3_transition_intelligent": (0.00001, "lifecycle transition to Intelligent-Tiering"),
    "s3_standard_gb_month": (0.023, "S3 Standard (and Intelligent-Tiering frequent), GB-month"),
    "s3_glacier_ir_gb_month": (0.004, "Glacier Instant Retrieval, GB-month"),
    "s3_intelligent_monitoring": (0.0000025, "Intelligent-Tiering monitoring, per object-month"),
    # On-demand prices after AWS halved them on 2024-11-01.
    "dynamodb_wru": (0.000000625, "on-demand write request unit"),
    "dynamodb_rru": (0.000000125, "on-demand read request unit"),
    "dynamodb_gb_month": (0.25, "table storage, GB-month"),
    "dynamodb_pitr_gb_month": (0.20, "point-in-time recovery, GB-month"),
    "sqs_request": (0.0000004, "SQS standard: per request (64 KB each)"),
    "apigw_request": (0.0000035, "API Gateway REST: per request"),
    "logs_gb": (0.50, "CloudWatch Logs: per GB ingested"),
}
REFERENCE = {"Rekognition": 2.00, "Step Functions": 0.20}  # the reference system, per 1,000 photos


def price(name: str) -> float:
    return PRICES[name][0]


# --- measuring the functions in process ------------------------------------------------------------

STAGE = event_day.STAGE
ORG, EVENT = "bench", "city-marathon"
BIBS = ("1234", "A0567")
PHOTOGRAPHER = "snap.shooter"
# S3 bills PUT, COPY, POST and LIST at one price and every other request at another.
S3_PUT_CLASS = ("Put", "Copy", "Post", "List", "Create", "Complete", "Upload")
WRITES = ("PutItem", "UpdateItem", "DeleteItem")
KEY = ("PK", "SK")
INDEXES = ("GSI1", "GSI2")
# Lambda's Python runtime prefixes each log line (time, request id, level) and writes START, END
# and REPORT lines per invocation.
LOG_LINE_PREFIX, LOG_INVOCATION = 62, 330
API_FILES = 100  # files per presigned-upload request (services.uploads.MAX_FILES)


def item_size(item: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for an item in its wire format: names plus values."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in data)
    if kind == "NS":
        return sum(_number_size(n) for n in data)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def write_units(
    before: dict[str, Any] | None, after: dict[str, Any] | None, *, transaction: bool = False
) -> int:
    """Write request units for one item written (before/after images; None: absent), GSIs included.

    A transaction bills the table's write twice; its index updates are ordinary writes.
    """
    size = max(item_size(before or {}), item_size(after or {}))
    units = max(1, math.ceil(size / 1024)) * (2 if transaction else 1)
    for index in INDEXES:
        keys = (f"{index}PK", f"{index}SK")
        had = before is not None and all(k in before for k in keys)
        has = after is not None and all(k in after for k in keys)
        old, new = (before or {}), (after or {})
        if had and has and any(old[k] != new[k] for k in keys):
            units += _kilobytes(old) + _kilobytes(new)  # the index moves the item: a delete and a put
        elif had or has:
            units += _kilobytes(new if has else old)
    return units


def _kilobytes(item: dict[str, Any]) -> int:
    return max(1, math.ceil(item_size(item) / 1024))


def read_units(sizes: list[int], consistent: bool = True) -> float:
    """Read request units for items read together (a Query sums them; GetItem is one item)."""
    units = max(1, math.ceil(sum(sizes) / 4096))
    return units if consistent else units / 2


@dataclass
class Meter:
    """Counts every AWS request the app's clients make, by phase, service and operation."""

    raw: Any = None  # an uncounted DynamoDB client, to read items before and after a write
    phase: str = ""
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    wru: Counter[str] = field(default_factory=Counter)
    rru: Counter[str] = field(default_factory=Counter)
    pace: Counter[str] = field(default_factory=Counter)

    def watch(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register("before-parameter-build", self._before)
        client.meta.events.register("after-call", self._after)
        client.meta.events.register("before-call", lambda model, **_: self._count(service, model.name))

    def _count(self, service: str, operation: str) -> None:
        self.requests[(self.phase, service, operation)] += 1

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.service_model.service_name != "dynamodb":
            return
        context["snaprace_params"] = dict(params)
        context["snaprace_before"] = [self._item(key) for key in _written_keys(model.name, params)]

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.service_model.service_name != "dynamodb":
            return
        params = context.get("snaprace_params", {})
        name = model.name
        if params.get("Key", {}).get("PK", {}).get("S") == "PACE":
            self.pace[self.phase] += 1  # a pace item: under 1 KB, one unit whatever the outcome
        if name in WRITES or name in ("BatchWriteItem", "TransactWriteItems"):
            keys = _written_keys(name, params)
            befores = context.get("snaprace_before", [])
            for key, before in zip(keys, befores, strict=True):
                units = write_units(before, self._item(key), transaction=name == "TransactWriteItems")
                self.wru[self.phase] += units
        elif name == "GetItem":
            found = parsed.get("Item")
            self.rru[self.phase] += read_units(
                [item_size(found)] if found else [], params.get("ConsistentRead", False)
            )
        elif name == "Query":
            sizes = [item_size(item) for item in parsed.get("Items", [])]
            self.rru[self.phase] += read_units(sizes, params.get("ConsistentRead", False))
        elif name == "BatchGetItem":
            for items in parsed.get("Responses", {}).values():
                self.rru[self.phase] += sum(read_units([item_size(item)]) for item in items)

    def _item(self, key: tuple[str, dict[str, Any]]) -> dict[str, Any] | None:
        table, item_key = key
        return self.raw.get_item(TableName=table, Key=item_key, ConsistentRead=True).get("Item")

    def per_photo(self, phase: str, photos: int) -> dict[str, float]:
        """Requests per photo in a phase, by `service Operation`."""
        return {
            f"{service} {operation}": count / photos
            for (where, service, operation), count in sorted(self.requests.items())
            if where == phase
        }


def _written_keys(operation: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    def key_of(item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in KEY}

    if operation in ("UpdateItem", "DeleteItem"):
        return [(params["TableName"], params["Key"])]
    if operation == "PutItem":
        return [(params["TableName"], key_of(params["Item"]))]
    if operation == "BatchWriteItem":
        return [
            (
                table,
                key_of(request["PutRequest"]["Item"])
                if "PutRequest" in request
                else request["DeleteRequest"]["Key"],
            )
            for table, requests in params["RequestItems"].items()
            for request in requests
        ]
    if operation == "TransactWriteItems":
        written = []
        for action in params["TransactItems"]:
            ((kind, body),) = action.items()
            if kind != "ConditionCheck":
                written.append((body["TableName"], body["Key"] if "Key" in body else key_of(body["Item"])))
        return written
    return []


@dataclass
class Measurement:
    """What running the functions in process found, per photo (times in seconds, medians)."""

    photos: int
    seconds: dict[str, float]
    requests: dict[str, dict[str, float]]  # phase -> "service Operation" -> per photo
    wru: dict[str, float]  # phase -> per photo
    rru: dict[str, float]
    pace_requests: dict[str, float]  # phase -> the pace table's UpdateItems per photo, unloaded
    log_bytes: dict[str, float]  # phase -> per photo
    raw_bytes: int
    processed_bytes: int
    faces: int
    table_bytes: float  # what a published photo leaves in the table


class _LogBytes(logging.Handler):
    """Counts what the functions log (at the stage's level) per phase, as Lambda would ship it."""

    def __init__(self, meter: Meter) -> None:
        super().__init__(logging.DEBUG)
        self.meter = meter
        self.bytes: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.bytes[self.meter.phase] += LOG_LINE_PREFIX + len(record.getMessage().encode())


def measure(photos: int, faces: int) -> Measurement:
    """Run upload -> trigger -> each step for `photos` photos in moto; time and count everything."""
    use_mocked_aws(STAGE, REGION)  # app.py reads its settings at import time
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    import app as snaprace
    from bench.preprocess import make_photo
    from chalicelib import clients
    from chalicelib.domain.bibs import TextBox, TextDetection
    from chalicelib.services import uploads
    from sandbox.resources import create_stage_resources
    from sandbox.stage import PROJECT_DIR
    from tests.support.fakes import FakeRekognition
    from tests.support.photos import publish

    detections = [
        TextDetection(bib, 99.0, "WORD", TextBox(0.2 + 0.3 * n, 0.5, 0.1, 0.06)) for n, bib in enumerate(BIBS)
    ]
    fake = FakeRekognition(
        text=lambda bucket, key: detections, faces=lambda bucket, key: [f"runner-{n}" for n in range(faces)]
    )
    source = make_photo()
    timings: dict[str, list[float]] = defaultdict(list)
    meter = Meter()
    logged = _LogBytes(meter)
    clients.cache_clear()
    with mock_aws(), mock.patch.object(clients, "rekognition", lambda attempts=4: fake):
        resources = create_stage_resources(STAGE, region=REGION)
        meter.raw = boto3.client("dynamodb", region_name=REGION)
        table = clients.table()
        publish(table, ORG, EVENT)
        for service in ("s3", "dynamodb", "sqs", "stepfunctions", "sts"):
            meter.watch(clients._client(service))
        s3, sqs, sfn = (boto3.client(name, region_name=REGION) for name in ("s3", "sqs", "stepfunctions"))
        # The app's loggers, at the stage's level, into the counter only (not this report).
        loggers = [logging.getLogger(name) for name in ("chalicelib", snaprace.app.log.name)]
        kept = [(logger, logger.handlers[:], logger.propagate) for logger in loggers]
        for logger in loggers:
            logger.handlers, logger.propagate = [logged], False
        client = Client(snaprace.app, stage_name=STAGE, project_dir=str(PROJECT_DIR))

        def timed(phase: str, function: str, payload: dict[str, Any]) -> Any:
            meter.phase = phase
            logged.bytes[phase] += LOG_INVOCATION
            began = time.perf_counter()
            result = client.lambda_.invoke(function, payload).payload
            timings[phase].append(time.perf_counter() - began)
            meter.phase = ""
            return result

        # The photographer's command asks for presigned POSTs, up to 100 files a request.
        bodies = [source + f"\n{n}".encode() for n in range(photos)]  # bytes after EOI: new content
        files = [
            {
                "filename": f"IMG_{n:04d}.jpg",
                "content_type": "image/jpeg",
                "size": len(b),
                "sha256": hashlib.sha256(b).hexdigest(),
                "photographer": PHOTOGRAPHER,
            }
            for n, b in enumerate(bodies)
        ]
        metadata = {"photographer": PHOTOGRAPHER}
        meter.phase = "api"
        began = time.perf_counter()
        answers = uploads.request_uploads(
            ORG,
            EVENT,
            {"files": files},
            bucket=resources.bucket,
            table=table,
            storage=clients.storage(),
            settings=clients.settings(),
            now=datetime.now(UTC),
        )["uploads"]
        timings["api"].append((time.perf_counter() - began) / photos)
        meter.phase = ""
        processed_size = 0
        started: set[str] = set()
        for body, answer in zip(bodies, answers, strict=True):
            # The browser's POST, with the photographer the presigned policy carries.
            s3.put_object(Bucket=resources.bucket, Key=answer["key"], Body=body, Metadata=metadata)
            (notification,) = _receive(sqs, resources.queue_url)
            timed("on_upload", "on_upload", _sqs_event(resources, notification))
            (execution,) = [
                e
                for e in sfn.list_executions(stateMachineArn=resources.state_machine_arn)["executions"]
                if e["name"] not in started
            ]
            started.add(execution["name"])
            run = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
            state = {**run, "photo": timed("preprocess", "preprocess", run)}
            processed_size = s3.head_object(Bucket=resources.bucket, Key=state["photo"]["processed_key"])[
                "ContentLength"
            ]
            (processed,) = _receive(sqs, resources.queue_url)
            timed("on_upload_processed", "on_upload", _sqs_event(resources, processed))
            text = timed("detect_text", "detect_text", state)
            found = timed("index_faces", "index_faces", state)
            timed("fanout", "fanout", {**state, "analysis": {"text": text, "faces": found}})
        for logger, handlers, propagate in kept:
            logger.handlers, logger.propagate = handlers, propagate
        table_bytes = sum(
            item_size(item)
            for page in meter.raw.get_paginator("scan").paginate(TableName=resources.table_name)
            for item in page["Items"]
            if not item["SK"]["S"].startswith(("META", "PACE", "TOKEN")) and item["PK"]["S"] != "PACE"
        )
    steady = {phase: values[1:] or values for phase, values in timings.items()}
    return Measurement(
        photos=photos,
        seconds={phase: statistics.median(values) for phase, values in steady.items()},
        requests={phase: meter.per_photo(phase, photos) for phase in timings},
        wru={phase: meter.wru[phase] / photos for phase in timings},
        rru={phase: meter.rru[phase] / photos for phase in timings},
        pace_requests={phase: meter.pace[phase] / photos for phase in timings},
        log_bytes={phase: logged.bytes[phase] / photos for phase in timings},
        raw_bytes=len(source),
        processed_bytes=processed_size,
        faces=faces,
        table_bytes=table_bytes / photos,
    )


def _receive(sqs: Any, queue_url: str) -> list[str]:
    """The S3 notifications waiting in the ingest queue (S3's test event dropped), deleted."""
    bodies = []
    for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if "s3:TestEvent" not in message["Body"]:
            bodies.append(message["Body"])
    return bodies


def _sqs_event(resources: Any, body: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "rh-1",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": resources.queue_arn,
                "awsRegion": resources.region,
            }
        ]
    }


# --- what happens under load: the event-day simulation, or the success path -----------------------


@dataclass(frozen=True)
class Load:
    """Per photo published: what the pipeline does beyond one unloaded pass."""

    source: str
    tag: str  # how the output's "from" column names it
    transitions: float
    executions: float
    answered_calls: float  # Rekognition bills an image analysed, not a call refused over the quota
    trigger_invocations: float
    invocations: dict[str, float]
    waiting_seconds: dict[str, float]  # per invocation: turns, Rekognition's answer, retry sleeps
    pace_requests: float
    sqs_receives: float
    express_billed_seconds: float
    longest_execution: float
    memory_mb: dict[str, int]


def simulated_load(photos: int) -> Load:
    """bench.event_day's paced run at 5 TPS: 20 000 photos over an hour by default."""
    policy = event_day.load_policy("paced")
    result = event_day.simulate(event_day.paced(policy, 5.0), 5.0, photos=photos, minutes=60.0)
    return Load(
        source=f"simulated: event day, {photos:,} photos in an hour at 5 TPS",
        tag="simulated",
        transitions=result.transitions,
        executions=result.executions,
        answered_calls=result.rekognition_calls - result.refused_calls,
        trigger_invocations=result.trigger_invocations,
        invocations=result.invocations,
        waiting_seconds=result.waiting_seconds,
        pace_requests=result.pace_requests,
        sqs_receives=result.sqs_receives,
        express_billed_seconds=result.express_billed_seconds,
        longest_execution=result.longest_execution,
        memory_mb=result.memory_mb,
    )


def unloaded(measured: Measurement) -> Load:
    """No queue and no quota: the ASL's success path once, each Rekognition call at its median."""
    policy = event_day.load_policy("paced")
    assumed = event_day.ASSUMED
    waits = {"detect_text": assumed.detect_text[0], "index_faces": assumed.index_faces[0]}
    waits = {name: wait + 2 * assumed.network[0] for name, wait in waits.items()}
    steps = ("preprocess", "detect_text", "index_faces", "fanout")
    execution = (
        measured.seconds["preprocess"]
        + max(measured.seconds[s] + waits[s] for s in waits)
        + measured.seconds["fanout"]
        + len(success_path(policy.definition)) * assumed.state_latency
    )
    return Load(
        source="unloaded: the ASL's success path, no queue, no retries",
        tag="unloaded",
        transitions=len(success_path(policy.definition)),
        executions=1.0,
        answered_calls=2.0,
        trigger_invocations=2.0,
        invocations={"on_upload": 2.0, **dict.fromkeys(steps, 1.0), "record_failure": 0.0},
        waiting_seconds=waits,
        pace_requests=sum(measured.pace_requests.values()),
        sqs_receives=2.0,
        express_billed_seconds=math.ceil(execution * 10) / 10,
        longest_execution=execution,
        memory_mb=policy.memory_mb,
    )


# --- the bill ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One component: how much of it a photo needs, and its cost per 1,000 photos per workflow."""

    component: str
    quantity: str
    source: str
    standard: float
    express: float

    @classmethod
    def both(cls, component: str, quantity: str, source: str, dollars: float) -> Line:
        return cls(component, quantity, source, dollars, dollars)


def bill(measured: Measurement, load: Load, *, api_files: int = API_FILES) -> list[Line]:
    """Cost lines per 1,000 published photos."""
    per_1000 = 1000.0
    requests = measured.requests

    lines = [
        Line.both(
            "Rekognition DetectText + IndexFaces",
            f"{load.answered_calls:.2f} images",
            load.tag,
            load.answered_calls * price("rekognition_image") * per_1000,
        )
    ]
    express_gb_s = load.express_billed_seconds * 64 / 1024
    lines.append(
        Line(
            "Step Functions",
            f"{load.transitions:.2f} transitions | {load.executions:.2f} exec, {express_gb_s:.4f} GB-s",
            f"ASL + {load.tag}",
            load.transitions * price("sfn_transition") * per_1000,
            (load.executions * price("sfn_express_request") + express_gb_s * price("sfn_express_gb_second"))
            * per_1000,
        )
    )
    # Lambda: each function's invocations under load, each billed its measured handler time plus
    # what it waits on Rekognition; the API's presigned-upload request is shared by `api_files` files.
    phases = {
        "preprocess": "preprocess",
        "detect_text": "detect_text",
        "index_faces": "index_faces",
        "fanout": "fanout",
    }
    gb_seconds: dict[str, float] = {}
    invocations = 0.0
    for function, phase in phases.items():
        calls = load.invocations.get(function, 0.0)
        seconds = measured.seconds[phase] + load.waiting_seconds.get(function, 0.0)
        gb_seconds[function] = calls * seconds * load.memory_mb[function] / 1024
        invocations += calls
    trigger = measured.seconds["on_upload"] + measured.seconds["on_upload_processed"]
    gb_seconds["on_upload"] = trigger * load.memory_mb["on_upload"] / 1024
    # RecordFailure runs only for failures (none when paced); its time is the simulation's assumption.
    failures = load.invocations.get("record_failure", 0.0)
    gb_seconds["record_failure"] = (
        failures * event_day.ASSUMED.record_failure * load.memory_mb["record_failure"] / 1024
    )
    invocations += failures
    invocations += load.trigger_invocations + 1 / api_files
    api_memory = chalice_config(STAGE, "api_handler").lambda_memory_size
    gb_seconds["api_handler"] = measured.seconds["api"] * api_memory / 1024
    lines.append(
        Line.both(
            "Lambda requests",
            f"{invocations:.2f} invocations",
            load.tag,
            invocations * price("lambda_request") * per_1000,
        )
    )
    total_gb_s = sum(gb_seconds.values())
    lines.append(
        Line.both(
            "Lambda duration (x86)",
            f"{total_gb_s:.3f} GB-s",
            f"measured + {load.tag} waits",
            total_gb_s * price("lambda_gb_second") * per_1000,
        )
    )
    for function, value in sorted(gb_seconds.items(), key=lambda item: -item[1]):
        lines.append(
            Line.both(f"  {function}", f"{value:.4f} GB-s", "", value * price("lambda_gb_second") * per_1000)
        )
    # S3: the photographer's POST, what the functions ask, and Rekognition reading the processed copy.
    s3 = Counter[str]()
    for by_operation in requests.values():
        for name, per_photo in by_operation.items():
            service, operation = name.split()
            if service == "s3":
                s3["put" if operation.startswith(S3_PUT_CLASS) else "get"] += per_photo
    app_put, app_get = s3["put"], s3["get"]
    lines.append(
        Line.both(
            "S3 PUT-class requests",
            f"{1 + app_put:.2f} (POST + {app_put:.0f} by the app)",
            "measured",
            (1 + app_put) * price("s3_put") * per_1000,
        )
    )
    lines.append(
        Line.both(
            "S3 GET-class requests",
            f"{app_get + load.answered_calls:.2f} ({app_get:.0f} by the app + Rekognition's reads)",
            f"measured + {load.tag}",
            (app_get + load.answered_calls) * price("s3_get") * per_1000,
        )
    )
    lines.append(
        Line.both(
            "S3 lifecycle transitions",
            "raw to Glacier IR, processed to I-T",
            "resources.yaml",
            (price("s3_transition_glacier_ir") + price("s3_transition_intelligent")) * per_1000,
        )
    )
    # DynamoDB: measured units, the pace items replaced by the simulated count (under load the
    # conditional claim fails and a second update follows).
    wru = sum(measured.wru.values()) - sum(measured.pace_requests.values()) + load.pace_requests
    rru = sum(measured.rru.values())
    lines.append(
        Line.both(
            "DynamoDB write request units",
            f"{wru:.1f} WRU ({load.pace_requests:.1f} pacing)",
            f"measured + {load.tag}",
            wru * price("dynamodb_wru") * per_1000,
        )
    )
    lines.append(
        Line.both(
            "DynamoDB read request units",
            f"{rru:.1f} RRU",
            "measured",
            rru * price("dynamodb_rru") * per_1000,
        )
    )
    for phase in ("api", "on_upload", "preprocess", "detect_text", "index_faces", "fanout"):
        phase_wru = measured.wru[phase] - measured.pace_requests.get(phase, 0.0)
        phase_rru = measured.rru[phase]
        dollars = (phase_wru * price("dynamodb_wru") + phase_rru * price("dynamodb_rru")) * per_1000
        lines.append(Line.both(f"  {phase}", f"{phase_wru:.1f} WRU, {phase_rru:.1f} RRU", "", dollars))
    lines.append(
        Line.both(
            "  pace reservations",
            f"{load.pace_requests:.1f} WRU",
            "",
            load.pace_requests * price("dynamodb_wru") * per_1000,
        )
    )
    # SQS: S3 sends a notification per object (raw and processed); the event source receives and
    # deletes each message.
    sqs = 2 + 2 * load.sqs_receives
    lines.append(
        Line.both(
            "SQS requests",
            f"{sqs:.2f}",
            load.tag,
            sqs * price("sqs_request") * per_1000,
        )
    )
    lines.append(
        Line.both(
            "API Gateway (presigned uploads)",
            f"1/{api_files} request",
            "services.uploads",
            price("apigw_request") / api_files * per_1000,
        )
    )
    log_bytes = sum(measured.log_bytes.values())
    lines.append(
        Line.both(
            "CloudWatch Logs ingestion",
            f"{log_bytes / 1024:.1f} KB",
            "measured",
            log_bytes / 1024**3 * price("logs_gb") * per_1000,
        )
    )
    return lines


def monthly(measured: Measurement) -> list[tuple[str, str, float]]:
    """What 1,000 published photos cost each month they are kept: (component, quantity, dollars)."""
    raw_gb, processed_gb = measured.raw_bytes / 1024**3, measured.processed_bytes / 1024**3
    table_gb = measured.table_bytes / 1024**3
    return [
        (
            "S3 raw, Standard (first 30 days)",
            f"{measured.raw_bytes / 1e6:.1f} MB",
            raw_gb * price("s3_standard_gb_month") * 1000,
        ),
        (
            "S3 raw, Glacier IR (after)",
            f"{measured.raw_bytes / 1e6:.1f} MB",
            raw_gb * price("s3_glacier_ir_gb_month") * 1000,
        ),
        (
            "S3 processed, Intelligent-Tiering",
            f"{measured.processed_bytes / 1e3:.0f} kB + monitoring",
            (processed_gb * price("s3_standard_gb_month") + price("s3_intelligent_monitoring")) * 1000,
        ),
        (
            "Rekognition face storage",
            f"{measured.faces} faces",
            measured.faces * price("rekognition_face") * 1000,
        ),
        (
            "DynamoDB storage + PITR",
            f"{measured.table_bytes / 1e3:.1f} kB",
            table_gb * (price("dynamodb_gb_month") + price("dynamodb_pitr_gb_month")) * 1000,
        ),
    ]


def express_safety(load: Load) -> list[str]:
    """Whether this ASL can run as an Express workflow, from its retry budgets and semantics."""
    definition = event_day.load_policy("paced").definition
    lines = []
    worst: list[tuple[float, str]] = []
    for name, state in all_states(definition):
        if state["Type"] != "Task":
            continue
        budgets = [(r.budget(), ", ".join(r.errors)) for r in retriers(state)]
        budget, errors = max(budgets)
        worst.append((budget, f"{name} ({errors.split(', ')[0]}...)"))
    worst.sort(reverse=True)
    over = [f"{what} {budget:.0f} s" for budget, what in worst if budget >= event_day.EXPRESS_LIMIT - 60]
    lines.append(
        "retry budgets at or near Express's 5-minute limit (waits alone, full jitter halves them on average): "
        + "; ".join(over)
    )
    throttle = max(
        (r for _, state in all_states(definition) if state["Type"] == "Task" for r in retriers(state)),
        key=Retrier.budget,
    )
    lines.append(
        f"a run whose Rekognition step is throttled to the end waits up to {throttle.budget():.0f} s before "
        f"the Catch: as Express it would be stopped at {event_day.EXPRESS_LIMIT:.0f} s (States.Timeout of the "
        "execution, which no Catch sees), so RecordFailure never runs and the upload stays PROCESSING"
    )
    lines.append(
        "Express does not refuse a second StartExecution with the same name (AWS: idempotency is not "
        "managed; at-least-once): Workflow.start's ExecutionAlreadyExists, which makes a redelivered "
        "notification start nothing new, never comes, so duplicates run (and pay) twice"
    )
    lines.append(
        f"under pacing the simulated runs are short (longest {load.longest_execution:.0f} s), so the price is "
        "real, but Express is not safe with this ASL as it is: it needs throttling budgets well under "
        "5 minutes end to end and an idempotency record for starts"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=5, help="photos to run through the functions in moto")
    parser.add_argument("--sim-photos", type=int, default=20_000, help="photos in the event-day simulation")
    parser.add_argument(
        "--no-sim", action="store_true", help="the ASL's success path instead of the simulation"
    )
    parser.add_argument("--faces", type=int, default=3, help="faces the fake Rekognition finds per photo")
    args = parser.parse_args()

    measured = measure(max(2, args.photos), args.faces)
    load = unloaded(measured) if args.no_sim else simulated_load(args.sim_photos)
    print(f"prices: {PRICES_AS_OF}")
    print(
        f"measured here: {measured.photos} photos of {measured.raw_bytes / 1e6:.1f} MB (24 MP) through the "
        "functions in moto; handler medians: "
        + ", ".join(f"{phase} {seconds * 1000:.0f} ms" for phase, seconds in sorted(measured.seconds.items()))
    )
    print(f"load: {load.source}")
    print()
    lines = bill(measured, load)
    width = max(len(line.component) for line in lines)
    quantity = max(len(line.quantity) for line in lines)
    source = max(len(line.source) for line in lines)
    head = f"{'per 1,000 photos published':<{width}}  {'per photo':<{quantity}}  {'from':<{source}}  {'Standard':>9}  {'Express':>9}"
    print(head)
    print("-" * len(head))
    for line in lines:
        print(
            f"{line.component:<{width}}  {line.quantity:<{quantity}}  {line.source:<{source}}  "
            f"${line.standard:>8.4f}  ${line.express:>8.4f}"
        )
    print("-" * len(head))
    totals = [sum(line.standard for line in lines if not line.component.startswith(" "))]
    totals.append(sum(line.express for line in lines if not line.component.startswith(" ")))
    print(f"{'total':<{width}}  {'':<{quantity}}  {'':<{source}}  ${totals[0]:>8.4f}  ${totals[1]:>8.4f}")
    rekognition = lines[0].standard
    sfn = next(line for line in lines if line.component == "Step Functions")
    print()
    print(
        f"reference (per 1,000): Rekognition ${REFERENCE['Rekognition']:.2f} + Step Functions "
        f"${REFERENCE['Step Functions']:.2f} = ${sum(REFERENCE.values()):.2f}; here Rekognition "
        f"${rekognition:.2f} + Step Functions ${sfn.standard:.3f} (Standard) / ${sfn.express:.4f} (Express); "
        f"everything else ${totals[0] - rekognition - sfn.standard:.3f}"
    )
    print()
    print(f"AWS requests per photo by step (measured, {measured.photos} photos; pacing unloaded):")
    for phase, by_operation in measured.requests.items():
        if by_operation:
            print(f"  {phase}: " + ", ".join(f"{name} {n:g}" for name, n in by_operation.items()))
    print()
    print("each month 1,000 published photos are kept:")
    for component, amount, dollars in monthly(measured):
        print(f"  {component:<36} {amount:<28} ${dollars:.4f}")
    print()
    print("Express with this ASL:")
    for line in express_safety(load):
        print(f"  {line}")


if __name__ == "__main__":
    main()
