"""The logic inside bench/event_day.py's model: the bound, ASL retries and transitions, the quota,
the pace table. No timing: the benchmark prints figures, these check the arithmetic behind them."""

from __future__ import annotations

import random

import pytest

from bench.asl import (
    FAILED,
    SUCCEEDED,
    Execution,
    Interpreter,
    Retrier,
    TaskResult,
    fallback_states,
    success_path,
)
from bench.cost import item_size, write_units
from bench.des import Simulation
from bench.event_day import PaceDynamoDB, TokenBucket, fluid_bound, upload_times
from chalicelib.adapters.table import PhotoTable


def test_fluid_bound_is_n_over_r_when_every_photo_arrives_at_once():
    assert fluid_bound([0.0] * 20, rate=5.0) == pytest.approx(4.0)


def test_fluid_bound_waits_for_late_arrivals():
    # Two photos at once, then one much later: the late one bounds the finish.
    assert fluid_bound([0.0, 0.0, 100.0], rate=1.0) == pytest.approx(101.0)
    # Arrivals slower than the server: the last arrival plus one service time.
    assert fluid_bound([0.0, 10.0, 20.0], rate=1.0) == pytest.approx(21.0)


def test_retry_waits_double_up_to_the_cap():
    entry = {
        "ErrorEquals": ["ThrottlingException"],
        "IntervalSeconds": 1,
        "BackoffRate": 2,
        "MaxAttempts": 10,
        "MaxDelaySeconds": 60,
        "JitterStrategy": "FULL",
    }
    retrier = Retrier.from_asl(entry)
    assert [retrier.delay(n) for n in range(10)] == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert retrier.budget() == 303
    rng = random.Random(7)
    assert all(0 <= retrier.wait(5, rng) <= 32 for _ in range(200))


def test_retry_defaults_are_the_specifications():
    retrier = Retrier.from_asl({"ErrorEquals": ["States.ALL"]})
    assert (retrier.interval, retrier.backoff, retrier.max_attempts, retrier.max_delay) == (1.0, 2.0, 3, None)
    assert retrier.wait(2, random.Random(1)) == 4.0  # no jitter unless asked
    assert retrier.matches("Anything")
    assert not Retrier.from_asl({"ErrorEquals": ["States.TaskFailed"]}).matches("States.Timeout")


TINY = {
    "StartAt": "A",
    "States": {
        "A": {
            "Type": "Task",
            "Resource": "a",
            "ResultPath": "$.a",
            "Retry": [{"ErrorEquals": ["Busy"], "IntervalSeconds": 1, "MaxAttempts": 2}],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            "Next": "New?",
        },
        "New?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.a.duplicate_of", "IsPresent": True, "Next": "Done"}],
            "Default": "Both",
        },
        "Done": {"Type": "Succeed"},
        "Both": {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "b", "End": True}}},
                {
                    "StartAt": "C",
                    "States": {
                        "C": {
                            "Type": "Task",
                            "Resource": "c",
                            "Catch": [
                                {"ErrorEquals": ["Busy"], "Next": "Gave up"},
                                {"ErrorEquals": ["States.ALL"], "Next": "Without C"},
                            ],
                            "End": True,
                        },
                        "Without C": {"Type": "Pass", "End": True},
                        "Gave up": {"Type": "Fail", "Error": "CBusy"},
                    },
                },
            ],
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            "Next": "D",
        },
        "D": {"Type": "Task", "Resource": "d", "End": True},
        "Failed": {"Type": "Fail", "Error": "Failed"},
    },
}


def run_tiny(errors: dict[str, list[str | None]], output: dict | None = None, durations: dict | None = None):
    """Run TINY once; each Task's attempts end with the listed errors in turn (then succeed)."""
    sim = Simulation()
    calls: list[str] = []

    def task(state, resource, execution):
        calls.append(state)
        yield (durations or {}).get(state, 1.0)
        planned = errors.get(state) or []
        error = planned.pop(0) if planned else None
        return TaskResult(error, output if state == "A" else None)

    execution = Execution("run-1")
    done = sim.start(Interpreter(sim, TINY, task, random.Random(3)).execute(execution))
    sim.run()
    return done.value, execution, calls


def test_every_state_entered_and_every_retry_is_a_transition():
    outcome, execution, calls = run_tiny({"A": ["Busy"]})
    assert outcome.status == SUCCEEDED
    assert calls == ["A", "A", "B", "C", "D"]
    # A, its retry, New?, Both, B, C, D
    assert execution.transitions == 7
    assert success_path(TINY) == ["A", "New?", "Both", "B", "C", "D"]


def test_choice_reads_the_tasks_result_path():
    outcome, execution, _ = run_tiny({}, output={"duplicate_of": "p-1"})
    assert outcome.status == SUCCEEDED
    assert list(execution.entered) == ["A", "New?", "Done"]


def test_exhausted_retries_go_to_the_catch():
    outcome, execution, calls = run_tiny({"A": ["Busy", "Busy", "Busy"]})
    assert outcome.status == FAILED and outcome.error == "Failed"
    assert calls == ["A", "A", "A"]  # one attempt and MaxAttempts 2 retries
    assert execution.transitions == 4  # A, two retries, Failed


def test_a_failed_branch_fails_the_parallel_and_stops_the_other():
    # C fails at once into its Fail state; B is still running and enters nothing more.
    outcome, execution, _ = run_tiny({"C": ["Busy"]}, durations={"B": 5.0, "C": 0.5})
    assert outcome.status == FAILED and outcome.error == "Failed"
    assert execution.entered["Gave up"] == 1 and execution.entered["D"] == 0
    assert fallback_states(TINY) == {"Without C"}


def test_another_error_in_a_branch_falls_back_and_the_run_goes_on():
    outcome, execution, _ = run_tiny({"C": ["Broken"]})
    assert outcome.status == SUCCEEDED
    assert execution.entered["Without C"] == 1 and execution.entered["D"] == 1


def test_the_quota_refuses_a_call_once_its_burst_is_spent():
    bucket = TokenBucket(rate=5.0, capacity=5.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(0.2)  # one token back after 1/5 s
    assert not bucket.take(0.2)


def test_the_pace_table_answers_reserve_slot_as_dynamodb_does():
    # The same expectations as tests/test_pacing.py holds the real table (in moto) to.
    table = PhotoTable(PaceDynamoDB(), "snaprace-test")
    assert [table.reserve_slot(1000.0, 0.5) for _ in range(4)] == [1000.0, 1000.5, 1001.0, 1001.5]
    assert table.reserve_slot(1010.0, 0.5) == 1010.0
    assert table.reserve_slot(1010.0, 0.5) == 1010.5
    assert table.reserve_slot(1010.0, 0.5, pace="DetectText") == 1010.0  # each pace has its own counter


def test_after_race_uploads_ramp_up_then_tail_off():
    times = upload_times(3000, minutes=60, curve="after-race", rng=random.Random(5))
    assert len(times) == 3000 and times == sorted(times) and times[0] >= 0 and times[-1] <= 3600
    first, last = sum(t < 1200 for t in times), sum(t >= 2400 for t in times)
    assert first > 2 * last  # a triangle peaking at 10 min: ~47% in the first third, ~13% in the last


def test_item_size_counts_names_and_values_as_dynamodb_does():
    item = {"PK": {"S": "ORG#a"}, "n": {"N": "12345"}, "ok": {"BOOL": True}, "tags": {"L": [{"S": "ab"}]}}
    # PK 2+5, n 1+(5 digits -> 3+1), ok 2+1, tags 4+(3 + 1 + 2)
    assert item_size(item) == 7 + 5 + 3 + 10


def test_a_transaction_doubles_the_table_write_but_not_the_index_writes():
    photo = {"PK": {"S": "p"}, "SK": {"S": "s"}, "GSI1PK": {"S": "g"}, "GSI1SK": {"S": "h"}}
    assert write_units(None, photo) == 2  # the table and one index
    assert write_units(None, photo, transaction=True) == 3
    assert write_units(photo, None) == 2  # a delete leaves the index too
    moved = {**photo, "GSI1PK": {"S": "other"}}
    assert write_units(photo, moved) == 3  # the index entry is deleted and put
    big = {"PK": {"S": "p"}, "SK": {"S": "s"}, "blob": {"S": "x" * 1500}}
    assert write_units(big, {"PK": {"S": "p"}, "SK": {"S": "s"}}) == 2  # the larger image counts
