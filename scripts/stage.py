"""Reach a stage's resources from an operator's command: its table, queues, and AWS session.

Stage `local` is the sandbox: its endpoints and dummy credentials come from .chalice/config.json
(as `chalice local --stage local` gets them), or `--endpoint-url` for a sandbox on other ports.
Other stages use the standard AWS credential chain (AWS_PROFILE, AWS_DEFAULT_REGION, ...).
"""

from __future__ import annotations

import argparse
from typing import Any

import boto3

from chalicelib.adapters.table import PhotoTable
from infra import stack

LOCAL = "local"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --stage, --endpoint-url, --region and --profile to a command's parser."""
    parser.add_argument(
        "--stage", default=LOCAL, help="a stage of .chalice/config.json (default: local, the sandbox)"
    )
    parser.add_argument(
        "--endpoint-url", help="the sandbox's AWS endpoint, if not the stage's (e.g. http://127.0.0.1:4566)"
    )
    parser.add_argument("--region", help="AWS region (default: the AWS CLI's; the sandbox's for stage local)")
    parser.add_argument("--profile", help="AWS named profile (not for stage local)")


def environment(stage: str) -> dict[str, str]:
    """The stage's environment variables, as its functions get them."""
    return dict(stack.chalice_config(stage).environment_variables)


def session(args: argparse.Namespace) -> Any:
    """Return a boto3 session for the stage named by the parsed arguments."""
    if args.stage == LOCAL:
        env = environment(LOCAL)
        return _LocalSession(
            endpoint=args.endpoint_url or env["AWS_ENDPOINT_URL"],
            region=args.region or env["AWS_DEFAULT_REGION"],
            key=env["AWS_ACCESS_KEY_ID"],
            secret=env["AWS_SECRET_ACCESS_KEY"],
        )
    return boto3.session.Session(region_name=args.region, profile_name=args.profile)


def table(args: argparse.Namespace) -> PhotoTable:
    """Return the stage's table repository."""
    return PhotoTable(session(args).client("dynamodb"), environment(args.stage)["TABLE_NAME"])


class _LocalSession:
    """A session whose clients all talk to the sandbox."""

    def __init__(self, *, endpoint: str, region: str, key: str, secret: str) -> None:
        self._session = boto3.session.Session(
            aws_access_key_id=key, aws_secret_access_key=secret, region_name=region
        )
        self._endpoint = endpoint
        self.region_name = region

    def client(self, service: str) -> Any:
        return self._session.client(service, endpoint_url=self._endpoint)
