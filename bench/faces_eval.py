"""Measure the offline face engine the way the app searches selfies: recall and false matches.

Run from the repo root: `.venv/bin/python -m bench.faces_eval [--threshold 85] [--rbnr] [--data DIR]`.

faces-dev (identities.csv): every photo is indexed as the pipeline indexes it (the processed copy,
`imaging.process_image(max_width=2048, jpeg_quality=90)`; the faces passing QualityFilter AUTO,
largest first, at most 15). Then EACH photo in turn is the selfie (`imaging.analysis_jpeg(
max_side=1920)`, largest face) against the index of all the OTHER photos of every identity:
matches at or above the threshold are collapsed per photo, as chalicelib.services.search does. Per query:
recall = the share of the identity's other photos found; false matches = photos of other people
found. Reported as the mean over all 45 queries, per identity, and for the first photo of each
identity alone; at the chosen threshold and at 80 / 90 / 99. The exit status is 1 when the target
(recall >= 0.90 with at most 0.05 false matches per query) is missed at the chosen threshold.

--rbnr adds rbnr-set1: every race photo indexed the same way; each runner of same_runner.csv
queried with its own face (the labelled face box matched to a detected face) from each of its
photos against all the other photos. "False" there is an upper bound: a matched photo outside the
runner's list may show the runner with the bib hidden. Also: the labelled-face pair distances
(same runner vs different runners) behind the calibration; the faces-dev selfies searched in this
race's index (nobody there is in faces-dev: every match is false); the selfies against the other
faces-dev photos shrunk until the face is 40-90 px, as in race photos; timing at race-photo sizes.

Times are wall and CPU seconds of this single process (the engine runs one call at a time).
The eval photos are read in place from ../shared/eval-data and never copied.
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from chalicelib.domain import imaging
from sandbox.engines.faces import Face, FaceEngine, distance, distance_for_similarity
from sandbox.stage import PROJECT_DIR

DEFAULT_DATA = PROJECT_DIR.parent / "shared" / "eval-data"
# The app's defaults (chalicelib.config.Settings).
MAX_WIDTH = 2048
JPEG_QUALITY = 90
MAX_PIXELS = 120_000_000
SELFIE_MAX_SIDE = 1920
INDEX_MAX_FACES = 15
QUALITY_FILTER = "AUTO"
REPORTED_THRESHOLDS = (80.0, 85.0, 90.0, 99.0)
TARGET_RECALL = 0.90
TARGET_FALSE_PER_QUERY = 0.05
RACE_FACE_WIDTHS = (40, 60, 90)


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


@dataclass(frozen=True)
class IndexedPhoto:
    name: str
    faces: list[Face]  # the indexed faces, largest first
    width: int
    height: int
    timing: Timing  # process_image + detection
    detect_timing: Timing  # detection and embeddings alone


@dataclass(frozen=True)
class QueryResult:
    query: str
    relevant: frozenset[str]
    best: dict[str, float]  # photo -> best similarity of any indexed face in it

    def hits(self, threshold: float) -> set[str]:
        return {photo for photo, similarity in self.best.items() if similarity >= threshold}

    def recall(self, threshold: float) -> float:
        return len(self.hits(threshold) & self.relevant) / len(self.relevant)

    def false_matches(self, threshold: float) -> int:
        return len(self.hits(threshold) - self.relevant)


def timed(function: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, Timing]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, Timing(time.perf_counter() - wall, time.process_time() - cpu)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def index_photo(engine: FaceEngine, name: str, data: bytes) -> IndexedPhoto:
    """Index one photo as the pipeline does: processed copy, AUTO quality filter, MaxFaces 15."""
    processed, prepare = timed(
        imaging.process_image, data, max_width=MAX_WIDTH, jpeg_quality=JPEG_QUALITY, max_pixels=MAX_PIXELS
    )
    detected, detect = timed(engine.detect, processed.jpeg)
    faces = [face for face in detected if face.passes(QUALITY_FILTER)][:INDEX_MAX_FACES]
    total = Timing(prepare.wall + detect.wall, prepare.cpu + detect.cpu)
    return IndexedPhoto(name, faces, processed.width, processed.height, total, detect)


def selfie_jpeg(data: bytes) -> bytes:
    jpeg, _, _ = imaging.analysis_jpeg(data, max_side=SELFIE_MAX_SIDE, max_pixels=MAX_PIXELS)
    return jpeg


def query_face(engine: FaceEngine, data: bytes) -> tuple[Face | None, Timing]:
    """Return the selfie's largest face as the search service would send it, and the time taken."""

    def run() -> Face | None:
        faces = engine.detect(selfie_jpeg(data))
        return faces[0] if faces else None

    return timed(run)


def search(engine: FaceEngine, face: Face, index: dict[str, IndexedPhoto], exclude: str) -> dict[str, float]:
    """Return photo -> best similarity over the index, leaving out the query's own photo."""
    return {
        name: max(engine.similarity(face, indexed) for indexed in photo.faces)
        for name, photo in index.items()
        if name != exclude and photo.faces
    }


def summarise(results: list[QueryResult], threshold: float) -> tuple[float, float]:
    """Return (mean recall over queries with something to find, mean false matches per query)."""
    recall = statistics.fmean(result.recall(threshold) for result in results if result.relevant)
    false = statistics.fmean(result.false_matches(threshold) for result in results)
    return recall, false


def seconds_line(label: str, timings: list[Timing]) -> str:
    wall = statistics.fmean(t.wall for t in timings)
    cpu = statistics.fmean(t.cpu for t in timings)
    return f"{label}: {wall:.2f} s wall / {cpu:.2f} s CPU per photo = {60 / wall:.0f} photos per minute"


def print_pair_distances(title: str, pairs: list[tuple[bool, float]]) -> None:
    same = sorted(d for is_same, d in pairs if is_same)
    other = sorted(d for is_same, d in pairs if not is_same)
    print(f"\n{title}: {len(same)} same, {len(other)} different")
    if same:
        print(f"    same:      min {same[0]:.3f}  median {statistics.median(same):.3f}  max {same[-1]:.3f}")
    if other:
        print(
            f"    different: min {other[0]:.3f}  1st pct {other[len(other) // 100]:.3f}"
            f"  median {statistics.median(other):.3f}"
        )
    for value in REPORTED_THRESHOLDS:
        cut = distance_for_similarity(value)
        tar = sum(d <= cut for d in same) / len(same) if same else float("nan")
        false = sum(d <= cut for d in other)
        rate = false / len(other) if other else float("nan")
        print(
            f"    at {value:g} (d <= {cut:.3f}): same pairs matched {tar:.3f},"
            f" different pairs matched {rate:.4f} ({false})"
        )


# --- faces-dev ---------------------------------------------------------------------------


def faces_dev(engine: FaceEngine, folder: Path, threshold: float) -> tuple[bool, dict[str, Face | None]]:
    """Print the selfie-search metrics; return whether the target is met, and each photo's selfie face."""
    identity = {row["image"]: row["identity"] for row in read_csv(folder / "identities.csv")}
    names = list(identity)
    print(f"faces-dev: {len(names)} photos of {len(set(identity.values()))} identities from {folder}")

    index = {name: index_photo(engine, name, (folder / name).read_bytes()) for name in names}
    queries: dict[str, Face | None] = {}
    query_timings = []
    for name in names:
        queries[name], timing = query_face(engine, (folder / name).read_bytes())
        query_timings.append(timing)

    results = []
    for name in names:
        relevant = frozenset(other for other in names if other != name and identity[other] == identity[name])
        face = queries[name]
        best = search(engine, face, index, exclude=name) if face is not None else {}
        results.append(QueryResult(name, relevant, best))

    unindexed = [name for name, photo in index.items() if not photo.faces] or "none"
    faceless = [name for name, face in queries.items() if face is None] or "none"
    sizes = [max(photo.width, photo.height) for photo in index.values()]
    print(
        f"  indexed faces: {sum(len(photo.faces) for photo in index.values())} in {len(index)} photos"
        f" ({min(sizes)}-{max(sizes)} px long side); photos with no indexed face: {unindexed};"
        f" selfies with no face: {faceless}"
    )
    photos = list(index.values())
    print("  " + seconds_line("index, detection + embeddings", [photo.detect_timing for photo in photos]))
    print("  " + seconds_line("index, process_image + detection", [photo.timing for photo in photos]))
    print("  " + seconds_line("selfie, analysis_jpeg + detection", query_timings))

    print(
        "\n  each photo in turn as the selfie, against all the other photos"
        " (and, right, the first photo of each identity only):"
    )
    print("  threshold  distance<=  recall  false/query    recall(first)  false/query(first)")
    first_photos = {identity[name]: name for name in reversed(names)}.values()  # each identity's first
    first = [result for result in results if result.query in first_photos]
    for value in sorted({*REPORTED_THRESHOLDS, threshold}):
        recall, false = summarise(results, value)
        first_recall, first_false = summarise(first, value)
        mark = "  <- chosen" if value == threshold else ""
        print(
            f"  {value:9.1f}  {distance_for_similarity(value):10.3f}  {recall:6.3f}  {false:11.3f}"
            f"  {first_recall:15.3f}  {first_false:18.3f}{mark}"
        )

    print(f"\n  per identity at {threshold:g} (mean over its queries):")
    by_identity = defaultdict(list)
    for result in results:
        by_identity[identity[result.query]].append(result)
    for ident, group in sorted(by_identity.items()):
        recall, false = summarise(group, threshold)
        print(f"    {ident}: {len(group)} queries  recall {recall:.3f}  false/query {false:.3f}")
    macro = statistics.fmean(summarise(group, threshold)[0] for group in by_identity.values())
    print(f"    macro-average recall over identities: {macro:.3f}")

    missed = [
        (r.query, photo, r.best.get(photo))
        for r in results
        for photo in sorted(r.relevant - r.hits(threshold))
    ]
    print(f"\n  same-identity photos missed at {threshold:g}: {len(missed)}")
    for query, photo, similarity in missed:
        shown = "no indexed face" if similarity is None else f"similarity {similarity:.1f}"
        print(f"    {query} -> {photo} ({identity[query]}): {shown}")
    for r in results:
        for photo in sorted(r.hits(threshold) - r.relevant):
            print(
                f"    FALSE {r.query} ({identity[r.query]}) -> {photo} ({identity[photo]}):"
                f" similarity {r.best[photo]:.1f}"
            )

    print_pair_distances(
        "  calibration, selfie face vs largest indexed face of every other photo",
        [
            (identity[a] == identity[b], distance(queries[a], index[b].faces[0]))
            for a in names
            for b in names
            if a != b and queries[a] is not None and index[b].faces
        ],
    )

    recall, false = summarise(results, threshold)
    met = recall >= TARGET_RECALL and false <= TARGET_FALSE_PER_QUERY
    target = f"recall >= {TARGET_RECALL} and false/query <= {TARGET_FALSE_PER_QUERY}"
    print(
        f"\n  target at {threshold:g}: {target}: {'met' if met else 'MISSED'}"
        f" (recall {recall:.3f}, false/query {false:.3f})"
    )
    return met, queries


def race_size_faces(engine: FaceEngine, folder: Path, selfies: dict[str, Face | None]) -> None:
    """Print how the selfies match the other faces-dev photos shrunk until the face is race-photo small."""
    identity = {row["image"]: row["identity"] for row in read_csv(folder / "identities.csv")}
    print("\nfaces-dev selfies against the other photos shrunk so the face is as small as in race photos:")
    for width in RACE_FACE_WIDTHS:
        shrunk: dict[str, Face] = {}
        for name, selfie in selfies.items():
            if selfie is None or selfie.width_px <= width:
                continue
            scale = width / selfie.width_px
            with Image.open(io.BytesIO(selfie_jpeg((folder / name).read_bytes()))) as image:
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                small = image.resize(size, Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            small.save(buffer, "JPEG", quality=JPEG_QUALITY)
            faces = [face for face in engine.detect(buffer.getvalue()) if face.passes(QUALITY_FILTER)]
            if faces:
                shrunk[name] = faces[0]
        pairs = [
            (identity[a] == identity[b], distance(selfie, face))
            for a, selfie in selfies.items()
            for b, face in shrunk.items()
            if a != b and selfie is not None
        ]
        same = [d for is_same, d in pairs if is_same]
        other = min(d for is_same, d in pairs if not is_same)
        found = ", ".join(
            f"{value:g}: {sum(d <= distance_for_similarity(value) for d in same) / len(same):.3f}"
            for value in REPORTED_THRESHOLDS
        )
        print(
            f"  face {width} px ({len(shrunk)} of {len(selfies)} photos indexed): same-person pairs"
            f" matched at {found}; different-person min distance {other:.3f}"
        )


# --- rbnr-set1 ---------------------------------------------------------------------------


def rbnr(engine: FaceEngine, folder: Path, threshold: float, selfies: dict[str, Face | None]) -> None:
    """Print the same-runner search, the runner-pair distances, selfie-vs-race and race-size timing."""
    labels = read_csv(folder / "labels.csv")
    runners = {row["bib_number"]: row["images"].split(";") for row in read_csv(folder / "same_runner.csv")}
    names = sorted(path.name for path in folder.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
    print(
        f"\nrbnr-set1: {len(names)} race photos, {len(labels)} labelled bibs,"
        f" {len(runners)} runners seen more than once"
    )

    index = {name: index_photo(engine, name, (folder / name).read_bytes()) for name in names}
    photos = list(index.values())
    print("  " + seconds_line("index, detection + embeddings, 342-720 px", [p.detect_timing for p in photos]))
    print("  " + seconds_line("index, process_image + detection", [p.timing for p in photos]))
    print(
        f"  indexed faces: {sum(len(p.faces) for p in photos)}"
        f" (mean {statistics.fmean(len(p.faces) for p in photos):.1f} per photo)"
    )

    # The labelled face of each (photo, bib), matched to an indexed face by box overlap.
    labelled: dict[tuple[str, str], Face] = {}
    with_face = [row for row in labels if row["face_xmin"] and row["image"] in index]
    for row in with_face:
        width, height = float(row["width"]), float(row["height"])
        box = (
            float(row["face_xmin"]) / width,
            float(row["face_ymin"]) / height,
            float(row["face_xmax"]) / width,
            float(row["face_ymax"]) / height,
        )
        best = max(index[row["image"]].faces, key=lambda face: overlap(box, face), default=None)
        if best is not None and overlap(box, best) >= 0.2:
            labelled[(row["image"], row["bib_number"])] = best
    print(f"  labelled faces indexed (AUTO): {len(labelled)} of {len(with_face)}")

    results = []
    for bib, runner_photos in sorted(runners.items()):
        for photo in runner_photos:
            face = labelled.get((photo, bib))
            if face is not None:
                relevant = frozenset(other for other in runner_photos if other != photo)
                best = search(engine, face, index, exclude=photo)
                results.append(QueryResult(f"{bib}@{photo}", relevant, best))
    print(f"  same-runner queries (a runner's face in one photo against all the others): {len(results)}")
    print("  threshold  recall  false/query (upper bound)")
    for value in sorted({*REPORTED_THRESHOLDS, threshold}):
        recall, false = summarise(results, value)
        print(f"  {value:9.1f}  {recall:6.3f}  {false:11.3f}")

    faces = list(labelled.items())
    print_pair_distances(
        "  calibration, labelled runner faces in different photos",
        [
            (bib_a == bib_b, distance(face_a, face_b))
            for i, ((photo_a, bib_a), face_a) in enumerate(faces)
            for (photo_b, bib_b), face_b in faces[i + 1 :]
            if photo_a != photo_b
        ],
    )

    # The app's own case: a selfie against an event's photos. Nobody in faces-dev ran this race,
    # so every match is false.
    false_per_selfie: dict[float, list[int]] = {value: [] for value in REPORTED_THRESHOLDS}
    impostors = []
    for face in (face for face in selfies.values() if face is not None):
        impostors.extend(distance(face, indexed) for photo in photos for indexed in photo.faces)
        best = search(engine, face, index, exclude="")
        for value in REPORTED_THRESHOLDS:
            false_per_selfie[value].append(sum(similarity >= value for similarity in best.values()))
    impostors.sort()
    print(
        f"\n  faces-dev selfies against this race's index (all different people): {len(impostors)} face"
        f" pairs, min distance {impostors[0]:.3f}, 1st pct {impostors[len(impostors) // 100]:.3f}"
    )
    for value in REPORTED_THRESHOLDS:
        print(f"    at {value:g}: false matches per selfie {statistics.fmean(false_per_selfie[value]):.3f}")

    # Race photos arrive at up to 2048 px: the same scenes upscaled, for the time per photo.
    sample = names[:: max(1, len(names) // 8)][:8]
    timings = []
    for name in sample:
        with Image.open(folder / name) as image:
            large = image.convert("RGB").resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)))
        buffer = io.BytesIO()
        large.save(buffer, "JPEG", quality=JPEG_QUALITY)
        timings.append(index_photo(engine, name, buffer.getvalue()).detect_timing)
    label = f"detection + embeddings at 2048 px wide ({len(sample)} race photos upscaled)"
    print("\n  " + seconds_line(label, timings))


def overlap(box: tuple[float, float, float, float], face: Face) -> float:
    """Intersection over union of a (left, top, right, bottom) box and a face's box, in fractions."""
    right, bottom = face.left + face.width, face.top + face.height
    inter_width = max(0.0, min(box[2], right) - max(box[0], face.left))
    inter = inter_width * max(0.0, min(box[3], bottom) - max(box[1], face.top))
    union = (box[2] - box[0]) * (box[3] - box[1]) + face.width * face.height - inter
    return inter / union if union > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=85.0, help="FaceMatchThreshold (the app's: 85)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the eval-data folder")
    parser.add_argument("--rbnr", action="store_true", help="also run the rbnr-set1 and race-size checks")
    args = parser.parse_args()

    folder = args.data / "faces-dev"
    if not (folder / "identities.csv").is_file():
        sys.exit(f"no faces-dev/identities.csv under {args.data}")
    engine = FaceEngine()
    first = read_csv(folder / "identities.csv")[0]["image"]
    _, load = timed(engine.detect, (folder / first).read_bytes())  # loads the models, outside the timings
    print(f"model load + first detection: {load.wall:.1f} s")
    met, selfies = faces_dev(engine, folder, args.threshold)
    if args.rbnr:
        race_size_faces(engine, folder, selfies)
        rbnr(engine, args.data / "rbnr-set1", args.threshold, selfies)
    if not met:
        sys.exit(1)


if __name__ == "__main__":
    main()
