"""Pacing: runs take start slots at the Rekognition quota's pace and wait for them in Step Functions."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import pytest

import app as snaprace
from chalicelib import clients
from chalicelib.domain.errors import (
    ProvisionedThroughputExceededException,
    SlotTooFar,
    ThrottlingException,
    TurnRefused,
)
from chalicelib.services import pacing
from sandbox.stage import PROJECT_DIR
from tests.support.aws import STAGE
from tests.support.workflow import s3_notification, sqs_event, upload


class Recording:
    """A Workflow that records what it was asked to start."""

    def __init__(self):
        self.started = []

    def start(self, name, payload):
        fresh = name not in [n for n, _ in self.started]
        self.started.append((name, payload))
        return fresh


def paced(tps, share=1.0):
    from chalicelib.config import Settings
    from sandbox.stage import stage_environment

    return replace(
        Settings.from_env(stage_environment(STAGE)), rekognition_tps=tps, rekognition_pace_share=share
    )


def test_slots_are_spaced_by_the_interval_and_start_now_after_a_pause(table):
    slots = [table.reserve_slot(1000.0, 0.5) for _ in range(4)]
    assert slots == [1000.0, 1000.5, 1001.0, 1001.5]
    assert table.reserve_slot(1010.0, 0.5) == 1010.0  # idle since: no debt carried over
    assert table.reserve_slot(1010.0, 0.5) == 1010.5


def test_without_a_quota_every_run_starts_now(table):
    workflow = Recording()
    for n in range(5):
        run = pacing.Run(f"run-{n}", {"n": n})
        assert (
            pacing.admit(run, table=table, workflow=workflow, settings=paced(0), now=100.0) == pacing.STARTED
        )
    assert [payload for _, payload in workflow.started] == [
        {"n": n, "not_before": "1970-01-01T00:01:40Z"} for n in range(5)
    ]


def test_each_run_starts_at_once_and_waits_for_its_own_slot(table):
    workflow = Recording()
    outcomes = [
        pacing.admit(
            pacing.Run(f"run-{n}", {"n": n}), table=table, workflow=workflow, settings=paced(2), now=100.2
        )
        for n in range(5)
    ]
    assert outcomes == [pacing.STARTED] * 5
    # 2 a second: slots 100.2, 100.7, 101.2, 101.7, 102.2, kept to the second (rounded down).
    assert [payload["not_before"][-3:] for _, payload in workflow.started] == [
        "40Z",
        "40Z",
        "41Z",
        "41Z",
        "42Z",
    ]
    assert [payload["n"] for _, payload in workflow.started] == list(range(5))


def test_a_run_that_already_ran_is_not_started_twice(table):
    workflow = Recording()
    run = pacing.Run("same", {"key": "acme/e1/raw/a.jpg"})
    assert pacing.admit(run, table=table, workflow=workflow, settings=paced(2), now=100.0) == pacing.STARTED
    assert (
        pacing.admit(run, table=table, workflow=workflow, settings=paced(2), now=100.0)
        == pacing.ALREADY_STARTED
    )


def test_slot_timestamps_are_what_a_wait_state_reads():
    assert pacing.slot_timestamp(1_800_000_000.999) == "2027-01-15T08:00:00Z"
    parsed = datetime.strptime(pacing.slot_timestamp(time.time()), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(parsed.timestamp() - time.time()) < 2


def test_the_trigger_starts_every_upload_with_its_slot(resources, monkeypatch):
    from chalice.test import Client

    settings = paced(1)
    monkeypatch.setattr(clients, "settings", lambda: settings)
    client = Client(snaprace.app, stage_name=STAGE, project_dir=str(PROJECT_DIR))
    before = time.time()
    for n in range(3):
        key = f"acme/e1/raw/IMG_{n}.jpg"
        upload(resources, key, b"x")
        body = s3_notification(resources.bucket, key, etag=f"etag-{n}")
        client.lambda_.invoke("on_upload", sqs_event(resources, body, f"m-{n}"))
    sfn = boto3.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=resources.state_machine_arn)["executions"]
    assert len(executions) == 3  # all started now; the state machine holds them
    slots = sorted(
        datetime.strptime(
            json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])["not_before"],
            "%Y-%m-%dT%H:%M:%SZ",
        )
        .replace(tzinfo=UTC)
        .timestamp()
        for e in executions
    )
    # One a second from now: kept to the second, so the first is at most a second before now.
    assert before - 1 <= slots[0] <= time.time()
    assert [b - a for a, b in itertools.pairwise(slots)] == [1.0, 1.0]


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


def test_a_turn_is_kept_to_the_clock_after_the_reservation_however_long_it_took(table):
    # A busy table answers late: the call must still be made at its turn, not the answer's delay later.
    clock, settings = Clock(100.0), replace(paced(2), rekognition_call_share=1.0)

    class SlowTable:
        def reserve_slot(self, now, interval, **options):
            slot = table.reserve_slot(now, interval, **options)
            clock.now += 0.2
            return slot

    made_at = []
    for _ in range(3):
        pacing.take_turn("DetectText", table=SlowTable(), settings=settings, clock=clock, sleep=clock.sleep)
        made_at.append(clock.now)
    assert made_at == [100.2, 100.5, 101.0]  # turns 100, 100.5, 101: the first was late by the answer
    assert clock.slept == [0.1, 0.3]


def test_a_turn_too_far_away_is_refused_as_throttling_without_a_call(table):
    clock, settings = Clock(100.0), replace(paced(1), rekognition_call_share=1.0)
    for _ in range(int(pacing.MAX_TURN_WAIT) + 1):
        table.reserve_slot(100.0, 1.0, pace="DetectText")  # others took the next seconds
    with pytest.raises(TurnRefused, match=r"DetectText's next slot is over 5\.0 s away"):
        pacing.take_turn("DetectText", table=table, settings=settings, clock=clock, sleep=clock.sleep)
    assert clock.slept == []


def test_refused_turns_take_no_slot_so_the_pace_recovers(table):
    # Rekognition refused calls for a while: the Step Functions retries of many runs arrive together.
    clock, settings = Clock(100.0), replace(paced(1), rekognition_call_share=1.0)
    for _ in range(int(pacing.MAX_TURN_WAIT) + 1):
        table.reserve_slot(100.0, 1.0, pace="DetectText")  # slots 100 to 105 are taken
    for _ in range(50):
        with pytest.raises(TurnRefused):
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


def _next_run_slot(table, settings, now):
    workflow = Recording()
    pacing.admit(pacing.Run(f"probe-{now}", {}), table=table, workflow=workflow, settings=settings, now=now)
    return workflow.started[0][1]["not_before"]


@pytest.mark.parametrize(
    "refusal",
    [ThrottlingException("Rate exceeded"), ProvisionedThroughputExceededException("over the quota")],
)
def test_a_call_rekognition_refuses_gives_way_to_its_retry(table, refusal):
    clock, settings = Clock(100.0), paced(1)  # runs 1 s apart
    table.reserve_slot(100.0, 1.0)  # a run took 100
    with (
        pytest.raises(type(refusal)),
        pacing.turn("DetectText", table=table, settings=settings, clock=clock, sleep=clock.sleep),
    ):
        raise refusal
    # The refusal took slot 101 for no run: the next run starts at 102, leaving a turn for the retry.
    assert _next_run_slot(table, settings, 100.0) == "1970-01-01T00:01:42Z"


def test_a_refused_turn_took_no_turn_so_it_does_not_give_way(table):
    clock, settings = Clock(100.0), paced(1)
    for _ in range(int(pacing.MAX_TURN_WAIT) + 1):
        table.reserve_slot(100.0, 1.0, pace="DetectText")
    for _ in range(3):
        with (
            pytest.raises(TurnRefused),
            pacing.turn("DetectText", table=table, settings=settings, clock=clock, sleep=clock.sleep),
        ):
            pytest.fail("the call was made although its turn was refused")
    assert _next_run_slot(table, settings, 100.0) == "1970-01-01T00:01:40Z"  # runs keep their pace


def test_an_answered_or_failed_call_does_not_give_way(table):
    clock, settings = Clock(100.0), paced(1)
    with pacing.turn("DetectText", table=table, settings=settings, clock=clock, sleep=clock.sleep) as waited:
        assert waited == 0.0
    with (
        pytest.raises(ValueError),
        pacing.turn("IndexFaces", table=table, settings=settings, clock=clock, sleep=clock.sleep),
    ):
        raise ValueError("not throttling: the step's own failure")
    assert _next_run_slot(table, settings, 100.0) == "1970-01-01T00:01:40Z"


def test_without_a_quota_nothing_gives_way(table):
    clock = Clock(100.0)
    with (
        pytest.raises(ThrottlingException),
        pacing.turn("DetectText", table=table, settings=paced(0), clock=clock, sleep=clock.sleep),
    ):
        raise ThrottlingException("Rate exceeded")
    assert table.reserve_slot(100.0, 1.0) == 100.0  # the run pace was never touched
