"""Deploy or delete a stage's supporting resources: bucket, queues, table, state machine, alarms.

    .venv/bin/python -m scripts.stack deploy --stage prod    # before `chalice deploy --stage prod`
    .venv/bin/python -m scripts.stack delete --stage prod    # after `chalice delete --stage prod`
    .venv/bin/python -m scripts.stack outputs --stage prod

Credentials and region come from the standard AWS chain (AWS_PROFILE, AWS_DEFAULT_REGION, ...).
The stack is infra/resources.yaml; the names come from .chalice/config.json, the other settings
from infra/stages.json.
"""

from __future__ import annotations

import argparse
import logging
import sys

import boto3

from infra import stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.stack", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["deploy", "delete", "outputs"])
    parser.add_argument("--stage", required=True, help="a stage of .chalice/config.json, e.g. prod")
    parser.add_argument("--region", help="AWS region (default: the AWS CLI's)")
    parser.add_argument("--profile", help="AWS named profile (default: the AWS CLI's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    session = boto3.session.Session(region_name=args.region, profile_name=args.profile)
    if not session.region_name:
        print("error: no region: pass --region or set AWS_DEFAULT_REGION", file=sys.stderr)
        return 2
    name = stack.stack_name(args.stage)
    try:
        if args.command == "deploy":
            print(f"deploying stack {name} in {session.region_name} (a first deploy takes a few minutes)")
            deployed = stack.deploy(args.stage, session=session)
            _print_outputs(deployed)
            cdn = stack.record_cdn_base_url(args.stage, deployed)
            print(
                f"CDN_BASE_URL of stage {args.stage} in .chalice/config.json: {cdn}"
                if cdn
                else f"no CDN on stage {args.stage}: photo URLs are presigned S3 URLs"
            )
            email = stack.parameters(args.stage).get("AlarmEmail")
            print(
                f"alarms go to {email}: confirm the subscription e-mail"
                if email
                else "no AlarmEmail in infra/stages.json: alarms go to the topic only"
            )
            print(f"next: chalice deploy --stage {args.stage}")
        elif args.command == "outputs":
            _print_outputs(stack.outputs(args.stage, session=session))
        else:
            kept = stack.delete(args.stage, session=session)
            print(f"deleted stack {name}")
            _print_kept(kept)
    except stack.StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_outputs(outputs: dict[str, str]) -> None:
    for key, value in sorted(outputs.items()):
        print(f"  {key:24} {value}")


def _print_kept(kept: list[str]) -> None:
    if not kept:
        return
    print("kept, with their data (DeletionPolicy RetainExceptOnCreate):")
    for resource in kept:
        print(f"  {resource}")
    print("Rekognition face collections ({org}-{event}) are the app's, not the stack's: also kept.")
    print("To delete the data too (irreversible):")
    for resource in kept:
        kind, physical_id = resource.split(" ", 1)
        if kind == "AWS::S3::Bucket":
            print(f"  aws s3 rb s3://{physical_id} --force")
        elif kind == "AWS::DynamoDB::Table":
            print(f"  aws dynamodb update-table --table-name {physical_id} --no-deletion-protection-enabled")
            print(f"  aws dynamodb delete-table --table-name {physical_id}")
    print("  aws rekognition list-collections, then aws rekognition delete-collection --collection-id ID")


if __name__ == "__main__":
    sys.exit(main())
