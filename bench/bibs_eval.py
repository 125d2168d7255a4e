"""Bib reading on the labelled race photos, through the pipeline's own steps, offline.

Run from the repo root: `.venv/bin/python -m bench.bibs_eval [--crops] [--verbose] [--limit N]`.

For each labelled image: `imaging.process_image` (the preprocess step's web JPEG) →
`OcrEngine.detect_text` on that JPEG (the sandbox's stand-in for Rekognition DetectText) →
`Rekognition.detect_text`, the adapter the pipeline uses, answered with that response through a
botocore Stubber (which also checks the response against the service model) →
`bibs_from_detections` with the dev stage's BibRules from .chalice/config.json.

Scores, as `python -m sandbox evaluate` computes them: each photo's set of bib strings against its
labelled set (exact match, leading zeros count), true and false positives and misses pooled over
all photos into precision, recall and F1, plus the mean per-photo F1 and the misread-adjusted
precision and F1 (an unlabelled read is a false positive only one edit from a labelled bib).

Datasets (../shared/eval-data, never copied into the repo): rbnr-set1 (labels.csv, one row per
bib); with --crops also bib_racer_crops (one bib per crop, category letter + 4 digits; labels
shorter than 5 characters are partly hidden bibs and left out). A crop's bib is scored without
its letter, as the default rules strip it.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

# The Stubber answers every call, but botocore still wants a region and credentials to build a client.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")

import boto3
from botocore.stub import Stubber

from chalicelib.adapters.rekognition import Rekognition
from chalicelib.config import Settings
from chalicelib.domain.bibs import (
    BibRules,
    bibs_from_detections,
)
from chalicelib.domain.imaging import process_image
from sandbox.engines.ocr import OcrEngine
from sandbox.evaluate import score_bibs
from sandbox.stage import PROJECT_DIR, stage_environment

EVAL_DATA = PROJECT_DIR.parent / "shared" / "eval-data"
MAX_WIDTH = 2048
JPEG_QUALITY = 90
MAX_PIXELS = 120_000_000
BUCKET, KEY = "bench", "processed.jpg"


def rbnr_labels(directory: Path) -> dict[str, set[str]]:
    """Return image name -> labelled bib strings from an RBNR labels.csv."""
    truth: dict[str, set[str]] = defaultdict(set)
    with (directory / "labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            truth[row["image"]].add(row["bib_number"].strip())
    return dict(truth)


def crop_labels(directory: Path) -> dict[str, set[str]]:
    """Return crop path -> {bib digits} for the bib_racer crops whose label is complete."""
    with (directory / "labels.csv").open(newline="") as handle:
        return {row["image"]: {row["digits"]} for row in csv.DictReader(handle) if len(row["label"]) >= 5}


def read_bibs(image: bytes, engine: OcrEngine, rules: BibRules) -> list[str]:
    """Return the bibs the pipeline would store for an uploaded image."""
    processed = process_image(image, max_width=MAX_WIDTH, jpeg_quality=JPEG_QUALITY, max_pixels=MAX_PIXELS)
    response = engine.detect_text(processed.jpeg)
    client = boto3.client("rekognition", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response("detect_text", response, {"Image": {"S3Object": {"Bucket": BUCKET, "Name": KEY}}})
        detections = Rekognition(client, collection_prefix="bench").detect_text(BUCKET, KEY)
    return bibs_from_detections(detections, rules)


def evaluate(name: str, directory: Path, truth: dict[str, set[str]], rules: BibRules, verbose: bool) -> None:
    engine = OcrEngine()
    engine.detect_text(_warm_up_image())  # model loading is not a photo's cost
    found: dict[str, set[str]] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    for image in sorted(truth):
        found[image] = set(read_bibs((directory / image).read_bytes(), engine, rules))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    result = score_bibs(truth, found)  # the same scoring as `python -m sandbox evaluate`
    print(
        f"{name}: {len(truth)} images, precision {result.precision:.3f}, recall {result.recall:.3f},"
        f" F1 {result.f1:.3f} (mean per-photo F1 {result.mean_photo_f1:.3f}); misread-adjusted"
        f" precision {result.adjusted_precision:.3f}, F1 {result.adjusted_f1:.3f};"
        f" {60 * len(truth) / elapsed:.1f} photos/min, {elapsed / len(truth):.2f} s wall and"
        f" {cpu / len(truth):.2f} s CPU per photo"
    )
    if verbose:
        for image in sorted(truth):
            if found[image] != truth[image]:
                print(f"  {image}: labelled {sorted(truth[image])}, found {sorted(found[image])}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crops", action="store_true", help="also score bib_racer_crops")
    parser.add_argument("--verbose", action="store_true", help="list every image read wrong")
    parser.add_argument("--limit", type=int, default=0, help="only the first N images of each set")
    parser.add_argument("--stage", default="dev", help="the stage whose BIB_* settings apply")
    args = parser.parse_args()

    rules = Settings.from_env(stage_environment(args.stage)).bib_rules
    sets = [("rbnr-set1", EVAL_DATA / "rbnr-set1", rbnr_labels)]
    if args.crops:
        sets.append(("bib_racer_crops", EVAL_DATA / "bib_racer_crops", crop_labels))
    for name, directory, labels in sets:
        truth = labels(directory)
        if args.limit:
            truth = dict(sorted(truth.items())[: args.limit])
        evaluate(name, directory, truth, rules, args.verbose)
    return 0


def _warm_up_image() -> bytes:
    import io

    from PIL import Image, ImageDraw

    image = Image.new("RGB", (200, 80), "white")
    ImageDraw.Draw(image).text((20, 20), "1234", fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


if __name__ == "__main__":
    sys.exit(main())
