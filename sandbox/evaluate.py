"""`python -m sandbox evaluate`: labelled photos through the whole sandbox, and the scores.

Bibs (`--bibs labels.csv`, RBNR format: one row per bib, images beside the CSV): every image is
uploaded through the real upload path; the bibs the pipeline stored on each PHOTO item are compared
with the labelled set. Precision, recall and F1 are pooled over all photos (a photo's set of bib
strings against its labelled set, exact match, leading zeros count); the per-photo average F1 is
printed too.

Faces (`--faces identities.csv`, `image,identity`): every image is ingested into one event; then
each image in turn is the selfie, sent to the API's selfie search. Recall counts the other photos
of the same identity found; a false match is a photo of another identity returned. The query photo
itself is indexed too, so it is left out of its own results (equivalent to "index all others").
"""

from __future__ import annotations

import csv
import json
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from sandbox.runtime import Ports, Sandbox
from sandbox.uploads import Outcome, photo_files, publish_event, upload, wait_for


@dataclass(frozen=True)
class BibScore:
    precision: float
    recall: float
    f1: float
    mean_photo_f1: float
    photos: int
    # Misread-adjusted: RBNR's labels omit many visible bibs, so a read bib that is not labelled
    # counts as a false positive only when it is one edit from a labelled bib of the same photo.
    adjusted_precision: float
    adjusted_f1: float


@dataclass(frozen=True)
class FaceScore:
    recall: float
    false_matches_per_query: float
    queries: int
    failed_queries: int


def score_bibs(truth: dict[str, set[str]], found: dict[str, set[str]]) -> BibScore:
    """Pool per-photo set matches into precision, recall and F1 (and the mean per-photo F1).

    Also the misread-adjusted precision and F1: only the unlabelled reads one edit away from a
    labelled bib of the same photo count as false positives (recall is the same).
    """
    tp = fp = fn = misread = 0
    photo_f1 = []
    for image, labelled in truth.items():
        got = found.get(image, set())
        hits = len(got & labelled)
        tp, fp, fn = tp + hits, fp + len(got - labelled), fn + len(labelled - got)
        misread += sum(1 for bib in got - labelled if any(_one_edit_apart(bib, label) for label in labelled))
        p = hits / len(got) if got else (1.0 if not labelled else 0.0)
        r = hits / len(labelled) if labelled else (1.0 if not got else 0.0)
        photo_f1.append(2 * p * r / (p + r) if p + r else 0.0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    adjusted = tp / (tp + misread) if tp + misread else 0.0
    adjusted_f1 = 2 * adjusted * recall / (adjusted + recall) if adjusted + recall else 0.0
    mean_photo_f1 = sum(photo_f1) / len(photo_f1) if photo_f1 else 0.0
    return BibScore(precision, recall, f1, mean_photo_f1, len(truth), adjusted, adjusted_f1)


def _one_edit_apart(a: str, b: str) -> bool:
    """Return True if one substitution, insertion or deletion turns `a` into `b`."""
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    if abs(len(a) - len(b)) != 1:
        return False
    shorter, longer = sorted((a, b), key=len)
    return any(longer[:i] + longer[i + 1 :] == shorter for i in range(len(longer)))


def score_faces(identities: dict[str, str], results: dict[str, set[str] | None]) -> FaceScore:
    """Recall of same-identity photos and false matches per query; None marks a failed query."""
    found = wanted = false = failed = 0
    for query, matched in results.items():
        same = {image for image, who in identities.items() if who == identities[query] and image != query}
        if matched is None:
            failed += 1
            wanted += len(same)
            continue
        matched = matched - {query}
        found += len(matched & same)
        wanted += len(same)
        false += len(matched - same)
    queries = len(results)
    return FaceScore(found / wanted if wanted else 0.0, false / queries if queries else 0.0, queries, failed)


def run(*, bibs: Path | None, faces: Path | None, verbose: bool = False) -> int:
    """Start a private sandbox on free ports, evaluate, print the figures; return an exit code."""
    with Sandbox(ports=Ports.free()) as sandbox:
        if bibs:
            _evaluate_bibs(sandbox, bibs, verbose)
        if faces:
            _evaluate_faces(sandbox, faces, verbose)
    return 0


def _evaluate_bibs(sandbox: Sandbox, labels: Path, verbose: bool) -> None:
    truth: dict[str, set[str]] = defaultdict(set)
    with labels.open(newline="") as handle:
        for row in csv.DictReader(handle):
            truth[row["image"]].add(row["bib_number"].strip())
    outcome = _ingest(sandbox, labels.parent, "eval", "bibs", only=set(truth))
    found = {Path(key).name: set(item.get("bibs", [])) for key, item in outcome.processed.items()}
    score = score_bibs(truth, found)
    print(
        f"bibs ({labels}): {score.photos} photos, precision {score.precision:.3f}, recall {score.recall:.3f},"
        f" F1 {score.f1:.3f} (mean per-photo F1 {score.mean_photo_f1:.3f}); misread-adjusted"
        f" precision {score.adjusted_precision:.3f}, F1 {score.adjusted_f1:.3f};"
        f" {len(outcome.failed)} failed; {outcome.photos_per_minute:.1f} photos/min"
    )
    if verbose:
        for image in sorted(truth):
            got = found.get(image, set())
            if got != truth[image]:
                print(f"  {image}: labelled {sorted(truth[image])}, found {sorted(got)}")


def _evaluate_faces(sandbox: Sandbox, identities_csv: Path, verbose: bool) -> None:
    with identities_csv.open(newline="") as handle:
        identities = {row["image"]: row["identity"] for row in csv.DictReader(handle)}
    outcome = _ingest(sandbox, identities_csv.parent, "eval", "faces", only=set(identities))
    results: dict[str, set[str] | None] = {}
    started = time.monotonic()
    for image in sorted(identities):
        results[image] = _selfie_search(
            sandbox, "eval", "faces", (identities_csv.parent / image).read_bytes()
        )
        if verbose:
            matched = results[image]
            same = {i for i, who in identities.items() if who == identities[image] and i != image}
            if matched is None:
                print(f"  {image}: query failed")
            elif matched - {image} != same:
                print(
                    f"  {image} ({identities[image]}): missed {sorted(same - matched)},"
                    f" false {sorted((matched - {image}) - same)}"
                )
    score = score_faces(identities, results)
    per_query = (time.monotonic() - started) / max(1, len(identities))
    print(
        f"faces ({identities_csv}): {score.queries} queries, recall {score.recall:.3f},"
        f" false matches per query {score.false_matches_per_query:.3f}, {score.failed_queries} failed queries;"
        f" {len(outcome.failed)} photos failed; {outcome.photos_per_minute:.1f} photos/min ingest,"
        f" {per_query:.2f} s per selfie search"
    )


def _ingest(sandbox: Sandbox, directory: Path, org: str, event: str, only: set[str]) -> Outcome:
    files, _ = photo_files(directory)
    files = [f for f in files if f.name in only]
    res = sandbox.resources
    started = time.monotonic()
    publish_event(res.table_name, org, event)
    keys = upload(files, directory, bucket=res.bucket, org=org, event=event)
    outcome = wait_for(keys, table_name=res.table_name, org=org, event=event, started=started)
    for key, item in sorted(outcome.failed.items()):
        print(f"  FAILED {key}: {item.get('error')}: {item.get('cause')}", file=sys.stderr)
    return outcome


def _selfie_search(sandbox: Sandbox, org: str, event: str, image: bytes) -> set[str] | None:
    request = urllib.request.Request(
        f"{sandbox.api_url}/events/{org}/{event}/selfie-search?consent=true",
        data=image,
        headers={"Content-Type": "application/octet-stream"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        print(f"  selfie search answered {exc.code}: {exc.read()[:200]!r}", file=sys.stderr)
        return None
    return {match["photo"]["original_filename"] for match in body["matches"]}
