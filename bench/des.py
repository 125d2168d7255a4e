"""A small discrete-event simulator: one clock, a heap of timed callbacks, and generator processes.

A process is a generator that yields a number (sleep that many simulated seconds) or a Signal (wait
until it fires; the yield evaluates to the signal's value). Its return value fires the Signal that
`Simulation.start` returned. Nothing here knows about AWS: bench/asl.py and bench/event_day.py
build on it. Pure Python and heapq, so 20 000 photos with their retries run in seconds.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Generator
from typing import Any

Process = Generator[Any, Any, Any]


class Signal:
    """A one-shot event: `fire(value)` once; every waiter (and later waiter) gets the value."""

    __slots__ = ("_callbacks", "fired", "value")

    def __init__(self) -> None:
        self.fired = False
        self.value: Any = None
        self._callbacks: list[Callable[[Any], None]] = []

    def then(self, callback: Callable[[Any], None]) -> None:
        """Call `callback(value)` when the signal fires (now, if it already has)."""
        if self.fired:
            callback(self.value)
        else:
            self._callbacks.append(callback)

    def fire(self, value: Any = None) -> None:
        if self.fired:
            raise RuntimeError("a Signal fires once")
        self.fired, self.value = True, value
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(value)


class Simulation:
    """The clock and the agenda. Callbacks at equal times run in the order they were scheduled."""

    def __init__(self) -> None:
        self.now = 0.0
        self._agenda: list[tuple[float, int, Callable[..., None], tuple[Any, ...]]] = []
        self._order = itertools.count()

    def schedule(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        """Run `callback(*args)` `delay` simulated seconds from now."""
        if delay < 0 or math.isnan(delay):
            raise ValueError(f"cannot schedule {delay} s into the past")
        heapq.heappush(self._agenda, (self.now + delay, next(self._order), callback, args))

    def start(self, process: Process) -> Signal:
        """Run a generator process from now; return the Signal its return value fires."""
        done = Signal()
        self.schedule(0.0, self._resume, process, done, None)
        return done

    def run(self, until: float = math.inf) -> None:
        """Process the agenda until it is empty or the next entry is after `until`."""
        agenda = self._agenda
        while agenda and agenda[0][0] <= until:
            when, _, callback, args = heapq.heappop(agenda)
            self.now = when
            callback(*args)

    def _resume(self, process: Process, done: Signal, value: Any) -> None:
        try:
            request = process.send(value)
        except StopIteration as stop:
            done.fire(stop.value)
            return
        if isinstance(request, Signal):
            # Resumed through the agenda, not from inside fire(): no deep recursion, stable order.
            request.then(lambda fired: self.schedule(0.0, self._resume, process, done, fired))
        else:
            self.schedule(float(request), self._resume, process, done, None)
