"""Benchmark the search API's list routes (gallery, bib, photographer) on a 10 000-photo event.

Run from the repo root: `.venv/bin/python -m bench.search [--photos N] [--requests N]`.
Everything runs in this process against moto, set up as the tests set it up (dev stage
environment, fake credentials, us-east-1), with the app's own cached DynamoDB client.

Two passes per route, each request through chalice.test.Client and each followed by a baseline:
the same page as one raw `repository read`, so the API / baseline ratio carries over between machines.
- moto: DynamoDB answered by moto. moto's Query sorts the whole table on every call, so at this
  size it costs about a second and the pass is short (--requests; its p99 is about the maximum).
- replayed: the same pages again, each DynamoDB call answered at once with the response moto gave
  it in the first pass (a botocore `before-call` handler). This is the app's own cost per page:
  Chalice, botocore, decoding, cursors, URLs, JSON (--replayed-requests).

It also counts the DynamoDB calls each API page makes (`before-call.dynamodb.*` events) and exits
non-zero if any bib page took more than one: a bib page is one Query by design (chalicelib.adapters.table),
whatever the timing.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from sandbox.stage import PROJECT_DIR
from tests.support.aws import MOTO_CONFIG, REGION, STAGE, use_mocked_aws

ORG = "bench"
EVENT = "city-marathon"
RUNNERS = 2_000
PHOTOGRAPHERS = 20
LIMIT = 100
# How many bibs a photo shows: a quarter show none (crowd, scenery, backs), most show one or two.
BIBS_PER_PHOTO = {0: 0.25, 1: 0.40, 2: 0.22, 3: 0.13}
ROUTES = ("gallery", "bib", "photographer")

# The environment the tests run with (tests/conftest.py), set before app.py is imported: it reads
# its settings at import time. No endpoint variables, so every client goes to moto.
use_mocked_aws(STAGE, REGION)

from chalice.test import Client  # noqa: E402
from moto import mock_aws  # noqa: E402

import app as snaprace  # noqa: E402
from chalicelib import clients  # noqa: E402
from chalicelib.adapters.table import Key, PhotoTable  # noqa: E402
from chalicelib.adapters.table import Page as TablePage  # noqa: E402
from sandbox.resources import create_stage_resources  # noqa: E402
from tests.support.photos import make_photo, seed  # noqa: E402


@dataclass(frozen=True)
class Event:
    """What was loaded: photos per bib (bibs on at least one photo), and the photographers."""

    bib_counts: Counter
    photographers: list[str]


@dataclass(frozen=True)
class Page:
    """One page: its API path, and the same page read straight from the repository."""

    path: str
    fetch: Callable[[PhotoTable, Key | None], TablePage]
    start: Key | None = None


@dataclass
class Timings:
    latencies_ms: list[float] = field(default_factory=list)
    photos: list[int] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)

    def summary(self) -> tuple[float, float, float, float]:
        """Return (requests/s, p50 ms, p99 ms, mean photos per response)."""
        p99 = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[98]
        return (
            1000 * len(self.latencies_ms) / sum(self.latencies_ms),
            statistics.median(self.latencies_ms),
            p99,
            statistics.fmean(self.photos),
        )


class DynamoDBHooks:
    """botocore handlers on the app's DynamoDB client: count calls; record, then replay, responses.

    Responses are keyed by the serialized request body, so a replayed page gets exactly the
    response moto gave the same request.
    """

    def __init__(self) -> None:
        self.calls = 0
        self.operations: Counter = Counter()
        self.responses: dict[bytes, dict[str, Any]] = {}
        self.replaying = False
        self.misses = 0

    def install(self, client) -> None:
        events = client.meta.events
        events.register_first("before-call.dynamodb", self.before_call, unique_id="bench-search-before")
        events.register_first("after-call.dynamodb", self.after_call, unique_id="bench-search-after")

    def before_call(self, event_name: str, params: dict[str, Any], context: dict[str, Any], **kwargs):
        self.calls += 1
        self.operations[event_name.rsplit(".", 1)[-1]] += 1
        key = params["body"]
        if not self.replaying:
            context["bench_key"] = key
            return None
        parsed = self.responses.get(key)
        if parsed is None:
            self.misses += 1  # falls through to moto
            return None
        # A non-None answer short-circuits the call: botocore returns `parsed` as the response.
        return SimpleNamespace(status_code=200, headers={}), parsed

    def after_call(self, parsed: dict[str, Any], context: dict[str, Any], **kwargs) -> None:
        if not self.replaying and "bench_key" in context:
            self.responses[context["bench_key"]] = parsed


def load_event(table: PhotoTable, photos: int, rng: random.Random) -> Event:
    """Write an event's PHOTO and BIB_INDEX items; a few runners are in many photos, most in few."""
    bibs = [str(101 + i) for i in range(RUNNERS)]
    # Log-normal popularity: the front of the field, pacers and costumes get photographed far
    # more often than the average runner, so a popular bib has dozens of photos.
    bib_weights = [rng.lognormvariate(0, 0.9) for _ in bibs]
    handles = [f"photographer-{i:02d}" for i in range(1, PHOTOGRAPHERS + 1)]
    handle_weights = [rng.lognormvariate(0, 0.6) for _ in handles]
    sizes, size_weights = list(BIBS_PER_PHOTO), list(BIBS_PER_PHOTO.values())

    pairs = []
    for n in range(photos):
        shown = rng.choices(bibs, bib_weights, k=rng.choices(sizes, size_weights)[0])
        photographer = rng.choices(handles, handle_weights)[0]
        pairs.append((make_photo(ORG, EVENT, n, photographer=photographer), tuple(dict.fromkeys(shown))))
    seed(table, pairs)
    return Event(
        bib_counts=Counter(bib for _, shown in pairs for bib in shown),
        photographers=sorted({photo.photographer for photo, _ in pairs}),
    )


# Page generators: `send((api_body, raw_last_key))` after each page to get the next one.


def gallery_pages() -> Iterator[Page]:
    """Walk the gallery's cursors, restarting at the first page after the last."""
    base = f"/events/{ORG}/{EVENT}/photos?limit={LIMIT}"
    cursor, start = None, None
    while True:
        path = base + (f"&cursor={quote(cursor)}" if cursor else "")
        body, last = yield Page(
            path, lambda table, after: table.gallery_page(ORG, EVENT, limit=LIMIT, after=after), start
        )
        cursor, start = body["next_cursor"], last


def bib_pages(event: Event, rng: random.Random) -> Iterator[Page]:
    """First pages of random bibs that are on at least one photo."""
    bibs = sorted(event.bib_counts)
    while True:
        bib = rng.choice(bibs)
        yield Page(
            f"/events/{ORG}/{EVENT}/bibs/{bib}/photos?limit={LIMIT}",
            lambda table, after, bib=bib: table.bib_page(ORG, EVENT, bib, limit=LIMIT, after=after),
        )


def photographer_pages(event: Event, rng: random.Random) -> Iterator[Page]:
    """First pages of random photographers."""
    while True:
        handle = rng.choice(event.photographers)
        yield Page(
            f"/events/{ORG}/{EVENT}/photographers/{handle}/photos?limit={LIMIT}",
            lambda table, after, handle=handle: table.photographer_page(
                ORG, EVENT, handle, limit=LIMIT, after=after
            ),
        )


def again(pages: list[Page]) -> Iterator[Page]:
    """The pages of an earlier pass, over and over."""
    while True:
        for page in pages:  # noqa: UP028 - not `yield from`: a list iterator has no send()
            yield page


def run(
    client: Client, table: PhotoTable, pages: Iterator[Page], requests: int, hooks: DynamoDBHooks
) -> tuple[Timings, Timings, list[Page]]:
    """Alternate API request and baseline for `requests` pages; return both timings and the pages.

    Alternating means load from other processes hits both alike. Raises SystemExit if the API
    answers anything but 200 or a different page from the raw query.
    """
    api, baseline, seen = Timings(), Timings(), []
    page = next(pages)
    for _ in range(requests):
        seen.append(page)
        hooks.calls = 0
        start = time.perf_counter()
        response = client.http.get(page.path)
        api.latencies_ms.append((time.perf_counter() - start) * 1000)
        api.calls.append(hooks.calls)
        if response.status_code != 200:
            raise SystemExit(f"GET {page.path} answered {response.status_code}: {response.body[:300]!r}")
        body = response.json_body
        api.photos.append(len(body["photos"]))

        start = time.perf_counter()
        raw = page.fetch(table, page.start)
        items, last = raw.items, raw.last_key
        baseline.latencies_ms.append((time.perf_counter() - start) * 1000)
        baseline.photos.append(len(items))
        if [p["photo_id"] for p in body["photos"]] != [i["photo_id"] for i in items] or (
            (body["next_cursor"] is None) != (last is None)
        ):
            raise SystemExit(f"GET {page.path} disagrees with the raw query of the same page")
        page = pages.send((body, last))
    return api, baseline, seen


def print_rows(route: str, label: str, api: Timings, baseline: Timings) -> None:
    figures = {f"api, {label}": api.summary(), f"baseline, {label}": baseline.summary()}
    for row, (rate, p50, p99, photos) in figures.items():
        print(f"{route:<13} {row:<20} {rate:7.1f} {p50:9.2f} {p99:9.2f} {photos:12.1f}")
    (_, api_p50, api_p99, _), (_, base_p50, base_p99, _) = figures.values()
    ratios = f"{api_p50 / base_p50:9.2f} {api_p99 / base_p99:9.2f}"
    print(f"{route:<13} {'ratio api/baseline':<20} {'':>7} {ratios}")


def profile(client: Client, pages: Iterator[Page], requests: int) -> None:
    """Print where a replayed API request's time goes (cProfile, top functions by own time)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        client.http.get(next(pages).path)
    profiler.disable()
    print(f"\nprofile of {requests} replayed API requests, by own time:")
    pstats.Stats(profiler, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument(
        "--requests",
        type=int,
        default=5,
        help="requests per route with moto answering (each ~1 s at 10 000 photos; default 5)",
    )
    parser.add_argument(
        "--replayed-requests",
        type=int,
        default=100,
        help="requests per route with recorded DynamoDB responses (default 100)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed for the event and the requests")
    parser.add_argument("--profile", choices=ROUTES, help="also profile this route's replayed requests")
    args = parser.parse_args()
    if args.requests < 2 or args.replayed_requests < 2:
        parser.error("--requests and --replayed-requests must be at least 2")

    clients.cache_clear()
    with mock_aws(config=MOTO_CONFIG):
        create_stage_resources(STAGE, region=REGION)
        table = clients.table()  # the app's own cached client and adapter
        rng = random.Random(args.seed)

        start = time.perf_counter()
        event = load_event(table, args.photos, rng)
        load_s = time.perf_counter() - start
        popular, most = event.bib_counts.most_common(1)[0]
        print(
            f"event {ORG}/{EVENT}: {args.photos} photos by {len(event.photographers)} photographers; "
            f"{len(event.bib_counts)} of {RUNNERS} runners' bibs seen, photos per bib median "
            f"{statistics.median(event.bib_counts.values()):.0f}, max {most} (bib {popular})"
        )
        print(f"load: {args.photos} photos saved as Fanout saves them: {load_s:.1f} s")

        hooks = DynamoDBHooks()
        hooks.install(clients._client("dynamodb"))
        client = Client(snaprace.app, stage_name=STAGE, project_dir=str(PROJECT_DIR))
        routes = {
            "gallery": gallery_pages(),
            "bib": bib_pages(event, random.Random(args.seed)),
            "photographer": photographer_pages(event, random.Random(args.seed)),
        }
        # Warm-up outside the figures: first-request costs (route table, botocore loaders, signer).
        client.http.get(next(bib_pages(event, random.Random(-1))).path)

        print(
            f"\nlimit={LIMIT}; each API request is followed by its baseline, the same page as one raw "
            f"repository read; latencies in ms"
        )
        print(f"{'route':<13} {'row':<20} {'req/s':>7} {'p50':>9} {'p99':>9} {'photos/resp':>12}")
        calls: dict[str, list[int]] = {}
        passes: dict[str, list[Page]] = {}
        start = time.perf_counter()
        for route, pages in routes.items():
            api, baseline, passes[route] = run(client, table, pages, args.requests, hooks)
            calls[route] = list(api.calls)
            print_rows(route, "moto", api, baseline)
        moto_s = time.perf_counter() - start

        hooks.replaying = True
        start = time.perf_counter()
        for route, seen in passes.items():
            api, baseline, _ = run(client, table, again(seen), args.replayed_requests, hooks)
            calls[route] += api.calls
            print_rows(route, "replayed", api, baseline)
        replay_s = time.perf_counter() - start
        print(
            f"moto pass {moto_s:.0f} s ({args.requests} pages a route), replayed pass {replay_s:.0f} s "
            f"({args.replayed_requests} a route, {len(hooks.responses)} recorded responses, "
            f"{hooks.misses} unrecorded calls sent to moto)"
        )

        print(f"\nDynamoDB calls per page ({', '.join(sorted(hooks.operations))} seen):")
        for route, counts in calls.items():
            low, high = min(counts), max(counts)
            print(f"  {route:<13} {low if low == high else f'{low}-{high}'}")
        worst = max(calls["bib"])
        print(f"DynamoDB calls per bib page: {worst} (must be 1)")

        if args.profile:
            profile(client, again(passes[args.profile]), args.replayed_requests)
        if worst > 1:
            print("FAIL: a bib page made more than one DynamoDB call", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
