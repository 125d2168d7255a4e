"""Pacing: runs start at the Rekognition quota's pace; a run whose slot is later waits in the queue."""

from __future__ import annotations

import json
from dataclasses import replace

import boto3
import pytest

import app as snaprace
from chalicelib import clients
from chalicelib.adapters.queue import IngestQueue
from chalicelib.domain.errors import SlotTooFar, ThrottlingException
from chalicelib.services import pacing
from sandbox.stage import PROJECT_DIR
from tests.support.aws import STAGE
from tests.support.workflow import s3_notification, sqs_event, upload


class Later:
    """An IngestQueue that records what it was asked to send later (SQS hides delayed messages)."""

    def __init__(self):
        self.sent = []

    def send_later(self, body, *, delay_seconds):
        self.sent.append((body, delay_seconds))


class Recording:
    """A Workflow that records what it was asked to start."""

    def __init__(self):
        self.started = []

    def start(self, name, payload):
        fresh = name not in [n for n, _ in self.started]
        self.started.append((name, payload))
        return fresh


@pytest.fixture
def queue():
    return Later()


def paced(tps, share=1.0):
    from chalicelib.config import Settings
    from sandbox.stage import stage_environment

    return replace(
        Settings.from_env(stage_environment(STAGE)), rekognition_tps=tps, rekognition_pace_share=share
    )


def test_the_queue_sends_a_run_with_its_delay(resources):
    queue = IngestQueue(boto3.client("sqs"), paced(1).ingest_queue_name)
    queue.send_later({"x": 1}, delay_seconds=5000)  # capped at SQS's 900
    sqs = boto3.client("sqs")
    visible = sqs.receive_message(QueueUrl=resources.queue_url, MaxNumberOfMessages=10).get("Messages") or []
    assert {"x": 1} not in [json.loads(m["Body"]) for m in visible]  # still delayed (S3's test event is not)


def test_slots_are_spaced_by_the_interval_and_start_now_after_a_pause(table):
    slots = [table.reserve_slot(1000.0, 0.5) for _ in range(4)]
    assert slots == [1000.0, 1000.5, 1001.0, 1001.5]
    assert table.reserve_slot(1010.0, 0.5) == 1010.0  # idle since: no debt carried over
    assert table.reserve_slot(1010.0, 0.5) == 1010.5


def test_without_a_quota_every_run_starts_at_once(table, queue):
    workflow = Recording()
    for n in range(5):
        outcome = pacing.admit(
            pacing.Run(f"run-{n}", {"n": n}),
            table=table,
            workflow=workflow,
            queue=queue,
            settings=paced(0),
            now=0.0,
        )
        assert outcome == pacing.STARTED
    assert len(workflow.started) == 5 and queue.sent == []


def test_runs_beyond_the_quota_wait_in_the_queue_for_their_slot(table, queue):
    workflow = Recording()
    outcomes = [
        pacing.admit(
            pacing.Run(f"run-{n}", {"n": n}),
            table=table,
            workflow=workflow,
            queue=queue,
            settings=paced(2),
            now=100.0,
        )
        for n in range(6)
    ]
    # 2 a second: slots at 100.0, 100.5, 101.0 are within a second and start now; the rest wait.
    assert outcomes == [pacing.STARTED] * 3 + [pacing.DEFERRED] * 3
    assert [body[pacing.RUN_MESSAGE]["not_before"] for body, _ in queue.sent] == [101.5, 102.0, 102.5]
    assert [body[pacing.RUN_MESSAGE]["input"] for body, _ in queue.sent] == [{"n": 3}, {"n": 4}, {"n": 5}]
    assert [delay for _, delay in queue.sent] == [1, 1, 2]  # delivered a second before the slot


def test_a_deferred_run_starts_when_due_and_waits_again_when_not(table, queue):
    workflow = Recording()
    run = pacing.Run("late", {"key": "acme/e1/raw/a.jpg"}, not_before=500.0)
    settings = paced(2)
    assert (
        pacing.admit(run, table=table, workflow=workflow, queue=queue, settings=settings, now=100.0)
        == pacing.DEFERRED
    )
    ((body, delay),) = queue.sent
    assert body[pacing.RUN_MESSAGE]["not_before"] == 500.0 and delay == 399  # its slot, not a new one
    assert table.reserve_slot(100.0, 0.5) == 100.0  # nothing was reserved for it
    assert (
        pacing.admit(run, table=table, workflow=workflow, queue=queue, settings=settings, now=499.5)
        == pacing.STARTED
    )
    assert workflow.started == [("late", {"key": "acme/e1/raw/a.jpg"})]


def test_the_trigger_paces_uploads_and_starts_deferred_runs_when_they_come_back(resources, monkeypatch):
    from chalice.test import Client

    settings, queue = paced(1), Later()
    monkeypatch.setattr(clients, "settings", lambda: settings)
    monkeypatch.setattr(clients, "queue", lambda: queue)
    client = Client(snaprace.app, stage_name=STAGE, project_dir=str(PROJECT_DIR))
    for n in range(3):
        key = f"acme/e1/raw/IMG_{n}.jpg"
        upload(resources, key, b"x")
        body = s3_notification(resources.bucket, key, etag=f"etag-{n}")
        client.lambda_.invoke("on_upload", sqs_event(resources, body, f"m-{n}"))
    sfn = boto3.client("stepfunctions")
    started = sfn.list_executions(stateMachineArn=resources.state_machine_arn)["executions"]
    assert len(started) == 2  # the first slot is now, the second within a second
    ((waiting, _),) = queue.sent
    assert waiting[pacing.RUN_MESSAGE]["input"]["key"] == "acme/e1/raw/IMG_2.jpg"
    # Back from the queue once its slot has come (here: a slot already past), it starts under the
    # name the upload derived.
    due = {pacing.RUN_MESSAGE: {**waiting[pacing.RUN_MESSAGE], "not_before": 0.0}}
    client.lambda_.invoke("on_upload", sqs_event(resources, json.dumps(due), "m-late"))
    names = {
        e["name"] for e in sfn.list_executions(stateMachineArn=resources.state_machine_arn)["executions"]
    }
    assert waiting[pacing.RUN_MESSAGE]["name"] in names and len(names) == 3


class Clock:
    """A clock the test moves; sleeping moves it."""

    def __init__(self, now):
        self.now = now
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_each_call_waits_for_its_turn_of_its_operation(table):
    clock, settings = Clock(100.0), replace(paced(2), rekognition_call_share=1.0)
    waits = [
        pacing.take_turn("DetectText", table=table, settings=settings, clock=clock, sleep=clock.sleep)
        for _ in range(3)
    ]
    assert waits == [0.0, 0.5, 0.5]  # calls 0.5 s apart at 2 a second
    assert (
        pacing.take_turn("IndexFaces", table=table, settings=settings, clock=clock, sleep=clock.sleep) == 0.0
    )


def test_a_turn_too_far_away_is_refused_as_throttling_without_a_call(table):
    clock, settings = Clock(100.0), replace(paced(1), rekognition_call_share=1.0)
    for _ in range(int(pacing.MAX_TURN_WAIT) + 1):
        table.reserve_slot(100.0, 1.0, pace="DetectText")  # others took the next seconds
    with pytest.raises(ThrottlingException, match=r"DetectText's next slot is over 5\.0 s away"):
        pacing.take_turn("DetectText", table=table, settings=settings, clock=clock, sleep=clock.sleep)
    assert clock.slept == []


def test_refused_turns_take_no_slot_so_the_pace_recovers(table):
    # Rekognition refused calls for a while: the Step Functions retries of many runs arrive together.
    clock, settings = Clock(100.0), replace(paced(1), rekognition_call_share=1.0)
    for _ in range(int(pacing.MAX_TURN_WAIT) + 1):
        table.reserve_slot(100.0, 1.0, pace="DetectText")  # slots 100 to 105 are taken
    for _ in range(50):
        with pytest.raises(ThrottlingException):
            pacing.take_turn("DetectText", table=table, settings=settings, clock=clock, sleep=clock.sleep)
    clock.now = 101.0  # a second later the next turn (106) is within reach again
    assert (
        pacing.take_turn("DetectText", table=table, settings=settings, clock=clock, sleep=clock.sleep) == 5.0
    )
    assert table.reserve_slot(clock.now, 1.0, pace="DetectText") == 107.0  # 50 refusals took nothing


def test_a_bounded_reservation_is_refused_by_name(table):
    table.reserve_slot(100.0, 1.0)
    assert table.reserve_slot(100.0, 1.0, max_wait=1.0) == 101.0
    with pytest.raises(SlotTooFar):
        table.reserve_slot(100.0, 1.0, max_wait=1.0)
    assert table.reserve_slot(100.0, 1.0) == 102.0


def test_without_a_quota_calls_never_wait(table):
    clock = Clock(100.0)
    assert (
        pacing.take_turn("DetectText", table=table, settings=paced(0), clock=clock, sleep=clock.sleep) == 0.0
    )
