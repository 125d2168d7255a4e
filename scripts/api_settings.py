"""Apply the API Gateway settings `chalice deploy` cannot carry, after it: gateway responses and
per-method throttles.

    .venv/bin/chalice deploy --stage prod
    .venv/bin/python -m scripts.api_settings --stage prod

`chalice package --merge-template infra/api-prod.json` puts the same settings into the packaged
template, but `chalice deploy` ignores merge templates. This command reads the REST API id Chalice
recorded in `.chalice/deployed/{stage}.json` and, from infra/gateway.py (the same source as the merge
template):

- puts every gateway response, so API Gateway's own 401, 403, 404, 413 and 429 answers carry the
  API's JSON error shape and the stage's CORS headers;
- redeploys the API's stage, which gateway responses need to take effect;
- sets the method throttles (selfie search and face opt-out) on that stage.

Running it again changes nothing. `--stage` defaults to prod; other stages get the same responses
(their CORS origins) and throttles.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import boto3

from infra import gateway, stack


class NotDeployed(RuntimeError):
    """The stage has no REST API recorded by `chalice deploy`."""


def rest_api_id(stage: str, project_dir: Path = stack.PROJECT_DIR) -> str:
    """The REST API id `chalice deploy` recorded for `stage`."""
    recorded = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if not recorded.is_file():
        raise NotDeployed(f"{recorded} does not exist: run chalice deploy --stage {stage} first")
    for resource in json.loads(recorded.read_text()).get("resources", []):
        if resource.get("resource_type") == "rest_api":
            return str(resource["rest_api_id"])
    raise NotDeployed(f"{recorded} records no REST API for stage {stage}")


def apply(client: Any, api_id: str, api_stage: str, allowed_origins: list[str]) -> dict[str, int]:
    """Put the gateway responses and method throttles on `api_id`, then redeploy `api_stage`."""
    properties = gateway.merge_template(allowed_origins)["Resources"]["RestAPI"]["Properties"]  # type: ignore[index]
    for response_type, response in properties["GatewayResponses"].items():
        client.put_gateway_response(
            restApiId=api_id,
            responseType=response_type,
            statusCode=response["StatusCode"],
            responseParameters={
                f"gatewayresponse.header.{name}": value
                for name, value in response["ResponseParameters"]["Headers"].items()
            },
            responseTemplates=response["ResponseTemplates"],
        )
    operations = []
    for setting in properties["MethodSettings"]:
        # A stage's method-setting path: the resource path with "/" escaped as "~1", then the method.
        base = f"{setting['ResourcePath']}/{setting['HttpMethod']}"
        operations += [
            {
                "op": "replace",
                "path": f"{base}/throttling/rateLimit",
                "value": str(setting["ThrottlingRateLimit"]),
            },
            {
                "op": "replace",
                "path": f"{base}/throttling/burstLimit",
                "value": str(setting["ThrottlingBurstLimit"]),
            },
        ]
    # Gateway responses take effect with a deployment, stage settings at once. Deploy first: moto,
    # unlike API Gateway, resets a stage's settings when a deployment names it.
    client.create_deployment(
        restApiId=api_id, stageName=api_stage, description="scripts.api_settings: gateway responses"
    )
    client.update_stage(restApiId=api_id, stageName=api_stage, patchOperations=operations)
    return {
        "gateway_responses": len(properties["GatewayResponses"]),
        "throttled_methods": len(operations) // 2,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.api_settings", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stage", default="prod")
    parser.add_argument("--profile", help="AWS profile (default: the environment's credentials)")
    parser.add_argument("--region", help="AWS region (default: AWS_DEFAULT_REGION)")
    args = parser.parse_args(argv)
    config = stack.chalice_config(args.stage)
    origins = [
        origin.strip()
        for origin in config.environment_variables.get("CORS_ALLOWED_ORIGINS", "").split(",")
        if origin.strip()
    ]
    try:
        api_id = rest_api_id(args.stage)
    except NotDeployed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    done = apply(session.client("apigateway"), api_id, config.api_gateway_stage, origins)
    print(
        f"REST API {api_id}, stage {config.api_gateway_stage}: {done['gateway_responses']} gateway responses, "
        f"{done['throttled_methods']} method throttles, redeployed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
