"""Start pipeline runs at the pace Rekognition's quota allows, so a burst never ends in throttling.

Rekognition's quota is per operation and account (5 transactions a second by default in most
regions, 50 in the largest). Each run makes one DetectText and one IndexFaces call, so the stage
can start `REKOGNITION_TPS x REKOGNITION_PACE_SHARE` runs a second. Every run (a new upload, a
reprocess) asks for a start slot from one shared counter in the table; a slot within a second is
started at once, a later one waits in the ingest queue as a delayed message (up to 15 minutes a
hop, re-sent until due) and starts when its slot comes. Waiting costs no execution, no state
transition and no Lambda time.
`REKOGNITION_TPS = 0` starts every run at once (the local sandbox's default).

Runs started at that pace still reach Rekognition unevenly: Preprocess takes longer for some
photos than others. So each DetectText and IndexFaces call also takes its own turn (a slot of its
operation at `REKOGNITION_CALL_SHARE` of the quota, a little above the runs' share so turns do not
queue up) and sleeps the fraction of a second until it (`take_turn`). A turn further away than
MAX_TURN_WAIT (only when something bypassed the runs' pacing, or Rekognition refused calls for a
while) is refused as throttling without being taken, so refusals never push the pace further out:
Step Functions retries it later rather than the Lambda idling.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.adapters.queue import IngestQueue
from chalicelib.adapters.table import PhotoTable
from chalicelib.adapters.workflow import Workflow
from chalicelib.config import Settings
from chalicelib.domain.errors import SlotTooFar, ThrottlingException

log = logging.getLogger(__name__)

# A slot this close is started now: the pipeline's own first step takes about this long.
LEAD_SECONDS = 1.0
# The key of a deferred run in an ingest queue message (S3's notifications never have it).
RUN_MESSAGE = "snaprace_run"
STARTED, ALREADY_STARTED, DEFERRED = "started", "already started", "deferred"
# The longest a Rekognition call waits for its turn inside a Lambda.
MAX_TURN_WAIT = 5.0


@dataclass(frozen=True)
class Run:
    """A pipeline run: its derived execution name, its input, and (once reserved) its start slot."""

    name: str
    input: dict[str, Any]
    not_before: float | None = None

    def to_message(self) -> dict[str, Any]:
        return {RUN_MESSAGE: {"name": self.name, "input": self.input, "not_before": self.not_before}}

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> Run:
        run = message[RUN_MESSAGE]
        not_before = run.get("not_before")
        return cls(
            name=str(run["name"]),
            input=dict(run["input"]),
            not_before=None if not_before is None else float(not_before),
        )


def admit(
    run: Run, *, table: PhotoTable, workflow: Workflow, queue: IngestQueue, settings: Settings, now: float
) -> str:
    """Start `run` if its slot has come (reserving one first if it has none), else queue it until then.

    Returns STARTED, ALREADY_STARTED (its derived name ran before) or DEFERRED.
    """
    rate = settings.rekognition_tps * settings.rekognition_pace_share
    not_before = run.not_before
    if not_before is None and rate > 0:
        not_before = table.reserve_slot(now, 1.0 / rate)
    if not_before is None or not_before - now <= LEAD_SECONDS:
        return STARTED if workflow.start(run.name, run.input) else ALREADY_STARTED
    wait = not_before - now
    queue.send_later(
        Run(run.name, run.input, not_before).to_message(), delay_seconds=math.ceil(wait - LEAD_SECONDS)
    )
    log.info("deferred execution=%s by %.1f s", run.name, wait)
    return DEFERRED


def take_turn(
    operation: str,
    *,
    table: PhotoTable,
    settings: Settings,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait for this call's turn of `operation` at the quota's pace; return the seconds waited.

    Raises ThrottlingException (before any call) when the turn is over MAX_TURN_WAIT away.
    """
    rate = settings.rekognition_tps * settings.rekognition_call_share
    if rate <= 0:
        return 0.0
    now = clock()
    try:
        wait = table.reserve_slot(now, 1.0 / rate, pace=operation, max_wait=MAX_TURN_WAIT) - now
    except SlotTooFar as too_far:
        # Refused without taking a turn: Step Functions retries later and the pace stays true.
        raise ThrottlingException(f"{too_far}: over the quota's pace") from None
    if wait > 0:
        sleep(wait)
    return max(0.0, wait)
