"""Command line: `python -m sandbox serve | ingest | evaluate | burst` (see README and sandbox.burst)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import boto3

from chalicelib.adapters.table import PhotoTable
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
    serve.add_argument(
        "--aws-port",
        type=int,
        default=DEFAULT_PORTS["aws"],
        help="moto's port (S3, SQS, DynamoDB, Step Functions)",
    )
    serve.add_argument(
        "--rekognition-port",
        type=int,
        default=DEFAULT_PORTS["rekognition"],
        help="the local Rekognition's port",
    )
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
    ingest.add_argument("--api-port", type=int, default=DEFAULT_PORTS["api"])
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
    burst.add_argument(
        "--no-pacing", action="store_true", help="do not tell the app the quota: the unpaced baseline"
    )
    burst.add_argument(
        "--lambda-processes",
        type=int,
        default=None,
        help="worker processes for the app's functions (0: in the sandbox's own process); default 1",
    )

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
    from sandbox.uploads import organiser_token, publish_event

    ports = Ports(aws=args.aws_port, rekognition=args.rekognition_port, api=args.port)
    sandbox = Sandbox(ports=ports, engines=ENGINES[args.engine], quota=args.rekognition_tps)
    print("starting the sandbox (moto, Step Functions, local Rekognition, API)...", file=sys.stderr)
    sandbox.start()
    res = sandbox.resources
    samples = None
    directory = args.photos
    if directory is None and not args.no_samples:
        samples = ensure_samples()
        directory = samples.photos
    publish_event(res.table_name, args.org, args.event)
    token = organiser_token(res.table_name, args.org)
    counts = "no photos ingested"
    bibs: list[str] = []
    if directory is not None:
        report = _upload(directory, sandbox.api_url, token, args.org, args.event, None, timeout=1800.0)
        counts = (
            f"{report.count('PROCESSED')} photos processed, {report.count('FAILED')} failed, "
            f"{len(report.files) - report.count('PROCESSED', 'FAILED')} unaccounted"
        )
        table = PhotoTable(boto3.client("dynamodb"), res.table_name)
        bibs = sorted(
            {bib for record in table.event_records(args.org, args.event) for bib in record.get("bibs", [])}
        )
    base = f"{sandbox.api_url}/events/{args.org}/{args.event}"
    selfie = samples.selfie if samples else Path("selfie.jpg")
    print(f"ready: {counts}")
    print(f"  event page:  {sandbox.api_url}/e/{args.org}/{args.event}  (open it in a browser)")
    print(f"  API:         {sandbox.api_url}  (stage {STAGE})")
    print(f"  S3 endpoint: {sandbox.aws_url}  bucket {res.bucket}")
    print(f"  organiser token for {args.org}: {token}")
    print(
        f"  upload:      python -m scripts.upload FOLDER --org {args.org} --event {args.event} --token {token}"
        f" --api {sandbox.api_url}"
    )
    print(f"  event:       curl '{base}'")
    print(f"  gallery:     curl '{base}/photos?limit=10'")
    print(f"  bib search:  curl '{base}/bibs/{bibs[0] if bibs else '1234'}/photos'")
    print(
        f"  selfie:      curl -X POST -H 'Content-Type: image/jpeg' --data-binary @{selfie} '{base}/selfie-search?consent=true'"
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
    from sandbox.stage import stage_environment
    from sandbox.uploads import organiser_token, publish_event

    os.environ.update(sandbox_environment(Ports(aws=args.aws_port)))
    table = stage_environment(STAGE)["TABLE_NAME"]
    if not args.directory.is_dir():
        print(f"error: {args.directory} is not a folder", file=sys.stderr)
        return 2
    publish_event(table, args.org, args.event)
    token = organiser_token(table, args.org)
    api = f"http://127.0.0.1:{args.api_port}"
    report = _upload(
        args.directory, api, token, args.org, args.event, args.photographer, timeout=args.timeout
    )
    return 0 if report.accounted else 1


def _burst(args: argparse.Namespace) -> int:
    from sandbox.burst import LAMBDA_PROCESSES, run_burst

    if args.photos < 1:
        print("error: --photos must be at least 1", file=sys.stderr)
        return 2
    processes = LAMBDA_PROCESSES if args.lambda_processes is None else args.lambda_processes
    if processes < 0:
        print("error: --lambda-processes must be 0 or more", file=sys.stderr)
        return 2
    quota = args.rekognition_tps
    print(
        f"burst: {args.photos} photos, engine {args.engine},"
        f" quota {quota.describe() if quota else 'unlimited'}, {processes} Lambda worker process(es);"
        " starting a private sandbox...",
        file=sys.stderr,
    )
    result = run_burst(
        args.photos,
        quota=quota,
        engine=args.engine,
        timeout=args.timeout,
        pace=not args.no_pacing,
        lambda_processes=processes,
        out=sys.stderr,
    )
    print(result.summary_line(), flush=True)
    return 0 if not result.lost else 1


def _quota(text: str) -> RateQuota | None:
    try:
        return parse_quota(text, OPERATIONS)
    except InvalidQuota as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _upload(
    directory: Path, api: str, token: str, org: str, event: str, photographer: str | None, *, timeout: float
):
    """Upload a folder as a photographer does (scripts.upload: presigned POSTs through the API)."""
    from scripts import upload

    report = upload.run(
        directory,
        upload.Api(api, token, org, event),
        photographer=photographer,
        workers=4,
        timeout=timeout,
        poll=1.0,
        out=sys.stderr,
    )
    upload.print_summary(report, sys.stdout)
    return report


if __name__ == "__main__":
    sys.exit(main())
