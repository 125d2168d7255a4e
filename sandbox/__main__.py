"""Command line: `python -m sandbox serve | ingest | evaluate | burst` (see README and sandbox.burst)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import boto3

from sandbox.quota import ENVIRONMENT_VARIABLE, InvalidQuota, RateQuota, parse_quota, quota_from_environment
from sandbox.rekognition_service import OPERATIONS
from sandbox.runtime import DEFAULT_PORTS, ENGINES, STAGE, Ports, Sandbox, sandbox_environment

_TPS_HELP = (
    "the local Rekognition's requests per second per operation: T (every operation), or"
    " Operation=T,... (e.g. DetectText=5,IndexFaces=5), or both (5,IndexFaces=2);"
    f" default ${ENVIRONMENT_VARIABLE}, else unlimited"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--log-level", default=os.environ.get("SANDBOX_LOG_LEVEL", "WARNING"))
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="start everything, ingest photos, serve until interrupted")
    serve.add_argument("--photos", type=Path, help="folder to ingest (default: the generated sample photos)")
    serve.add_argument("--org", default="demo")
    serve.add_argument("--event", default="city-10k")
    serve.add_argument("--port", type=int, default=DEFAULT_PORTS["api"], help="API port")
    serve.add_argument("--no-samples", action="store_true", help="ingest nothing unless --photos is given")
    serve.add_argument("--rekognition-tps", type=_quota, help=_TPS_HELP)
    serve.add_argument(
        "--engine",
        choices=sorted(ENGINES),
        default="offline",
        help="the local Rekognition's engines (synthetic: reads only the codes synthetic_photo draws)",
    )

    ingest = commands.add_parser("ingest", help="upload a folder into a running sandbox and wait")
    ingest.add_argument("directory", type=Path)
    ingest.add_argument("--org", required=True)
    ingest.add_argument("--event", required=True)
    ingest.add_argument("--photographer")
    ingest.add_argument("--aws-port", type=int, default=DEFAULT_PORTS["aws"])
    ingest.add_argument("--timeout", type=float, default=1800.0)

    evaluate = commands.add_parser(
        "evaluate", help="measure bib reading and selfie search on labelled photos"
    )
    evaluate.add_argument("--bibs", type=Path, help="labels.csv of rbnr-style bib labels")
    evaluate.add_argument("--faces", type=Path, help="identities.csv of faces-dev-style identities")
    evaluate.add_argument("--verbose", action="store_true", help="list every photo the engines got wrong")

    burst = commands.add_parser(
        "burst",
        help="upload N generated photos at once into a private sandbox under a quota; one summary line",
    )
    burst.add_argument("--photos", type=int, required=True, help="how many photos to upload at once")
    burst.add_argument("--rekognition-tps", type=_quota, help=_TPS_HELP)
    burst.add_argument("--engine", choices=sorted(ENGINES), default="synthetic")
    burst.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for every photo")

    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    if args.command in ("serve", "burst") and args.rekognition_tps is None:
        try:
            args.rekognition_tps = quota_from_environment(os.environ, OPERATIONS)
        except InvalidQuota as exc:
            parser.error(f"{ENVIRONMENT_VARIABLE}: {exc}")
    if args.command == "serve":
        return _serve(args)
    if args.command == "ingest":
        return _ingest(args)
    if args.command == "burst":
        return _burst(args)
    from sandbox.evaluate import run as run_evaluation

    if not (args.bibs or args.faces):
        parser.error("evaluate needs --bibs LABELS.csv and/or --faces IDENTITIES.csv")
    return run_evaluation(bibs=args.bibs, faces=args.faces, verbose=args.verbose)


def _serve(args: argparse.Namespace) -> int:
    from sandbox.samples import ensure_samples
    from sandbox.uploads import photo_files, upload, wait_for

    sandbox = Sandbox(ports=Ports(api=args.port), engines=ENGINES[args.engine], quota=args.rekognition_tps)
    print("starting the sandbox (moto, Step Functions, local Rekognition, API)...", file=sys.stderr)
    sandbox.start()
    res = sandbox.resources
    samples = None
    directory = args.photos
    if directory is None and not args.no_samples:
        samples = ensure_samples()
        directory = samples.photos
    counts = "no photos ingested"
    if directory is not None:
        files, skipped = photo_files(directory)
        started = time.monotonic()
        keys = upload(files, directory, bucket=res.bucket, org=args.org, event=args.event)
        outcome = wait_for(keys, table_name=res.table_name, org=args.org, event=args.event, started=started)
        _print_summary(outcome, skipped)
        counts = (
            f"{len(outcome.processed)} photos processed, {len(outcome.failed)} failed,"
            f" {len(outcome.missing)} unaccounted, {outcome.photos_per_minute:.1f} photos/min"
        )
        bibs = sorted({bib for item in outcome.processed.values() for bib in item.get("bibs", [])})
    else:
        bibs = []
    base = f"{sandbox.api_url}/events/{args.org}/{args.event}"
    selfie = samples.selfie if samples else Path("selfie.jpg")
    print(f"ready: {counts}")
    print(f"  API:         {sandbox.api_url}  (stage {STAGE})")
    print(f"  S3 endpoint: {sandbox.aws_url}  bucket {res.bucket}")
    print(
        f"  upload:      aws --endpoint-url {sandbox.aws_url} s3 cp PHOTO.jpg s3://{res.bucket}/{args.org}/{args.event}/raw/"
    )
    print(f"  gallery:     curl '{base}/photos?limit=10'")
    print(f"  bib search:  curl '{base}/bibs/{bibs[0] if bibs else '1234'}/photos'")
    print(
        f"  selfie:      curl -X POST -H 'Content-Type: image/jpeg' --data-binary @{selfie} '{base}/selfie-search'"
    )
    print("serving until interrupted (Ctrl-C)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        sandbox.stop()
    return 0


def _ingest(args: argparse.Namespace) -> int:
    from sandbox.resources import bucket_name
    from sandbox.stage import stage_environment
    from sandbox.uploads import photo_files, upload, wait_for

    os.environ.update(sandbox_environment(Ports(aws=args.aws_port)))
    account = boto3.client("sts").get_caller_identity()["Account"]
    bucket = bucket_name(STAGE, account)
    table = stage_environment(STAGE)["TABLE_NAME"]
    if not args.directory.is_dir():
        print(f"error: {args.directory} is not a folder", file=sys.stderr)
        return 2
    files, skipped = photo_files(args.directory)
    started = time.monotonic()
    keys = upload(
        files, args.directory, bucket=bucket, org=args.org, event=args.event, photographer=args.photographer
    )
    outcome = wait_for(
        keys, table_name=table, org=args.org, event=args.event, timeout=args.timeout, started=started
    )
    _print_summary(outcome, skipped)
    return 0 if not outcome.missing else 1


def _burst(args: argparse.Namespace) -> int:
    from sandbox.burst import run_burst

    if args.photos < 1:
        print("error: --photos must be at least 1", file=sys.stderr)
        return 2
    quota = args.rekognition_tps
    print(
        f"burst: {args.photos} photos, engine {args.engine},"
        f" quota {quota.describe() if quota else 'unlimited'}; starting a private sandbox...",
        file=sys.stderr,
    )
    result = run_burst(args.photos, quota=quota, engine=args.engine, timeout=args.timeout, out=sys.stderr)
    print(result.summary_line(), flush=True)
    return 0 if not result.lost else 1


def _quota(text: str) -> RateQuota | None:
    try:
        return parse_quota(text, OPERATIONS)
    except InvalidQuota as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _print_summary(outcome, skipped) -> None:
    print(
        f"processed {len(outcome.processed)}, failed {len(outcome.failed)}, unaccounted {len(outcome.missing)},"
        f" {outcome.photos_per_minute:.1f} photos/min"
    )
    for key, item in sorted(outcome.failed.items()):
        print(f"  FAILED {key}: {item.get('error')}: {item.get('cause')}")
    for key in outcome.missing:
        print(f"  NOT ACCOUNTED FOR {key}")
    for path, why in skipped:
        print(f"  SKIPPED {path}: {why}")


if __name__ == "__main__":
    sys.exit(main())
