"""Start pipeline runs at the pace Rekognition's quota allows, so a burst never ends in throttling.

Rekognition's quota is per operation and account (5 transactions a second by default in most
regions, 50 in the largest). Each run makes one DetectText and one IndexFaces call, so the stage
can start `REKOGNITION_TPS x REKOGNITION_PACE_SHARE` runs a second. Every run (a new upload, a
reprocess) takes a start slot from one shared counter in the table and its execution starts at
once with the slot as `not_before`: the state machine's first state waits until then (a Wait
state: no Lambda time, one state transition, up to a year; Step Functions keeps whole seconds).
The execution's name is derived, so a redelivered notification starts nothing twice.
`REKOGNITION_TPS = 0` starts every run at once (the local sandbox's default).

Runs started at that pace still reach Rekognition unevenly: a slot is kept to the second and
Preprocess takes longer for some photos than others. So each DetectText and IndexFaces call also
takes its own turn (a slot of its operation at `REKOGNITION_CALL_SHARE` of the quota, a little
above the runs' share so turns do not queue up) and sleeps the fraction of a second until it
(`take_turn`). A turn further away than MAX_TURN_WAIT (only when something bypassed the runs'
pacing, or Rekognition refused calls for a while) is refused without being taken (TurnRefused),
so refusals never push the pace further out: Step Functions retries it later, on a budget of its
own, rather than the Lambda idling.

A call Rekognition throttled after all used up its turn and will be made again, so it needs a
turn the runs' pace did not plan for. If new runs kept their pace, retried calls would compete
with them for every turn, and a photo unlucky a few times in a row would exhaust its retries while
fresh photos went ahead. So each such refusal also gives way: it takes one start slot that no run
uses (`give_way`), and the runs behind it start one slot later. The calls' demand then stays
within their pace however many refusals there are, and retries are served. A turn refused for
being too far away took no turn, so its retry needs none extra: it does not give way (when it did,
a burst's first seconds, where Preprocess finishes unevenly, refused dozens of turns and pushed
every later run back by as many slots).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.adapters.table import PhotoTable
from chalicelib.adapters.workflow import Workflow
from chalicelib.config import Settings
from chalicelib.domain.errors import (
    ProvisionedThroughputExceededException,
    SlotTooFar,
    ThrottlingException,
    TurnRefused,
)

log = logging.getLogger(__name__)

STARTED, ALREADY_STARTED = "started", "already started"
# The execution input's field the state machine's first state (WaitForTurn) waits until.
NOT_BEFORE = "not_before"
# The longest a Rekognition call waits for its turn inside a Lambda.
MAX_TURN_WAIT = 5.0


@dataclass(frozen=True)
class Run:
    """A pipeline run: its derived execution name and its input."""

    name: str
    input: dict[str, Any]


def admit(run: Run, *, table: PhotoTable, workflow: Workflow, settings: Settings, now: float) -> str:
    """Take `run`'s start slot and start its execution, which waits in Step Functions until the slot.

    Returns STARTED, or ALREADY_STARTED when its derived name ran before.
    """
    rate = settings.rekognition_tps * settings.rekognition_pace_share
    slot = table.reserve_slot(now, 1.0 / rate) if rate > 0 else now
    started = workflow.start(run.name, {**run.input, NOT_BEFORE: slot_timestamp(slot)})
    if started and slot - now >= 1.0:
        log.info("execution=%s waits %.1f s for its turn", run.name, slot - now)
    return STARTED if started else ALREADY_STARTED


def slot_timestamp(slot: float) -> str:
    """The slot as a Wait state's timestamp: RFC 3339 UTC to the second (Step Functions ignores any
    fraction), rounded down so the run is ready when its calls' turns come."""
    return datetime.fromtimestamp(math.floor(slot), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def give_way(*, table: PhotoTable, settings: Settings, now: float) -> None:
    """Take one start slot for no run, so that a refused call's retry has a turn to take."""
    rate = settings.rekognition_tps * settings.rekognition_pace_share
    if rate > 0:
        table.reserve_slot(now, 1.0 / rate)


@contextmanager
def turn(
    operation: str,
    *,
    table: PhotoTable,
    settings: Settings,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[float]:
    """Take this call's turn (`take_turn`) for the body, which makes the call; when Rekognition
    throttles the call, give way (`give_way`) and let the error go on. A refused turn (raised by
    take_turn) took nothing, so it gives nothing back."""
    waited = take_turn(operation, table=table, settings=settings, clock=clock, sleep=sleep)
    try:
        yield waited
    except (ThrottlingException, ProvisionedThroughputExceededException):
        give_way(table=table, settings=settings, now=clock())
        raise


def take_turn(
    operation: str,
    *,
    table: PhotoTable,
    settings: Settings,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait for this call's turn of `operation` at the quota's pace; return the seconds waited.

    Raises TurnRefused (before any call) when the turn is over MAX_TURN_WAIT away.
    """
    rate = settings.rekognition_tps * settings.rekognition_call_share
    if rate <= 0:
        return 0.0
    try:
        slot = table.reserve_slot(clock(), 1.0 / rate, pace=operation, max_wait=MAX_TURN_WAIT)
    except SlotTooFar as too_far:
        # Refused without taking a turn: Step Functions retries later and the pace stays true.
        raise TurnRefused(f"{too_far}: over the quota's pace") from None
    # The clock again: the reservation itself took time (a DynamoDB round trip, longer when busy),
    # and sleeping that long on top would make the call late by it, then the next one early.
    wait = slot - clock()
    if wait > 0:
        sleep(wait)
    return max(0.0, wait)
