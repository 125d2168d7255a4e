"""Event day at internet scale: a discrete-event simulation of N photos over an upload window.

Run from the repo root: `.venv/bin/python -m bench.event_day [--photos 20000] [--minutes 60]
[--tps 5 50] [--seed 1] [--curve after-race|uniform] [--baseline] [--old [REV]]`, and for what-ifs
`[--set NAME=VALUE] [--burst SECONDS] [--outage AT SECONDS]` (an environment variable on every
function; Rekognition's burst; a window in which Rekognition refuses every call).

Pure Python (bench/des.py, heapq); deterministic for a seed. What it reads rather than retypes, so it
breaks (or changes its answer) when they drift:

- statemachine.json, walked state by state (bench/asl.py): every Retry and Catch, Parallel, the
  Choice, the Fail states; transitions counted as Standard bills them.
- `.chalice/config.json`, stage prod, each function's environment and memory as Chalice deploys
  them (infra.stack.chalice_config), read into chalicelib.config.Settings / AppSettings:
  INGEST_MAX_CONCURRENCY, REKOGNITION_TPS / PACE_SHARE / CALL_SHARE; and the botocore attempts the
  pipeline's Rekognition client makes (chalicelib.clients.STEP_RETRIED).
- The app's own code for pacing: each SQS message goes through chalicelib.services.ingest.
  ingest_message, so run pacing is pacing.admit (a slot reserved, the execution started at once
  with its `not_before`, which the ASL's WaitForTurn state waits for), and each Rekognition step
  calls pacing.take_turn (MAX_TURN_WAIT), giving way (pacing.give_way) when Rekognition refuses
  its call (a refused turn, TurnRefused, took nothing and gives nothing back, as in pacing.turn).
  Their slots come from the real PhotoTable.reserve_slot over an in-memory
  DynamoDB that answers its UpdateItem shapes exactly (Decimal arithmetic, conditions), so the
  rounding of slots and the refusal of a turn too far away are the app's.

What is modelled (the assumptions, each a constant in `Assumptions` below):

- Uploads: N photos drawn independently from the upload curve (`after-race`: photographers start
  uploading when the race ends, the rate ramps up linearly for the first sixth of the window to a
  peak of 2N/window, then falls linearly to zero at its end; `uniform`: a constant rate). An S3
  ObjectCreated notification reaches the queue and the trigger ~0.3 s later.
- Trigger: the SQS event source, batch size 1, at most INGEST_MAX_CONCURRENCY concurrent
  invocations; each takes tens of milliseconds.
  Preprocess's processed copy also notifies the queue (the trigger skips it: one more invocation).
- Lambda: one container per concurrent invocation; a new container costs a 1-2 s cold start,
  containers stay warm for the whole event. Preprocess lognormal around 0.45 s (a 24 MP photo),
  Fanout ~0.1 s, DynamoDB calls ~6 ms, Step Functions ~20 ms per state entered.
- Rekognition: each operation (DetectText, IndexFaces) is a token bucket of rate T and burst
  capacity T (an assumption: AWS documents the TPS quota, not the shape of its limiter); a call
  arriving at an empty bucket is refused with ProvisionedThroughputExceededException, the error
  Rekognition uses for its quota. Answered calls take lognormal ~0.5 s (DetectText) and ~0.7 s
  (IndexFaces). The function's botocore client makes STEP_RETRIED attempts at a refused call in
  all (the old revision: 5, botocore's max_attempts=4 being retries) with botocore's standard backoff (uniform(0, min(2^i, 20)) s); its retry quota is not modelled.
- Step Functions, Lambda concurrency and DynamoDB are never the bottleneck at these rates (their
  quotas are far above what 20 000 photos an hour need) and are not throttled here.

Reported per scenario: the last photo's searchable time against the fluid bound (the earliest any
system could finish the same arrivals at R = T photos/s: max over k of a_k + (N - k + 1)/R, with one
DetectText and one IndexFaces per photo, each at quota T), upload-to-searchable p50/p95, fallbacks
(a Catch to a Pass state: the photo published without bibs or faces), failures (the run ended in
RecordFailure: recorded FAILED), transitions and Rekognition calls per photo.

Scenarios: `paced` is the code and prod config as they are, with REKOGNITION_TPS set to the quota
simulated; `baseline` (--baseline) the same ASL with REKOGNITION_TPS 0 (runs start at once, calls
never wait); `old` (--old) the definition and prod config of the revision before pacing, read with
git (skipped, with the reason, when git or the revision is not available).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import subprocess
import tempfile
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from bench.asl import (
    FAILED,
    SUCCEEDED,
    Execution,
    Interpreter,
    Outcome,
    TaskResult,
    all_states,
    fallback_states,
    retrier_for,
)
from bench.des import Process, Simulation
from chalicelib import clients
from chalicelib.adapters.table import PhotoTable
from chalicelib.config import AppSettings, Settings
from chalicelib.domain.errors import TurnRefused
from chalicelib.services import ingest, pacing
from infra.stack import PROJECT_DIR, STATE_MACHINE, TRIGGER_FUNCTION, chalice_config
from sandbox.stage import FUNCTION_PLACEHOLDERS

STAGE = "prod"
# The revision before run pacing (its merge commit): the "old" scenario's ASL and config.
OLD_REVISION = "6518d4a"
PIPELINE_FUNCTIONS = tuple(FUNCTION_PLACEHOLDERS.values())
FUNCTIONS = (TRIGGER_FUNCTION, *PIPELINE_FUNCTIONS)
REKOGNITION_STEPS = {"detect_text": "DetectText", "index_faces": "IndexFaces"}
# Simulated seconds are added to this wall-clock origin: reserve_slot rounds epoch seconds to the
# microsecond, and that rounding should act on numbers of the real size.
EPOCH = 1_800_000_000.0
TARGET = 1.05  # the last photo searchable within 5 % of the bound
EXPRESS_LIMIT = 300.0  # an Express execution's longest duration, seconds
ORG, EVENT, BUCKET = "bench", "city-marathon", "snaprace-prod-photos-123456789012"


@dataclass(frozen=True)
class Assumptions:
    """Timings the simulation cannot read from the code: seconds, (median, sigma) for lognormals."""

    notify: tuple[float, float] = (0.3, 0.5)  # S3 event -> SQS -> the event source invokes
    trigger_before_admit: tuple[float, float] = (0.04, 0.3)  # tag the raw object
    trigger_after_admit: tuple[float, float] = (0.03, 0.3)  # StartExecution
    start_latency: float = 0.05  # StartExecution -> the first state
    state_latency: float = 0.02  # Step Functions' own time per state entered
    invoke_latency: float = 0.015  # a Task state -> its Lambda handler
    cold_start: tuple[float, float] = (1.0, 2.0)  # uniform: a new container's init
    preprocess: tuple[float, float] = (0.45, 0.25)
    fanout: tuple[float, float] = (0.10, 0.3)
    record_failure: float = 0.05
    dynamodb: float = 0.006  # one DynamoDB request, round trip
    network: tuple[float, float] = (0.01, 0.5)  # Lambda -> Rekognition, one way
    detect_text: tuple[float, float] = (0.5, 0.3)  # Rekognition's own time for an answered call
    index_faces: tuple[float, float] = (0.7, 0.3)
    refused: float = 0.01  # Rekognition's time to refuse a call over the quota


ASSUMED = Assumptions()


# --- inputs: the ASL and the deployed environment ----------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What a scenario runs: a state machine definition and each function's deployed environment."""

    label: str
    definition: dict[str, Any]
    environments: dict[str, dict[str, str]]
    memory_mb: dict[str, int]
    notes: tuple[str, ...] = ()
    step_attempts: int = clients.STEP_RETRIED  # botocore attempts per DetectText / IndexFaces step

    def settings(self, function: str) -> Settings:
        return Settings.from_env(self.environments[function])

    def with_env(self, **values: str) -> Policy:
        """The same policy with environment variables set on every function."""
        return replace(self, environments={f: {**env, **values} for f, env in self.environments.items()})


def load_policy(label: str, project_dir: Path = PROJECT_DIR, definition_path: Path = STATE_MACHINE) -> Policy:
    """Read a definition and the prod stage's function environments as `chalice deploy` sets them."""
    definition = json.loads(definition_path.read_text())
    environments, memory = {}, {}
    for function in FUNCTIONS:
        config = chalice_config(STAGE, function, project_dir)
        environments[function] = dict(config.environment_variables)
        memory[function] = int(config.lambda_memory_size)
    return Policy(label, definition, environments, memory, tuple(config_drift(project_dir, environments)))


def config_drift(project_dir: Path, deployed: dict[str, dict[str, str]]) -> list[str]:
    """Variables .chalice/config.json sets for a function that the deployed function does not get."""
    raw = json.loads((project_dir / ".chalice" / "config.json").read_text())
    notes = []
    for function, settings in raw.get("lambda_functions", {}).items():
        for name, value in settings.get("environment_variables", {}).items():
            got = deployed.get(function, {}).get(name)
            if function in deployed and got != value:
                notes.append(
                    f"{function}: config.json sets {name}={value} under the top-level lambda_functions, "
                    f"but Chalice deploys {name}={got} (it merges environment_variables from the top "
                    "level, the stage and the stage's lambda_functions only); simulated as deployed"
                )
    return notes


def load_old_policy(revision: str) -> Policy | str:
    """The policy at `revision` read with git, or why it could not be read."""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / ".chalice").mkdir()
            for path in ("statemachine.json", ".chalice/config.json"):
                shown = subprocess.run(
                    ["git", "show", f"{revision}:{path}"],
                    cwd=PROJECT_DIR,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if shown.returncode != 0:
                    return f"git show {revision}:{path} failed: {shown.stderr.strip() or shown.returncode}"
                (root / path).write_text(shown.stdout)
            # Before pacing every client had Config(max_attempts=4): botocore's retries, 5 calls in all.
            return replace(load_policy(f"old {revision}", root, root / "statemachine.json"), step_attempts=5)
    except OSError as exc:
        return f"git is not available: {exc}"


# --- uploads and the bound ----------------------------------------------------------------------


def upload_times(photos: int, minutes: float, curve: str, rng: random.Random) -> list[float]:
    """Sorted upload times (s) of `photos` photos drawn independently from the upload curve."""
    window = minutes * 60.0
    peak_at = window / 6.0
    times = []
    for _ in range(photos):
        u = rng.random()
        if curve == "uniform":
            times.append(u * window)
        elif curve == "after-race":
            # Inverse CDF of a triangle on [0, window] with its mode at peak_at.
            if u < peak_at / window:
                times.append(math.sqrt(u * window * peak_at))
            else:
                times.append(window - math.sqrt((1.0 - u) * window * (window - peak_at)))
        else:
            raise ValueError(f"unknown upload curve {curve!r}")
    return sorted(times)


def fluid_bound(arrivals: list[float], rate: float) -> float:
    """The earliest a server of `rate` photos/s could finish photos arriving at sorted `arrivals`:
    max over k of a_k + (N - k + 1) / rate (k from 1). All at once: N / rate."""
    count = len(arrivals)
    return max(arrival + (count - index) / rate for index, arrival in enumerate(arrivals))


# --- the AWS services around the app's code -------------------------------------------------------


class TokenBucket:
    """A quota of `rate` calls/s with a burst of `capacity`: a call takes a token or is refused.
    During an `outage` (start, end) every call is refused and the bucket does not fill."""

    def __init__(self, rate: float, capacity: float, outage: tuple[float, float] | None = None) -> None:
        self.rate, self.capacity, self.outage = rate, capacity, outage
        self._tokens, self._last = capacity, 0.0

    def take(self, now: float) -> bool:
        if self.outage is not None and self.outage[0] <= now < self.outage[1]:
            self._last = now
            return False
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class PaceDynamoDB:
    """DynamoDB for the pace items only: the two UpdateItem requests PhotoTable.reserve_slot makes,
    answered as DynamoDB would (decimal numbers, the condition, UPDATED_OLD). Any other request
    means the code changed under this model, and fails loudly."""

    CLAIM = (
        "SET next_at = :next, #type = :type",
        "attribute_not_exists(next_at) OR next_at <= :now",
    )
    ADVANCE = "SET next_at = next_at + :interval"
    WITHIN = "next_at <= :limit"  # take_turn's reservations: none further than MAX_TURN_WAIT away

    def __init__(self) -> None:
        self.next_at: dict[str, Decimal] = {}
        self.requests = 0
        self.failed_conditions = 0

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.requests += 1
        pace = request["Key"]["SK"]["S"]
        values = request["ExpressionAttributeValues"]
        current = self.next_at.get(pace)
        shape = (request["UpdateExpression"], request.get("ConditionExpression"))
        if shape == self.CLAIM:
            if current is None or current <= Decimal(values[":now"]["N"]):
                self.next_at[pace] = Decimal(values[":next"]["N"])
                return {}
            self.failed_conditions += 1
            error = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "condition"}}
            raise ClientError(error, "UpdateItem")
        if shape in ((self.ADVANCE, None), (self.ADVANCE, self.WITHIN)) and current is not None:
            if shape[1] and current > Decimal(values[":limit"]["N"]):
                self.failed_conditions += 1
                error = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "condition"}}
                raise ClientError(error, "UpdateItem")
            self.next_at[pace] = current + Decimal(values[":interval"]["N"])
            return {"Attributes": {"next_at": {"N": str(current)}}}
        raise AssertionError(f"reserve_slot changed: this model does not know {shape}")


class Storage:
    """S3 for the trigger: tagging the raw object always works."""

    def ensure_tag(self, bucket: str, key: str, name: str, value: str, *, version: str | None = None) -> bool:
        return True


class Workflow:
    """Step Functions' StartExecution: a derived name starts once; the run begins a moment later."""

    def __init__(self, begin: Callable[[str, dict[str, Any]], None]) -> None:
        self._begin = begin
        self.names: set[str] = set()

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        if name in self.names:
            return False
        self.names.add(name)
        self._begin(name, payload)
        return True


@dataclass
class Function:
    """A Lambda function's containers and what it was billed for."""

    name: str
    memory_mb: int
    idle: int = 0
    invocations: int = 0
    cold_starts: int = 0
    billed_seconds: float = 0.0
    waiting_seconds: float = 0.0  # on Rekognition: turns, calls and botocore's retry sleeps


@dataclass
class PhotoRun:
    """One upload's story."""

    key: str
    uploaded: float
    started: float | None = None
    finished: float | None = None
    outcome: str | None = None
    fallback: bool = False
    fallback_steps: int = 0
    transitions: int = 0
    executions: int = 0


# --- the simulation -------------------------------------------------------------------------------


class EventDay:
    """One scenario: a policy, a Rekognition quota, the same uploads, a seed."""

    def __init__(
        self,
        policy: Policy,
        quota_tps: float,
        uploads: list[float],
        seed: int,
        *,
        burst: float = 1.0,
        outage: tuple[float, float] | None = None,
        assumed: Assumptions = ASSUMED,
    ) -> None:
        self.policy = policy
        self.quota = quota_tps
        self.assumed = assumed
        self.sim = Simulation()
        self.rng = random.Random(seed)
        self.settings = {function: policy.settings(function) for function in FUNCTIONS}
        trigger = self.settings[TRIGGER_FUNCTION]
        self.concurrency = AppSettings.from_env(policy.environments[TRIGGER_FUNCTION]).max_concurrency
        self.pace = PaceDynamoDB()
        self.table = PhotoTable(self.pace, trigger.table_name)
        self.workflow = Workflow(self._begin)
        self.storage = Storage()
        self.functions = {f: Function(f, policy.memory_mb[f]) for f in FUNCTIONS}
        # Burst capacity: `burst` seconds of quota (1.0: T calls), never under one call.
        capacity = max(1.0, burst * quota_tps)
        self.buckets = {op: TokenBucket(quota_tps, capacity, outage) for op in REKOGNITION_STEPS.values()}
        self.interpreter = Interpreter(
            self.sim,
            policy.definition,
            self._task,
            self.rng,
            state_latency=assumed.state_latency,
            epoch=EPOCH,
        )
        self.fallback_names = fallback_states(policy.definition)
        self.photos: dict[str, PhotoRun] = {}
        self.running = 0
        self.waiting: deque[str] = deque()
        self.messages = Counter[str]()
        self.calls = Counter[str]()
        self.refused_calls = Counter[str]()
        self.refused_turns = Counter[str]()
        self.turn_waits: list[float] = []
        self.execution_seconds: list[float] = []
        for n, uploaded in enumerate(uploads):
            key = f"{ORG}/{EVENT}/raw/IMG_{n:05d}.jpg"
            self.photos[key] = PhotoRun(key, uploaded)
            self.sim.schedule(
                uploaded + self._lognormal(assumed.notify), self._receive, _notification(key, n)
            )

    def run(self) -> Result:
        self.sim.run()
        return Result.of(self)

    # --- the trigger: SQS event source at most `concurrency` at a time ---------------------------

    def _receive(self, body: str) -> None:
        self.messages["received"] += 1
        if self.running < self.concurrency:
            self.running += 1
            self.sim.start(self._on_upload(body))
        else:
            self.waiting.append(body)

    def _on_upload(self, body: str) -> Process:
        function = self.functions[TRIGGER_FUNCTION]
        began = self.sim.now
        yield self._acquire(function) + self._lognormal(self.assumed.trigger_before_admit)
        ingest.ingest_message(
            body,
            storage=self.storage,
            workflow=self.workflow,
            table=self.table,
            settings=self.settings[TRIGGER_FUNCTION],
            now=EPOCH + self.sim.now,
        )
        yield self._lognormal(self.assumed.trigger_after_admit)
        self._release(function, began)
        self.running -= 1
        if self.waiting:
            self._receive_next()

    def _receive_next(self) -> None:
        self.running += 1
        self.sim.start(self._on_upload(self.waiting.popleft()))

    # --- Step Functions -----------------------------------------------------------------------------

    def _begin(self, name: str, payload: dict[str, Any]) -> None:
        photo = self.photos[payload["key"]]
        photo.executions += 1
        execution = Execution(name, doc=dict(payload))
        began = self.sim.now + self.assumed.start_latency
        if photo.started is None:
            photo.started = began

        def finished(outcome: Outcome) -> None:
            photo.finished, photo.outcome = self.sim.now, outcome.status
            photo.transitions += execution.transitions
            steps = sum(execution.entered[s] for s in self.fallback_names)
            photo.fallback, photo.fallback_steps = photo.fallback or steps > 0, photo.fallback_steps + steps
            self.execution_seconds.append(self.sim.now - began)

        def run() -> None:
            self.sim.start(self.interpreter.execute(execution)).then(finished)

        self.sim.schedule(self.assumed.start_latency, run)

    def _task(self, state: str, resource: str, execution: Execution) -> Process:
        placeholder = resource.removeprefix("${").removesuffix("}")
        if placeholder not in FUNCTION_PLACEHOLDERS:
            raise NotImplementedError(f"Task {state} calls {resource}: not one of the app's functions")
        function = self.functions[FUNCTION_PLACEHOLDERS[placeholder]]
        began = self.sim.now + self.assumed.invoke_latency
        # Consecutive delays are yielded as one: fewer events, the same times.
        lead = self.assumed.invoke_latency + self._acquire(function)
        if function.name in REKOGNITION_STEPS:
            result = yield from self._rekognition_step(function, REKOGNITION_STEPS[function.name], lead)
        elif function.name == "preprocess":
            yield lead + self._lognormal(self.assumed.preprocess)
            processed = f"{ORG}/{EVENT}/processed/{execution.name}.jpg"
            # The processed copy notifies the ingest queue too; the trigger skips it.
            self.sim.schedule(
                self._lognormal(self.assumed.notify), self._receive, _notification(processed, 0)
            )
            result = TaskResult(output={"photo_id": execution.name})
        elif function.name == "fanout":
            yield lead + self._lognormal(self.assumed.fanout)
            result = TaskResult()
        else:
            yield lead + self.assumed.record_failure
            result = TaskResult()
        self._release(function, began)
        return result

    def _rekognition_step(self, function: Function, operation: str, lead: float) -> Process:
        """pipeline.detect_text / index_faces: read the event, take a turn, call Rekognition."""
        assumed, settings = self.assumed, self.settings[function.name]
        yield lead + assumed.dynamodb  # the event's record (bib rules, faces enabled)
        slept: list[float] = []
        try:
            pacing.take_turn(
                operation,
                table=self.table,
                settings=settings,
                clock=lambda: EPOCH + self.sim.now,
                sleep=slept.append,
            )
        except TurnRefused:
            self.refused_turns[operation] += 1
            yield assumed.dynamodb * 2
            return TaskResult(TurnRefused.__name__)  # Lambda reports the class name
        waited = self.sim.now
        paced = settings.rekognition_tps * settings.rekognition_call_share > 0
        if paced:
            self.turn_waits.append(slept[0] if slept else 0.0)
        # The reservation's round trip, then take_turn sleeps what is left until the turn (it reads
        # the clock again after the round trip), then the request travels.
        until_call = max(assumed.dynamodb if paced else 0.0, sum(slept)) + self._lognormal(assumed.network)
        service = assumed.detect_text if operation == "DetectText" else assumed.index_faces
        attempts = max(1, self.policy.step_attempts)
        for attempt in range(attempts):
            yield until_call
            self.calls[operation] += 1
            if self.buckets[operation].take(self.sim.now):
                after = self._lognormal(service) + self._lognormal(assumed.network)
                function.waiting_seconds += self.sim.now + after - waited
                yield after + (assumed.dynamodb if operation == "IndexFaces" else 0.0)  # note the faces
                return TaskResult()
            self.refused_calls[operation] += 1
            until_call = assumed.refused + self._lognormal(assumed.network) * 2
            if attempt + 1 < attempts:
                until_call += self.rng.random() * min(2.0**attempt, 20.0)  # botocore standard, throttling
        self._give_way(settings)  # and on a call Rekognition refused
        yield assumed.refused + self._lognormal(assumed.network) + assumed.dynamodb
        function.waiting_seconds += self.sim.now - waited
        # The adapter raises the domain error of Rekognition's code; Lambda reports its class name.
        return TaskResult("ProvisionedThroughputExceededException")

    def _give_way(self, settings: Settings) -> None:
        pacing.give_way(table=self.table, settings=settings, now=EPOCH + self.sim.now)

    # --- Lambda containers ----------------------------------------------------------------------------

    def _acquire(self, function: Function) -> float:
        function.invocations += 1
        if function.idle:
            function.idle -= 1
            return 0.0
        function.cold_starts += 1
        return self.rng.uniform(*self.assumed.cold_start)

    def _release(self, function: Function, began: float) -> None:
        function.idle += 1
        function.billed_seconds += self.sim.now - began

    def _lognormal(self, median_sigma: tuple[float, float]) -> float:
        median, sigma = median_sigma
        return median * math.exp(self.rng.gauss(0.0, sigma))


def _notification(key: str, n: int) -> str:
    """An S3 ObjectCreated notification body for one object."""
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-05-03T10:00:00.000Z",
        "eventName": "ObjectCreated:Post",
        "s3": {"bucket": {"name": BUCKET}, "object": {"key": key, "size": 9_800_000, "eTag": f"etag-{n}"}},
    }
    return json.dumps({"Records": [record]})


# --- results ------------------------------------------------------------------------------------


@dataclass
class Result:
    """What one scenario measured; per-photo figures are means over every photo."""

    label: str
    quota: float
    photos: int
    last_upload: float
    bound: float
    last_searchable: float | None
    p50: float | None
    p95: float | None
    searchable: int
    fallbacks: int
    fallback_steps: int
    failures: int
    unfinished: int
    transitions: float
    executions: float
    rekognition_calls: float
    refused_calls: float
    refused_turns: float
    trigger_invocations: float
    invocations: dict[str, float]
    billed_seconds: dict[str, float]  # per invocation
    waiting_seconds: dict[str, float]  # per invocation, on Rekognition
    memory_mb: dict[str, int]
    cold_starts: int
    turn_wait: float
    pace_requests: float
    pace_failed_conditions: float
    sqs_receives: float
    longest_execution: float
    over_express_limit: int
    express_billed_seconds: float  # per photo, each execution rounded up to 100 ms
    notes: tuple[str, ...] = field(default=())

    @property
    def ratio(self) -> float | None:
        return None if self.last_searchable is None else self.last_searchable / self.bound

    @classmethod
    def of(cls, day: EventDay) -> Result:
        photos = list(day.photos.values())
        count = len(photos)
        done = [p for p in photos if p.outcome == SUCCEEDED]
        latencies = sorted(p.finished - p.uploaded for p in done if p.finished is not None)
        quantiles = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) > 1 else []
        functions = day.functions.values()
        return cls(
            label=day.policy.label,
            quota=day.quota,
            photos=count,
            last_upload=max(p.uploaded for p in photos),
            bound=fluid_bound(sorted(p.uploaded for p in photos), day.quota),
            last_searchable=max((p.finished for p in done if p.finished is not None), default=None),
            p50=quantiles[49] if quantiles else None,
            p95=quantiles[94] if quantiles else None,
            searchable=len(done),
            fallbacks=sum(p.fallback for p in done),
            fallback_steps=sum(p.fallback_steps for p in done),
            failures=sum(p.outcome == FAILED for p in photos),
            unfinished=sum(p.outcome is None for p in photos),
            transitions=sum(p.transitions for p in photos) / count,
            executions=sum(p.executions for p in photos) / count,
            rekognition_calls=sum(day.calls.values()) / count,
            refused_calls=sum(day.refused_calls.values()) / count,
            refused_turns=sum(day.refused_turns.values()) / count,
            trigger_invocations=day.functions[TRIGGER_FUNCTION].invocations / count,
            invocations={f.name: f.invocations / count for f in functions},
            billed_seconds={f.name: f.billed_seconds / max(1, f.invocations) for f in functions},
            waiting_seconds={f.name: f.waiting_seconds / max(1, f.invocations) for f in functions},
            memory_mb=dict(day.policy.memory_mb),
            cold_starts=sum(f.cold_starts for f in functions),
            turn_wait=statistics.fmean(day.turn_waits) if day.turn_waits else 0.0,
            pace_requests=day.pace.requests / count,
            pace_failed_conditions=day.pace.failed_conditions / count,
            sqs_receives=day.messages["received"] / count,
            longest_execution=max(day.execution_seconds, default=0.0),
            over_express_limit=sum(s > EXPRESS_LIMIT for s in day.execution_seconds),
            express_billed_seconds=sum(math.ceil(s * 10 - 1e-9) / 10 for s in day.execution_seconds) / count,
            notes=day.policy.notes,
        )


def simulate(
    policy: Policy,
    quota_tps: float,
    *,
    photos: int,
    minutes: float,
    curve: str = "after-race",
    seed: int = 1,
    burst: float = 1.0,
    outage: tuple[float, float] | None = None,
) -> Result:
    """Run one scenario; the uploads depend only on the seed, so scenarios see the same ones."""
    uploads = upload_times(photos, minutes, curve, random.Random(seed))
    return EventDay(policy, quota_tps, uploads, seed + 1, burst=burst, outage=outage).run()


def paced(policy: Policy, quota_tps: float) -> Policy:
    """The policy with the app told its quota, as an operator sets REKOGNITION_TPS."""
    return replace(policy.with_env(REKOGNITION_TPS=f"{quota_tps:g}"), label="paced")


def unpaced(policy: Policy) -> Policy:
    """The same ASL and config without pacing: runs start at once, calls never wait."""
    return replace(policy.with_env(REKOGNITION_TPS="0"), label="baseline")


# --- output -------------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} s"


def _last(result: Result) -> str:
    # A photo that never became searchable makes "the last photo searchable" never.
    return "never" if result.searchable < result.photos else _seconds(result.last_searchable)


def _share(count: int, total: int) -> str:
    return f"{count:,} ({100 * count / total:.1f}%)"


ROWS: list[tuple[str, Callable[[Result], str]]] = [
    ("last upload", lambda r: _seconds(r.last_upload)),
    ("fluid bound (R = T)", lambda r: _seconds(r.bound)),
    ("last photo searchable", _last),
    (
        "  / bound (target <= 1.05)",
        lambda r: "-" if r.ratio is None or _last(r) == "never" else f"{r.ratio:.3f}",
    ),
    ("upload -> searchable p50", lambda r: "-" if r.p50 is None else f"{r.p50:,.1f} s"),
    ("upload -> searchable p95", lambda r: "-" if r.p95 is None else f"{r.p95:,.1f} s"),
    ("searchable", lambda r: _share(r.searchable, r.photos)),
    ("fallbacks (no bibs/faces)", lambda r: _share(r.fallbacks, r.photos)),
    ("  fallback steps / Rekognition steps", lambda r: f"{100 * r.fallback_steps / (2 * r.photos):.1f}%"),
    ("failures (recorded FAILED)", lambda r: _share(r.failures, r.photos)),
    ("never finished", lambda r: f"{r.unfinished:,}"),
    ("state transitions / photo", lambda r: f"{r.transitions:.2f}"),
    (
        "Rekognition calls / photo (/ op)",
        lambda r: f"{r.rekognition_calls:.2f} ({r.rekognition_calls / 2:.2f})",
    ),
    ("  refused by the quota / photo", lambda r: f"{r.refused_calls:.2f}"),
    ("  turns refused / photo", lambda r: f"{r.refused_turns:.2f}"),
    ("mean wait for a turn", lambda r: f"{r.turn_wait:.3f} s"),
    ("trigger invocations / photo", lambda r: f"{r.trigger_invocations:.2f}"),
    ("pace UpdateItems / photo", lambda r: f"{r.pace_requests:.2f}"),
    ("Lambda cold starts", lambda r: f"{r.cold_starts:,}"),
    ("longest execution", lambda r: f"{r.longest_execution:,.0f} s"),
    ("  executions over 5 min", lambda r: f"{r.over_express_limit:,}"),
]


def print_table(results: list[Result]) -> None:
    heads = [f"{r.quota:g} TPS {r.label}" for r in results]
    cells = [[fmt(r) for r in results] for _, fmt in ROWS]
    width = max(len(label) for label, _ in ROWS)
    columns = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]
    print(" " * width + "".join(f"  {h:>{w}}" for h, w in zip(heads, columns, strict=True)))
    for (label, _), row in zip(ROWS, cells, strict=True):
        print(f"{label:<{width}}" + "".join(f"  {c:>{w}}" for c, w in zip(row, columns, strict=True)))


def describe_inputs(policy: Policy, args: argparse.Namespace) -> None:
    """Print what was read from the code and config, so a reader sees what the figures rest on."""
    trigger, detect = policy.settings(TRIGGER_FUNCTION), policy.settings("detect_text")
    concurrency = AppSettings.from_env(policy.environments[TRIGGER_FUNCTION]).max_concurrency
    throttling = retrier_for(dict(all_states(policy.definition))["DetectText"], "ThrottlingException")
    if throttling is None:
        raise LookupError("DetectText no longer retries ThrottlingException")
    print(
        f"event day: {args.photos:,} photos over {args.minutes:g} min ({args.curve} curve), seed {args.seed}; "
        f"Rekognition quota T per operation, token bucket of burst {args.burst:g} x T"
    )
    print(
        f"read: prod INGEST_MAX_CONCURRENCY={concurrency}, REKOGNITION_TPS={trigger.rekognition_tps:g} "
        f"(each scenario sets it to T), PACE_SHARE={trigger.rekognition_pace_share}, "
        f"CALL_SHARE={detect.rekognition_call_share}, botocore attempts per Rekognition step="
        f"{policy.step_attempts}; MAX_TURN_WAIT={pacing.MAX_TURN_WAIT:g}"
    )
    print(
        f"read: DetectText throttling retry {throttling.interval:g} s x{throttling.backoff:g}, "
        f"cap {throttling.max_delay:g} s, {throttling.max_attempts} retries, "
        f"{'full' if throttling.full_jitter else 'no'} jitter: at most {throttling.budget():.0f} s of waits "
        f"(~{throttling.budget() / 2:.0f} s on average); fallback states {sorted(fallback_states(policy.definition))}"
    )
    for note in policy.notes:
        print(f"config drift: {note}")
    print(
        "counted: transitions as Standard bills them (each state entered, a Parallel's branches' states "
        "included, and each retry); a fallback is a Catch into a Pass state (published without bibs or "
        "faces), a failure a run recorded FAILED; Rekognition calls include those refused"
    )


def verdicts(results: list[Result], policies: dict[float, Policy], uploads: list[float]) -> None:
    """Say, for each paced scenario, whether it meets the target; when the run pace is what keeps it
    from the bound, which REKOGNITION_PACE_SHARE would not."""
    for result in results:
        if result.label != "paced":
            continue
        ratio = result.ratio
        problems = []
        if result.fallbacks or result.failures or result.unfinished:
            problems.append(
                f"{result.fallbacks} fallbacks, {result.failures} failures, {result.unfinished} unfinished"
            )
        if ratio is None or ratio > TARGET:
            problems.append(f"last searchable at {ratio or 0:.3f} x the bound (> {TARGET})")
        verdict = "meets the target" if not problems else "MISSES the target: " + "; ".join(problems)
        print(f"{result.quota:g} TPS paced: {verdict}")
        policy = policies[result.quota]
        if (
            ratio is not None
            and ratio > TARGET
            and pace_limits(policy, result.quota, uploads)[2] > TARGET - 0.005
        ):
            share = share_for_target(policy, result.quota, uploads)
            now = policy.settings(TRIGGER_FUNCTION).rekognition_pace_share
            print(
                f"  the run pace is the limit: REKOGNITION_PACE_SHARE {now:g} cannot finish within {TARGET}; "
                + (
                    f"{share:g} would (try --set REKOGNITION_PACE_SHARE={share:g})"
                    if share
                    else "no share below REKOGNITION_CALL_SHARE would"
                )
            )


def pace_limits(policy: Policy, quota_tps: float, uploads: list[float]) -> tuple[float, float, float]:
    """(run interval, call interval) as reserve_slot keeps them (it rounds to the microsecond), and
    the earliest finish the run pace alone allows for these uploads, as a multiple of the bound."""
    run = policy.settings(TRIGGER_FUNCTION)
    call = policy.settings("detect_text")
    run_interval = round(1.0 / (run.rekognition_tps * run.rekognition_pace_share), 6)
    call_interval = round(1.0 / (call.rekognition_tps * call.rekognition_call_share), 6)
    floor = fluid_bound(uploads, 1.0 / run_interval) / fluid_bound(uploads, quota_tps)
    return run_interval, call_interval, floor


def share_for_target(policy: Policy, quota_tps: float, uploads: list[float]) -> float | None:
    """The smallest REKOGNITION_PACE_SHARE (in steps of 0.005, below the call share) whose run pace
    leaves half a percent of the target for the pipeline's own latency, or None."""
    call_share = policy.settings("detect_text").rekognition_call_share
    share = policy.settings(TRIGGER_FUNCTION).rekognition_pace_share
    while share < call_share:
        trial = policy.with_env(REKOGNITION_PACE_SHARE=f"{share:g}")
        if pace_limits(trial, quota_tps, uploads)[2] <= TARGET - 0.005:
            return share
        share = round(share + 0.005, 3)
    return None


def describe_pace(policy: Policy, quota_tps: float, uploads: list[float]) -> str:
    run_interval, call_interval, floor = pace_limits(policy, quota_tps, uploads)
    return (
        f"{quota_tps:g} TPS: runs start every {run_interval * 1000:.3f} ms ({1 / run_interval / quota_tps:.4f} T), "
        f"calls every {call_interval * 1000:.3f} ms ({1 / call_interval / quota_tps:.4f} T); at the run pace these uploads cannot finish before {floor:.3f} x the bound"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20_000)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--tps", type=float, nargs="+", default=[5.0, 50.0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--curve", choices=("after-race", "uniform"), default="after-race")
    parser.add_argument(
        "--burst",
        type=float,
        default=1.0,
        help="Rekognition's burst capacity, in seconds of quota (default 1)",
    )
    parser.add_argument(
        "--outage",
        type=float,
        nargs=2,
        metavar=("AT", "SECONDS"),
        help="what-if: Rekognition refuses every call for SECONDS from AT seconds into the event",
    )
    parser.add_argument("--baseline", action="store_true", help="also run without pacing (REKOGNITION_TPS 0)")
    parser.add_argument(
        "--old",
        nargs="?",
        const=OLD_REVISION,
        default=None,
        metavar="REV",
        help="also run a revision's policy",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="what-if: set an environment variable on every function (not the app's config)",
    )
    args = parser.parse_args()

    policy = load_policy("paced")
    overrides = dict(item.split("=", 1) for item in args.set)
    describe_inputs(policy.with_env(**overrides), args)
    if overrides:
        print(f"what-if overrides (win over each scenario's own settings): {overrides}")
    old = load_old_policy(args.old) if args.old else None
    if isinstance(old, str):
        print(f"old policy: skipped ({old})")
        old = None

    results, policies = [], {}
    for tps in args.tps:
        policies[tps] = paced(policy, tps).with_env(**overrides)
        scenarios = [policies[tps]]
        if args.baseline:
            scenarios.append(unpaced(policy).with_env(**overrides))
        if old is not None:
            scenarios.append(replace(old, label="old"))
        for scenario in scenarios:
            results.append(
                simulate(
                    scenario,
                    tps,
                    photos=args.photos,
                    minutes=args.minutes,
                    curve=args.curve,
                    seed=args.seed,
                    burst=args.burst,
                    outage=(args.outage[0], sum(args.outage)) if args.outage else None,
                )
            )
    print()
    print_table(results)
    print()
    uploads = upload_times(args.photos, args.minutes, args.curve, random.Random(args.seed))
    for tps in args.tps:
        print(describe_pace(policies[tps], tps, uploads))
    verdicts(results, policies, uploads)


if __name__ == "__main__":
    main()
