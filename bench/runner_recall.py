"""Runner recall on RBNR set 1: does a bib search return every photo of its runner?

Run from the repo root: `.venv/bin/python -m bench.runner_recall [--limit N]`.

Every photo of ../shared/eval-data/rbnr-set1 (read in place, never copied) goes through the
pipeline's own steps - Preprocess, DetectText, IndexFaces, Fanout - against moto's S3 and DynamoDB
and the sandbox's local Rekognition (offline OCR and face engines behind Rekognition's API, over
HTTP, with the app's unchanged boto3 adapter). Then every labelled bib is searched through the
search service, as the API does.

Printed:
- runner recall: of the photos each runner appears in (labels.csv, plus same_runner.csv for the
  photos where the runner is seen without a labelled bib), the share the bib search returns;
  pooled over runners and as a mean per runner; bib matches alone (without face linking) and with
  face matches;
- false photos per search: returned photos the runner is not labelled in. RBNR leaves many visible
  bibs unlabelled, so a bib match in an unlabelled photo is counted apart from a face match there;
- misreads: found bibs one edit from a labelled bib of the same photo (not counting unlabelled
  reads), before and after a start list;
- start-list precision and recall: each photo's searchable bibs against its labels, with the
  labelled bibs as the start list, beside the same figures without a list;
- query-time vs ingest-time face matching: SearchFaces calls, their local latency, and what each
  design would cost at Rekognition's list price.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import threading
import time
from collections import defaultdict
from typing import Any

from sandbox.stage import PROJECT_DIR
from tests.support.aws import MOTO_CONFIG, REGION, STAGE, use_mocked_aws

use_mocked_aws(STAGE, REGION)

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib import clients  # noqa: E402
from chalicelib.adapters.rekognition import Rekognition  # noqa: E402
from chalicelib.domain.bibs import TextDetection, normalise_bib  # noqa: E402
from chalicelib.domain.errors import InvalidBib  # noqa: E402
from chalicelib.domain.model import EventSettings  # noqa: E402
from chalicelib.domain.runners import one_edit  # noqa: E402
from chalicelib.services import events, pipeline, runners, search  # noqa: E402
from chalicelib.services.events import EventGate  # noqa: E402
from sandbox.engines.faces import FaceEngine  # noqa: E402
from sandbox.engines.ocr import OcrEngine  # noqa: E402
from sandbox.rekognition_service import LocalRekognition, make_server  # noqa: E402
from sandbox.resources import create_stage_resources  # noqa: E402

DATA = PROJECT_DIR.parent / "shared" / "eval-data" / "rbnr-set1"
ORG, EVENT = "bench", "rbnr"
# Rekognition's list price for SearchFaces (first million images a month, us-east-1), USD per call.
PRICE_PER_CALL = 0.001


class CachedText(Rekognition):
    """The real adapter; DetectText answers are remembered so the start-list pass reads no text twice."""

    def __init__(self, client: Any, prefix: str) -> None:
        super().__init__(client, prefix)
        self._texts: dict[tuple[str, str], list[TextDetection]] = {}

    def detect_text(self, bucket: str, key: str) -> list[TextDetection]:
        if (bucket, key) not in self._texts:
            self._texts[(bucket, key)] = super().detect_text(bucket, key)
        return self._texts[(bucket, key)]


def read_truth(limit: int) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Return image -> labelled bibs, and bib -> every image its runner appears in."""
    labels: dict[str, set[str]] = defaultdict(set)
    with (DATA / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            labels[row["image"]].add(row["bib_number"].strip())
    images = sorted(labels)[:limit] if limit else sorted(labels)
    labels = defaultdict(set, {image: labels[image] for image in images})
    appears: dict[str, set[str]] = defaultdict(set)
    for image, bibs in labels.items():
        for bib in bibs:
            appears[bib].add(image)
    with (DATA / "same_runner.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["bib_number"] in appears:
                appears[row["bib_number"]] |= {name for name in row["images"].split(";") if name in labels}
    return dict(labels), dict(appears)


def ingest(
    names: list[str], *, rekognition: Rekognition, settings: Any, bucket: str
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Run every photo through the pipeline's steps; return name -> photo dict and -> analysis."""
    table, storage = clients.table(), clients.storage()
    s3 = boto3.client("s3")
    photos, analyses = {}, {}
    for n, name in enumerate(names, start=1):
        key = f"{ORG}/{EVENT}/raw/{name}"
        head = s3.put_object(Bucket=bucket, Key=key, Body=(DATA / name).read_bytes())
        source = {
            "bucket": bucket,
            "key": key,
            "version_id": head.get("VersionId"),
            "etag": head["ETag"].strip('"'),
            "size": (DATA / name).stat().st_size,
            "uploaded_at": "2012-05-01T09:00:00Z",
        }
        photo = pipeline.preprocess(source, storage=storage, table=table, settings=settings)
        analysis = {
            "text": pipeline.detect_text(
                {"photo": photo}, rekognition=rekognition, table=table, settings=settings
            ),
            "faces": pipeline.index_faces(
                {"photo": photo}, rekognition=rekognition, table=table, settings=settings
            ),
        }
        pipeline.fanout(
            {**source, "photo": photo, "analysis": analysis}, table=table, rekognition=rekognition
        )
        photos[name], analyses[name] = photo, {"source": source, **analysis}
        if n % 20 == 0:
            print(f"  ingested {n}/{len(names)}", flush=True)
    return photos, analyses


def searches(
    bibs: list[str], *, rekognition: Rekognition, settings: Any
) -> tuple[dict[str, list[tuple[str, str]]], list[float]]:
    """Search every bib as the API does; return bib -> [(photo_id, match)], and each search's seconds."""
    table = clients.table()
    gate = EventGate(table, ttl=3600)
    found, seconds = {}, []
    for bib in bibs:
        started = time.perf_counter()
        try:
            answer = search.bib_photos(
                ORG,
                EVENT,
                bib,
                limit="100",
                cursor=None,
                table=table,
                gate=gate,
                url_for=lambda item: "",
                settings=settings,
                rekognition=rekognition,
            )
        except InvalidBib:
            found[bib] = []  # not a bib under the event's rules: the runner finds nothing
            continue
        seconds.append(time.perf_counter() - started)
        found[bib] = [(photo["photo_id"], photo["match"]) for photo in answer["photos"]]
    return found, seconds


def recall_lines(
    title: str,
    found: dict[str, list[tuple[str, str]]],
    appears: dict[str, set[str]],
    name_of: dict[str, str],
    labels: dict[str, set[str]],
) -> None:
    """Print runner recall and false photos per search, without and with face matches.

    A bib match in a photo the runner is not labelled in is false only when it is a misread (the
    photo has a labelled bib one edit away): RBNR leaves many visible bibs unlabelled, so other
    such matches are counted apart as unlabelled reads. A face match there is always false.
    """
    for label, kinds in (("without face linking", {"bib"}), ("with face linking   ", {"bib", "face"})):
        hits = total = 0
        shares, misread, unlabelled, false_face = [], 0, 0, 0
        for bib, truth in appears.items():
            returned = {name_of[pid] for pid, match in found[bib] if match in kinds}
            hits += len(returned & truth)
            total += len(truth)
            shares.append(len(returned & truth) / len(truth))
            for pid, match in found[bib]:
                name = name_of[pid]
                if match not in kinds or name in truth:
                    continue
                if match == "face":
                    false_face += 1
                elif any(one_edit(bib, other) for other in labels[name]):
                    misread += 1
                else:
                    unlabelled += 1
        many = [bib for bib in appears if len(appears[bib]) > 1]
        multi_hits = sum(len({name_of[p] for p, m in found[b] if m in kinds} & appears[b]) for b in many)
        multi_total = sum(len(appears[b]) for b in many)
        print(
            f"{title} {label}: runner recall {hits / total:.3f} ({hits}/{total} photos), mean per runner"
            f" {statistics.mean(shares):.3f}; runners seen in several photos {multi_hits / max(1, multi_total):.3f}"
            f" ({multi_hits}/{multi_total}); false photos per search {(misread + false_face) / len(appears):.3f}"
            f" (misread bib matches {misread}, face matches {false_face}, over {len(appears)} searches;"
            f" bib matches in photos without that bib's label, not counted: {unlabelled})"
        )


def reading_lines(title: str, records: dict[str, dict[str, Any]], labels: dict[str, set[str]]) -> None:
    tp = fp = fn = misreads = 0
    for name, truth in labels.items():
        found = set(records[name].get("bibs") or ())
        tp, fp, fn = tp + len(found & truth), fp + len(found - truth), fn + len(truth - found)
        misreads += sum(1 for bib in found - truth if any(one_edit(bib, label) for label in truth))
    print(
        f"{title}: bib precision {tp / max(1, tp + fp):.3f}, recall {tp / max(1, tp + fn):.3f}"
        f" ({tp} found, {fp} unlabelled or wrong, {fn} missed); misreads (one edit from a label of the"
        f" same photo) {misreads}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N labelled images")
    parser.add_argument(
        "--bib-pattern",
        default=None,
        help="the event's own bib pattern (e.g. '[0-9]{1,6}' to admit RBNR's 2-digit bibs); default: the stage's",
    )
    args = parser.parse_args()
    labels, appears = read_truth(args.limit)
    names = sorted(labels)
    clients.cache_clear()
    with mock_aws(config=MOTO_CONFIG):
        resources = create_stage_resources(STAGE, region=REGION)
        settings = clients.settings()
        table = clients.table()
        s3 = boto3.client("s3")

        def read_s3(bucket: str, key: str, version: str | None) -> bytes:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

        service = LocalRekognition(OcrEngine(), FaceEngine(), read_s3)
        server = make_server(service)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        client = boto3.client(
            "rekognition",
            endpoint_url=f"http://127.0.0.1:{server.server_port}",
            region_name=REGION,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        rekognition = CachedText(client, settings.collection_prefix)
        table.put_event(
            ORG,
            EVENT,
            EventSettings(name="RBNR set 1", date="2012-05-01", published=True, bib_pattern=args.bib_pattern),
            now="2012-05-01T00:00:00Z",
        )

        print(
            f"rbnr-set1: {len(names)} photos, {sum(map(len, labels.values()))} labelled bibs, {len(appears)} runners;"
            f" bib pattern {args.bib_pattern or settings.bib_rules.pattern}"
        )
        started = time.perf_counter()
        photos, analyses = ingest(names, rekognition=rekognition, settings=settings, bucket=resources.bucket)
        print(f"ingest: {time.perf_counter() - started:.0f} s through the sandbox engines")
        name_of = {photo["photo_id"]: name for name, photo in photos.items()}
        records = {name: table.photo(ORG, EVENT, photo["photo_id"]) or {} for name, photo in photos.items()}
        faces = sum(len(a["faces"]["face_ids"]) for a in analyses.values())
        links = sum(len(r.get("links") or {}) for r in records.values())
        read = sum(len(r.get("bibs") or ()) for r in records.values())
        print(f"faces indexed {faces}; bibs read {read}; bibs linked to a face {links}")

        before = service.call_counts().get("SearchFaces")
        found, seconds = searches(sorted(appears), rekognition=rekognition, settings=settings)
        rules = events.bib_rules_for(table.event(ORG, EVENT), settings.bib_rules)
        unsearchable = sorted(bib for bib in appears if normalise_bib(bib, rules) != bib)
        print(
            f"labelled bibs these rules cannot search (counted as missed): {len(unsearchable)} {unsearchable}"
        )
        calls = service.call_counts()["SearchFaces"].calls - (before.calls if before else 0)
        reading_lines("no start list", records, labels)
        recall_lines("no start list", found, appears, name_of, labels)
        print(
            f"query-time face matching: {calls} SearchFaces calls for {len(appears)} searches"
            f" ({calls / len(appears):.2f} a search, at most {settings.link_search_faces});"
            f" bib search median {1000 * statistics.median(seconds):.0f} ms, max {1000 * max(seconds):.0f} ms (local engine)"
        )

        # Ingest time instead: every indexed face searched once as it is indexed, so a face seen
        # before or after its bib is found whichever photo comes first.
        face_ids = [face_id for a in analyses.values() for face_id in a["faces"]["face_ids"]]
        started = time.perf_counter()
        for face_id in face_ids:
            rekognition.search_faces(
                ORG,
                EVENT,
                face_id,
                threshold=settings.link_threshold - settings.link_margin,
                max_faces=settings.search_max_faces,
            )
        per_face = (time.perf_counter() - started) / max(1, len(face_ids))
        print(
            f"ingest-time face matching: {len(face_ids)} SearchFaces calls for {len(names)} photos"
            f" ({len(face_ids) / len(names):.2f} a photo), {1000 * per_face:.0f} ms each (local engine), plus an"
            f" index item per match; searches then need no Rekognition call"
        )
        print(
            f"cost at ${PRICE_PER_CALL}/call: query time ${calls * PRICE_PER_CALL:.3f} for these {len(appears)} searches"
            f" (${PRICE_PER_CALL * calls / len(appears):.4f} a search); ingest time ${len(face_ids) * PRICE_PER_CALL:.3f}"
            f" for these {len(names)} photos (${PRICE_PER_CALL * len(face_ids) / len(names):.4f} a photo)."
            f" Query time is cheaper while searches x {calls / len(appears):.2f} < photos x {len(face_ids) / len(names):.2f}"
        )

        # The labelled bibs as the start list; each photo's text read again (cached) and saved again.
        listed = {bib: ["runner", None] for bib in appears}
        table.put_start_list(ORG, EVENT, listed, now="2012-05-01T00:00:00Z")
        corrections = 0
        for name, photo in photos.items():
            analysis = analyses[name]
            text = pipeline.detect_text(
                {"photo": photo}, rekognition=rekognition, table=table, settings=settings
            )
            corrections += len(text["corrections"])
            for fix in text["corrections"]:
                print(
                    f"  {name}: read {fix['read']} corrected to {fix['bib']}; labelled {sorted(labels[name])}"
                )
            event = {
                **analysis["source"],
                "photo": photo,
                "analysis": {"text": text, "faces": analysis["faces"]},
            }
            pipeline.fanout(event, table=table, rekognition=rekognition)
        records = {name: table.photo(ORG, EVENT, photo["photo_id"]) or {} for name, photo in photos.items()}
        unlisted = sum(len(r.get("unlisted_bibs") or ()) for r in records.values())
        print(
            f"start list of the {len(listed)} labelled bibs: {corrections} reads corrected, {unlisted} set aside as unlisted"
        )
        reading_lines("start list   ", records, labels)
        found, _ = searches(sorted(appears), rekognition=rekognition, settings=settings)
        recall_lines("start list   ", found, appears, name_of, labels)
        empty = [bib for bib in appears if not found[bib]]
        suggested = sum(1 for bib in empty if runners.bib_suggestions(ORG, EVENT, bib, table=table))
        print(f"searches finding nothing: {len(empty)}; of those with a suggestion: {suggested}")
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
