"""Requests-per-second quotas for the local Rekognition, one token bucket per operation.

AWS sets Rekognition's TPS quotas per operation and per account (DetectText, IndexFaces,
SearchFacesByImage, ... each its own limit), and answers calls past the quota with
ThrottlingException. The sandbox reproduces that so the pipeline's retry and pacing behaviour can
be measured on this machine.

Token bucket: each operation's bucket fills at T tokens per second up to a capacity of T (one
second of burst, at least one token) and starts full. A call takes one token, or is throttled when
less than one is left; a throttled call takes nothing, so a client that keeps retrying does not
push the recovery further away. AWS does not publish its limiter; a one-second burst is the
smallest bucket that still lets exactly T calls through in any one second, which is what "T
transactions per second" promises, and it keeps bursts short enough that a run's sustained rate is
what the quota says.

Quota text (the `--rekognition-tps` flag and SANDBOX_REKOGNITION_TPS): `5` (every operation 5/s),
`DetectText=5,IndexFaces=2` (only those two limited), or `5,IndexFaces=2` (every operation 5/s
except IndexFaces). Empty means no quota.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

Clock = Callable[[], float]

ENVIRONMENT_VARIABLE = "SANDBOX_REKOGNITION_TPS"


class InvalidQuota(ValueError):
    """Quota text that is not `T`, `Operation=T,...` or both, with positive rates."""


class TokenBucket:
    """Admits calls at `rate` per second with bursts up to `capacity`; thread-safe."""

    def __init__(self, rate: float, capacity: float | None = None, *, clock: Clock = time.monotonic) -> None:
        if rate <= 0:
            raise InvalidQuota(f"a rate must be positive, not {rate}")
        self.rate = rate
        self.capacity = max(1.0, rate if capacity is None else capacity)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take one token and return True, or return False (throttled) when none is left."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True


@dataclass(frozen=True)
class RateQuota:
    """Requests per second per operation: `default` for every operation not in `per_operation`."""

    default: float | None = None
    per_operation: dict[str, float] = field(default_factory=dict)

    def rate(self, operation: str) -> float | None:
        """The operation's limit in requests per second, or None when it is unlimited."""
        return self.per_operation.get(operation, self.default)

    def describe(self) -> str:
        parts = [] if self.default is None else [f"{self.default:g}/s"]
        parts += [f"{name}={rate:g}/s" for name, rate in sorted(self.per_operation.items())]
        return ", ".join(parts) or "unlimited"


def parse_quota(text: str | None, operations: Iterable[str] | None = None) -> RateQuota | None:
    """Return the quota `text` describes (None for no text); raise InvalidQuota.

    With `operations`, an override naming any other operation is refused (a misspelt name would
    otherwise leave that operation unlimited without a word).
    """
    if text is None or not text.strip():
        return None
    known = set(operations) if operations is not None else None
    default: float | None = None
    overrides: dict[str, float] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        name, equals, value = part.rpartition("=")
        name = name.strip()
        if equals and not name:
            raise InvalidQuota(f"{text!r}: {part!r} names no operation")
        rate = _rate(value.strip(), text)
        if not name:
            if default is not None:
                raise InvalidQuota(f"{text!r} gives the default rate twice")
            default = rate
            continue
        if known is not None and name not in known:
            raise InvalidQuota(
                f"{name!r} is not an operation of the local Rekognition ({', '.join(sorted(known))})"
            )
        overrides[name] = rate
    if default is None and not overrides:
        return None
    return RateQuota(default, overrides)


def quota_from_environment(
    environ: Mapping[str, str], operations: Iterable[str] | None = None
) -> RateQuota | None:
    """The quota SANDBOX_REKOGNITION_TPS describes, or None."""
    return parse_quota(environ.get(ENVIRONMENT_VARIABLE), operations)


def _rate(value: str, text: str) -> float:
    try:
        rate = float(value)
    except ValueError as exc:
        raise InvalidQuota(f"{text!r}: {value!r} is not a number of requests per second") from exc
    if not rate > 0 or rate == float("inf"):
        raise InvalidQuota(f"{text!r}: a rate must be a positive number, not {value!r}")
    return rate


class OperationLimiter:
    """One token bucket per limited operation, made on first use."""

    def __init__(self, quota: RateQuota, *, clock: Clock = time.monotonic) -> None:
        self.quota = quota
        self._clock = clock
        self._buckets: dict[str, TokenBucket | None] = {}
        self._lock = threading.Lock()

    def admit(self, operation: str) -> bool:
        """True when `operation` may run now (it is unlimited, or its bucket had a token)."""
        with self._lock:
            if operation not in self._buckets:
                rate = self.quota.rate(operation)
                self._buckets[operation] = None if rate is None else TokenBucket(rate, clock=self._clock)
            bucket = self._buckets[operation]
        return bucket is None or bucket.take()
