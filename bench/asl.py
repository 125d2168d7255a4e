"""Amazon States Language as far as the event-day model needs it: retriers, catchers, the states a
run enters (what Standard workflows bill), and an interpreter that walks a definition in simulated
time (bench/des.py), handing each Task state to a caller-supplied model of its Lambda.

Semantics, from the ASL specification and the Step Functions developer guide:

- A Retry entry's n-th retry (n from 0) waits min(IntervalSeconds x BackoffRate^n, MaxDelaySeconds);
  with JitterStrategy FULL a uniform random time between 0 and that. MaxAttempts counts retries, not
  attempts. Defaults: IntervalSeconds 1, MaxAttempts 3, BackoffRate 2.0, no cap, no jitter.
- The first Retry entry whose ErrorEquals matches the error applies, and each entry counts its own
  retries. When it is used up (or none matches) the first matching Catch applies, else the state
  fails.
- States.ALL matches every error; States.TaskFailed every error but States.Timeout.
- Parallel: every branch runs; the first branch to fail fails the state at once and stops the
  others (a task already running finishes, but its branch enters no further state).
- Standard workflows bill "a state transition each time a step of your workflow is executed ...
  including retries" (aws.amazon.com/step-functions/pricing): here, one per state entered (the
  Parallel state itself and every state in its branches, Choice, Pass, Succeed and Fail alike)
  and one per retry.

Data flow is modelled only as far as Choice rules need it: a Task's output lands at its ResultPath
when that is `$.name`, and Choice understands IsPresent, StringEquals and BooleanEquals. Any other
rule raises NotImplementedError, so a definition the model cannot follow fails loudly.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.des import Process, Signal, Simulation

SUCCEEDED, FAILED, STOPPED = "SUCCEEDED", "FAILED", "STOPPED"


@dataclass(frozen=True)
class Retrier:
    """One Retry entry of a state."""

    errors: tuple[str, ...]
    interval: float = 1.0
    backoff: float = 2.0
    max_attempts: int = 3
    max_delay: float | None = None
    full_jitter: bool = False

    @classmethod
    def from_asl(cls, entry: dict[str, Any]) -> Retrier:
        jitter = entry.get("JitterStrategy", "NONE")
        if jitter not in ("FULL", "NONE"):
            raise NotImplementedError(f"JitterStrategy {jitter!r}")
        cap = entry.get("MaxDelaySeconds")
        return cls(
            errors=tuple(entry["ErrorEquals"]),
            interval=float(entry.get("IntervalSeconds", 1)),
            backoff=float(entry.get("BackoffRate", 2.0)),
            max_attempts=int(entry.get("MaxAttempts", 3)),
            max_delay=None if cap is None else float(cap),
            full_jitter=jitter == "FULL",
        )

    def delay(self, retry: int) -> float:
        """The computed wait before retry number `retry` (0-based), before jitter."""
        wait = self.interval * self.backoff**retry
        return wait if self.max_delay is None else min(wait, self.max_delay)

    def wait(self, retry: int, rng: random.Random) -> float:
        """The wait Step Functions draws before retry number `retry`."""
        ceiling = self.delay(retry)
        return rng.uniform(0.0, ceiling) if self.full_jitter else ceiling

    def budget(self) -> float:
        """The longest total wait over every retry of this entry (full jitter waits half on average)."""
        return sum(self.delay(n) for n in range(self.max_attempts))

    def matches(self, error: str) -> bool:
        return matches(self.errors, error)


def matches(error_equals: Iterable[str], error: str) -> bool:
    """True if an ErrorEquals list catches `error`."""
    for name in error_equals:
        if name == error or name == "States.ALL":
            return True
        if name == "States.TaskFailed" and error != "States.Timeout":
            return True
    return False


def retriers(state: dict[str, Any]) -> list[Retrier]:
    """A state's Retry entries, in order."""
    return [Retrier.from_asl(entry) for entry in state.get("Retry", [])]


def retrier_for(state: dict[str, Any], error: str) -> Retrier | None:
    """The Retry entry of a state that would handle `error`, or None."""
    return next((r for r in retriers(state) if r.matches(error)), None)


def all_states(machine: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    """Every (name, state) of a definition, branches of Parallel states included."""
    for name, state in machine["States"].items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from all_states(branch)


def fallback_states(machine: dict[str, Any]) -> set[str]:
    """Pass states a Catch leads to: the run goes on without that step's result (a fallback)."""
    states = dict(all_states(machine))
    return {
        catcher["Next"]
        for _, state in all_states(machine)
        for catcher in state.get("Catch", [])
        if states[catcher["Next"]]["Type"] == "Pass"
    }


def success_path(machine: dict[str, Any], doc: dict[str, Any] | None = None) -> list[str]:
    """The states a run enters when no Task fails, branches included, Choice rules evaluated on
    `doc` (default: empty, so a Choice on IsPresent takes its Default)."""
    doc = {} if doc is None else doc
    path: list[str] = []
    name: str | None = machine["StartAt"]
    while name is not None:
        state = machine["States"][name]
        path.append(name)
        kind = state["Type"]
        if kind == "Parallel":
            for branch in state["Branches"]:
                path += success_path(branch, doc)
        if kind == "Choice":
            name = choose(state, doc)
        elif kind in ("Succeed", "Fail") or state.get("End"):
            name = None
        else:
            name = state["Next"]
    return path


def choose(state: dict[str, Any], doc: dict[str, Any]) -> str:
    """The Next of a Choice state for data `doc`."""
    for rule in state["Choices"]:
        if _holds(rule, doc):
            return str(rule["Next"])
    if "Default" not in state:
        raise LookupError("no Choice rule matched and there is no Default (States.NoChoiceMatched)")
    return str(state["Default"])


def _holds(rule: dict[str, Any], doc: dict[str, Any]) -> bool:
    present, value = _lookup(doc, rule["Variable"])
    if "IsPresent" in rule:
        return present == bool(rule["IsPresent"])
    if "StringEquals" in rule:
        return present and value == rule["StringEquals"]
    if "BooleanEquals" in rule:
        return present and value is rule["BooleanEquals"]
    raise NotImplementedError(f"Choice rule {sorted(rule)} is beyond this model")


def _lookup(doc: Any, path: str) -> tuple[bool, Any]:
    if not path.startswith("$"):
        raise NotImplementedError(f"path {path!r}")
    value = doc
    for part in filter(None, path[1:].split(".")):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _store(doc: dict[str, Any], result_path: str | None, value: Any) -> None:
    # Only `$.name` matters to the Choice rules this model evaluates.
    if result_path and result_path.startswith("$.") and "." not in result_path[2:]:
        doc[result_path[2:]] = value


@dataclass
class TaskResult:
    """What a Task's Lambda did: an error name (None on success) and its output."""

    error: str | None = None
    output: Any = None


@dataclass
class Execution:
    """One run: what it entered and how often it retried (Standard bills both)."""

    name: str
    doc: dict[str, Any] = field(default_factory=dict)
    transitions: int = 0
    entered: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Outcome:
    status: str
    error: str | None = None


# (state name, its Resource, the execution) -> a process returning a TaskResult
TaskModel = Callable[[str, str, Execution], Process]


class Interpreter:
    """Walks a definition for one execution at a time in simulated time."""

    def __init__(
        self,
        sim: Simulation,
        definition: dict[str, Any],
        task: TaskModel,
        rng: random.Random,
        *,
        state_latency: float = 0.0,
    ) -> None:
        self._sim = sim
        self._definition = definition
        self._task = task
        self._rng = rng
        self._latency = state_latency
        self._retriers: dict[int, list[Retrier]] = {}  # by id() of the state: parsed once

    def execute(self, execution: Execution) -> Process:
        """A process running `execution` from StartAt to its end; returns its Outcome."""
        return self._machine(self._definition, execution, lambda: False)

    def _machine(self, machine: dict[str, Any], execution: Execution, stopped: Callable[[], bool]) -> Process:
        name = machine["StartAt"]
        while True:
            if stopped():
                return Outcome(STOPPED)
            state = machine["States"][name]
            execution.transitions += 1
            execution.entered[name] += 1
            if self._latency:
                yield self._latency
            kind = state["Type"]
            error: str | None = None
            if kind == "Task":
                error = yield from self._run_task(name, state, execution, stopped)
            elif kind == "Parallel":
                error = yield from self._run_parallel(state, execution, stopped)
            elif kind == "Choice":
                name = choose(state, execution.doc)
                continue
            elif kind == "Succeed":
                return Outcome(SUCCEEDED)
            elif kind == "Fail":
                return Outcome(FAILED, state.get("Error"))
            elif kind == "Wait":
                yield float(state["Seconds"])
            elif kind != "Pass":
                raise NotImplementedError(f"state type {kind}")
            if error == STOPPED:
                return Outcome(STOPPED)
            if error is not None:
                catcher = next((c for c in state.get("Catch", []) if matches(c["ErrorEquals"], error)), None)
                if catcher is None:
                    return Outcome(FAILED, error)
                _store(execution.doc, catcher.get("ResultPath", "$"), {"Error": error})
                name = catcher["Next"]
                continue
            if state.get("End"):
                return Outcome(SUCCEEDED)
            name = state["Next"]

    def _run_task(
        self, name: str, state: dict[str, Any], execution: Execution, stopped: Callable[[], bool]
    ) -> Process:
        entries = self._retriers.get(id(state))
        if entries is None:
            entries = self._retriers[id(state)] = retriers(state)
        used = [0] * len(entries)
        while True:
            result: TaskResult = yield from self._task(name, state["Resource"], execution)
            if result.error is None:
                _store(execution.doc, state.get("ResultPath", "$"), result.output)
                return None
            execution.errors[result.error] += 1
            index = next((i for i, r in enumerate(entries) if r.matches(result.error)), None)
            if index is None or used[index] >= entries[index].max_attempts:
                return result.error
            yield entries[index].wait(used[index], self._rng)
            used[index] += 1
            if stopped():
                return STOPPED
            execution.transitions += 1  # a retry is billed as a transition
            execution.retries[name] += 1

    def _run_parallel(
        self, state: dict[str, Any], execution: Execution, stopped: Callable[[], bool]
    ) -> Process:
        branches = state["Branches"]
        joined = Signal()
        halted = [False]
        pending = [len(branches)]

        def branch_stopped() -> bool:
            return halted[0] or stopped()

        def finished(outcome: Outcome) -> None:
            if joined.fired:
                return
            if outcome.status == FAILED:
                halted[0] = True  # the first failure fails the Parallel state and stops the rest
                joined.fire(outcome.error or "States.BranchFailed")
                return
            pending[0] -= 1
            if pending[0] == 0:
                joined.fire(STOPPED if outcome.status == STOPPED else None)

        for branch in branches:
            self._sim.start(self._machine(branch, execution, branch_stopped)).then(finished)
        error: str | None = yield joined
        return error
