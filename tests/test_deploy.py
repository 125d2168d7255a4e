"""The deploy path, verified offline.

- infra/resources.yaml, as written and as deployed (statemachine.json inside), passes cfn-lint;
  statemachine.json itself passes statelint in tests/test_statemachine.py.
- infra.stack deploys it into moto twice in a row, and the bucket, queues, table, state machine
  and alarms are what the app expects (moto skips some of it: sandbox/resources.py applies those
  parts from the same template, and test_what_moto_skips_is_applied_by_the_sandbox keeps that
  list honest).
- `chalice package --stage prod` succeeds and its template passes cfn-lint.
- `chalice deploy --stage prod` runs against moto for everything but the REST API, whose
  Swagger 2.0 definition moto cannot import.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote_plus

import boto3
import pytest

from infra import gateway, stack
from sandbox.resources import (
    DLQ_MAX_RECEIVES,
    MOTO_LACKS_UNUSED,
    MOTO_NATIVE_PROPERTIES,
    MOTO_OVERRIDES,
    MOTO_SKIPS_TYPES,
    UPLOAD_SUFFIXES,
    create_stage_resources,
)
from sandbox.stage import (
    FUNCTION_PLACEHOLDERS,
    PROJECT_DIR,
    function_name,
    render_definition,
    stage_environment,
)
from tests.support.aws import REGION

STAGE = "prod"

# moto warns for each resource type its CloudFormation skips; sandbox/resources.py applies those.
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS")


def _lint(text: str) -> list[str]:
    from cfnlint.api import lint

    return [str(match) for match in lint(text, regions=[REGION])]


@pytest.fixture
def prod(aws):
    return create_stage_resources(STAGE, region=REGION)


# --- the template -------------------------------------------------------------------------------


def test_template_passes_cfn_lint_as_written_and_as_deployed():
    assert _lint(stack.TEMPLATE.read_text()) == []
    # As deployed, it holds statemachine.json, whose ASL cfn-lint validates too (rule E3601).
    assert _lint(stack.template_body()) == []


def test_deployed_template_holds_statemachine_json_and_fits_inline():
    machine = stack.template()["Resources"]["StateMachine"]["Properties"]
    statemachine_json = json.loads((PROJECT_DIR / "statemachine.json").read_text())
    assert json.loads(machine["DefinitionString"]) == statemachine_json
    assert set(machine["DefinitionSubstitutions"]) == set(FUNCTION_PLACEHOLDERS)
    assert len(stack.template_body().encode()) < stack.TEMPLATE_BODY_LIMIT


def test_raw_originals_stay_readable_for_a_configured_number_of_days():
    # The reference system sent raw uploads to Deep Archive at once, so nothing could be
    # reprocessed. Here a stage chooses the delay (at least a day) and the class.
    parameter = stack.template()["Parameters"]["RawArchiveAfterDays"]
    assert parameter["MinValue"] >= 1
    for stage in ("dev", "prod"):
        values = stack.parameters(stage)
        assert int(values["RawArchiveAfterDays"]) >= 1
        assert values["RawArchiveStorageClass"] == "GLACIER_IR"  # millisecond reads: reprocessing works


def _s3_resource_matches(pattern: str, bucket_arn: str, key: str) -> bool:
    """IAM's matching of an object ARN pattern: `*` is any run of characters, "/" included."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, f"{bucket_arn}/{key}") is not None


def test_prod_serves_processed_copies_through_cloudfront_with_origin_access_control():
    template = stack.template()
    resources = template["Resources"]
    # By configuration: prod's stack has the CDN; dev and the sandbox keep presigned URLs.
    assert {stage: stack.parameters(stage).get("Cdn", "false") for stage in ("dev", "prod", "local")} == {
        "dev": "false",
        "prod": "true",
        "local": "false",
    }
    assert template["Conditions"]["HasCdn"] == {"Fn::Equals": [{"Ref": "Cdn"}, "true"]}
    distribution = resources["PhotoCdn"]
    assert distribution["Condition"] == "HasCdn"
    config = distribution["Properties"]["DistributionConfig"]
    (origin,) = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["PhotoBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["PhotoCdnAccessControl", "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # no legacy OAI
    access = resources["PhotoCdnAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (access["OriginAccessControlOriginType"], access["SigningBehavior"]) == ("s3", "always")
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert set(behaviour["AllowedMethods"]) <= {"GET", "HEAD", "OPTIONS"}  # read only
    # Managed-SimpleCORS: the page fetches full images (download) from another origin.
    assert behaviour["ResponseHeadersPolicyId"] == "60669652-455b-4ae9-85a4-c4c02393f86c"
    assert "CacheBehaviors" not in config  # one origin, one behaviour: nothing else to reach
    assert template["Outputs"]["CdnBaseUrl"] == {
        "Condition": "HasCdn",
        "Description": template["Outputs"]["CdnBaseUrl"]["Description"],
        "Value": {"Fn::Sub": "https://${PhotoCdn.DomainName}"},
    }


def test_the_cdn_url_from_the_stack_becomes_the_stages_cdn_base_url(tmp_path):
    (tmp_path / ".chalice").mkdir()
    config = json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text())
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    url = "https://d111111abcdef8.cloudfront.net"
    assert stack.record_cdn_base_url("prod", {"CdnBaseUrl": url, "TableName": "t"}, tmp_path) == url
    assert stack.chalice_config("prod", project_dir=tmp_path).environment_variables["CDN_BASE_URL"] == url
    assert stack.chalice_config("dev", project_dir=tmp_path).environment_variables["CDN_BASE_URL"] == ""
    assert stack.record_cdn_base_url("dev", {"TableName": "t"}, tmp_path) == ""


def test_the_bucket_stays_private_and_the_cdn_reaches_only_processed_keys():
    resources = stack.template()["Resources"]
    block = resources["PhotoBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    assert all(
        block[name]
        for name in ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")
    )
    statements = resources["PhotoBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    cdn = [s["Fn::If"][1] for s in statements if "Fn::If" in s]
    assert all(
        s["Fn::If"][0] == "HasCdn" and s["Fn::If"][2] == {"Ref": "AWS::NoValue"}
        for s in statements
        if "Fn::If" in s
    )
    plain = [s for s in statements if "Fn::If" not in s]
    assert all(s["Effect"] == "Deny" for s in plain)  # no one else is allowed anything
    allow = next(s for s in cdn if s["Effect"] == "Allow")
    deny = next(s for s in cdn if s["Effect"] == "Deny")
    assert allow["Principal"] == deny["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    # Only this stack's distribution: OAC requests carry its ARN as aws:SourceArn.
    assert allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"].endswith("distribution/${PhotoCdn}")

    bucket_arn = "arn:aws:s3:::snaprace-prod-photos-123456789012"

    def reachable(key: str) -> bool:
        matches = {
            effect: _s3_resource_matches(
                statement["Resource"]["Fn::Sub"].replace("${PhotoBucket.Arn}", bucket_arn), bucket_arn, key
            )
            for effect, statement in (("allow", allow), ("deny", deny))
        }
        return matches["allow"] and not matches["deny"]

    photo_id = "01JTGZ2SW8AAAAAAAAAAAAAAAA"
    assert reachable(f"acme/city-10k/processed/{photo_id}.jpg")
    assert reachable(f"acme/city-10k/processed/{photo_id}.grid.webp")
    assert reachable(f"raw/raw/processed/{photo_id}.jpg")  # an organisation and event named "raw"
    assert not reachable("acme/city-10k/raw/IMG_0001.jpg")
    assert not reachable(f"acme/city-10k/raw/tricky/processed/{photo_id}.jpg")  # a raw file name
    assert not reachable("acme/city-10k/uploads.json")


def test_teardown_keeps_the_photos_and_the_table():
    resources = stack.template()["Resources"]
    for name in ("PhotoBucket", "PhotoTable"):
        # Kept on stack deletion; removed only if the stack's own creation rolls back.
        assert resources[name]["DeletionPolicy"] == "RetainExceptOnCreate"
        assert resources[name]["UpdateReplacePolicy"] == "Retain"
    protection = resources["PhotoTable"]["Properties"]["DeletionProtectionEnabled"]
    assert protection == {"Fn::If": ["IsProd", True, False]}


def test_what_moto_skips_is_applied_by_the_sandbox():
    from moto.cloudformation.parsing import get_model_map

    types = {resource["Type"] for resource in stack.template()["Resources"].values()}
    unsupported = types - set(get_model_map())
    # Exactly the unsupported types are applied by sandbox/resources.py: a type moto learns to
    # create, or a new one it cannot, shows up here.
    assert unsupported == set(MOTO_SKIPS_TYPES) | set(MOTO_LACKS_UNUSED)
    assert MOTO_OVERRIDES == {"Cdn": "false"}  # what keeps the CDN's types out of moto
    assert set(MOTO_NATIVE_PROPERTIES) <= types


# --- deployed into moto ---------------------------------------------------------------------


def test_deploys_twice_in_a_row_without_error(prod):
    again = create_stage_resources(STAGE, region=REGION)
    assert again == prod
    (described,) = boto3.client("cloudformation").describe_stacks(StackName=stack.stack_name(STAGE))["Stacks"]
    assert described["StackStatus"] == "UPDATE_COMPLETE"


def test_outputs_are_the_names_the_app_is_configured_with(prod):
    env = stage_environment(STAGE)
    assert prod.bucket == stack.bucket_name(STAGE, prod.account)
    assert prod.table_name == env["TABLE_NAME"]
    assert prod.queue_url.endswith("/" + env["INGEST_QUEUE_NAME"])
    assert prod.dlq_url.endswith("/" + env["INGEST_QUEUE_NAME"] + "-dlq")
    assert prod.state_machine_arn.endswith(":stateMachine:" + env["STATE_MACHINE_NAME"])


def test_every_image_type_in_either_case_reaches_the_ingest_queue_and_nothing_else(prod):
    assert UPLOAD_SUFFIXES == (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".gif")
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    configs = s3.get_bucket_notification_configuration(Bucket=prod.bucket)["QueueConfigurations"]
    assert {c["QueueArn"] for c in configs} == {prod.queue_arn}
    assert all(c["Events"] == ["s3:ObjectCreated:*"] for c in configs)
    suffixes = [rule["Value"] for c in configs for rule in c["Filter"]["Key"]["FilterRules"]]
    assert sorted(suffixes) == sorted(UPLOAD_SUFFIXES + tuple(s.upper() for s in UPLOAD_SUFFIXES))

    for name in ("a.jpg", "b.JPEG", "c.heic", "d.TIFF", "notes.txt", "e.jpg.part"):
        s3.put_object(Bucket=prod.bucket, Key=f"acme/run/raw/{name}", Body=b"x")
    messages = sqs.receive_message(QueueUrl=prod.queue_url, MaxNumberOfMessages=10)["Messages"]
    bodies = [m["Body"] for m in messages]
    keys = sorted(
        unquote_plus(json.loads(b)["Records"][0]["s3"]["object"]["key"])
        for b in bodies
        if "s3:TestEvent" not in b
    )
    assert keys == ["acme/run/raw/a.jpg", "acme/run/raw/b.JPEG", "acme/run/raw/c.heic", "acme/run/raw/d.TIFF"]


def test_bucket_blocks_public_access_encrypts_allows_configured_origins_and_tiers_by_tag(prod):
    s3 = boto3.client("s3")
    block = s3.get_public_access_block(Bucket=prod.bucket)["PublicAccessBlockConfiguration"]
    assert block == dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    encryption = s3.get_bucket_encryption(Bucket=prod.bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert encryption[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (cors,) = s3.get_bucket_cors(Bucket=prod.bucket)["CORSRules"]
    assert cors["AllowedOrigins"] == stage_environment(STAGE)["CORS_ALLOWED_ORIGINS"].split(",")
    assert cors["AllowedMethods"] == ["GET", "HEAD"]

    rules = {r["ID"]: r for r in s3.get_bucket_lifecycle_configuration(Bucket=prod.bucket)["Rules"]}
    raw = rules["raw-originals-to-archive"]
    assert raw["Filter"] == {"Tag": {"Key": "folder", "Value": "raw"}}  # chalicelib.services.ingest.RAW_TAG
    assert raw["Transitions"] == [
        {"Days": int(stack.parameters(STAGE)["RawArchiveAfterDays"]), "StorageClass": "GLACIER_IR"}
    ]
    processed = rules["processed-copies-to-intelligent-tiering"]
    assert processed["Filter"] == {"Tag": {"Key": "folder", "Value": "processed"}}  # pipeline.PROCESSED_TAGS
    assert processed["Transitions"] == [{"Days": 0, "StorageClass": "INTELLIGENT_TIERING"}]


def test_ingest_queue_redrives_to_a_two_week_dead_letter_queue_and_accepts_only_this_bucket(prod):
    sqs = boto3.client("sqs")
    queue = sqs.get_queue_attributes(QueueUrl=prod.queue_url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=prod.dlq_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(queue["RedrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 5}
    assert DLQ_MAX_RECEIVES == 5
    assert int(dlq["MessageRetentionPeriod"]) == 14 * 24 * 3600
    trigger_timeout = stack.chalice_config(STAGE, "on_upload").lambda_timeout
    assert int(queue["VisibilityTimeout"]) >= 6 * trigger_timeout

    (statement,) = json.loads(queue["Policy"])["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage" and statement["Resource"] == prod.queue_arn
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == f"arn:aws:s3:::{prod.bucket}"
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == prod.account


def test_table_has_the_apps_key_schema_on_demand_with_recovery_and_protection(prod):
    from chalicelib.adapters.table import table_definition

    ddb = boto3.client("dynamodb")
    table = ddb.describe_table(TableName=prod.table_name)["Table"]
    expected = table_definition(prod.table_name)
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(expected["AttributeDefinitions"], key=str)
    assert table["KeySchema"] == expected["KeySchema"]
    fields = ("IndexName", "KeySchema", "Projection")
    indexes = [{k: index[k] for k in fields} for index in table["GlobalSecondaryIndexes"]]
    assert indexes == expected["GlobalSecondaryIndexes"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionProtectionEnabled"] is True  # prod only
    backups = ddb.describe_continuous_backups(TableName=prod.table_name)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    dev = create_stage_resources("dev", region=REGION)
    assert ddb.describe_table(TableName=dev.table_name)["Table"]["DeletionProtectionEnabled"] is False


def test_state_machine_is_statemachine_json_with_the_stages_function_arns(prod):
    machine = boto3.client("stepfunctions").describe_state_machine(stateMachineArn=prod.state_machine_arn)
    assert json.loads(machine["definition"]) == json.loads(render_definition(STAGE, REGION, prod.account))
    assert machine["type"] == "STANDARD"
    assert machine["loggingConfiguration"]["level"] == "ERROR"

    # Its role may invoke the app's step functions and nothing else.
    iam = boto3.client("iam")
    role = machine["roleArn"].split("/")[-1]
    trust = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    assert [s["Principal"] for s in trust["Statement"]] == [{"Service": "states.amazonaws.com"}]
    invoke = iam.get_role_policy(RoleName=role, PolicyName="invoke-pipeline-steps")["PolicyDocument"]
    if isinstance(invoke, str):  # moto 5.2 returns a CloudFormation-made inline policy as a Python repr
        invoke = ast.literal_eval(invoke)
    (statement,) = invoke["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    assert sorted(statement["Resource"]) == sorted(
        f"arn:aws:lambda:{REGION}:{prod.account}:function:{function_name(STAGE, name)}"
        for name in FUNCTION_PLACEHOLDERS.values()
    )


def test_alarms_watch_dead_letters_failed_executions_throttling_and_function_errors(prod):
    import app as snaprace

    topic = stack.outputs(STAGE, session=boto3.session.Session(region_name=REGION))["AlarmTopicArn"]
    alarms = {a["AlarmName"]: a for a in boto3.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert set(alarms) == {
        f"snaprace-{STAGE}-{name}"
        for name in (
            "ingest-dead-letters",
            "failed-executions",
            "rekognition-throttled",
            "function-errors",
            "api-errors",
        )
    }
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [topic]
    dead = alarms[f"snaprace-{STAGE}-ingest-dead-letters"]
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": prod.dlq_url.rsplit("/", 1)[1]}]
    failed = alarms[f"snaprace-{STAGE}-failed-executions"]
    assert failed["Dimensions"] == [{"Name": "StateMachineArn", "Value": prod.state_machine_arn}]

    def metrics(alarm):
        return [q["MetricStat"]["Metric"] for q in alarm["Metrics"] if "MetricStat" in q]

    throttled = metrics(alarms[f"snaprace-{STAGE}-rekognition-throttled"])
    assert {(m["MetricName"], m["Dimensions"][0]["Value"]) for m in throttled} == {
        ("ThrottledCount", op) for op in ("DetectText", "IndexFaces", "SearchFacesByImage", "SearchFaces")
    }
    watched = [
        m["Dimensions"][0]["Value"]
        for name in ("function-errors", "api-errors")
        for m in metrics(alarms[f"snaprace-{STAGE}-{name}"])
    ]
    deployed = {function_name(STAGE, f.name) for f in snaprace.app.pure_lambda_functions}
    deployed |= {function_name(STAGE, s.name) for s in snaprace.app.event_sources} | {f"snaprace-{STAGE}"}
    deployed |= {function_name(STAGE, a.name) for a in snaprace.app.builtin_auth_handlers}
    assert sorted(watched) == sorted(deployed)  # every function, once


def test_alarm_address_from_config_is_subscribed(aws, monkeypatch):
    configured = stack.parameters
    monkeypatch.setattr(
        stack, "parameters", lambda stage: {**configured(stage), "AlarmEmail": "ops@example.com"}
    )
    create_stage_resources(STAGE, region=REGION)
    (subscription,) = boto3.client("sns").list_subscriptions()["Subscriptions"]
    assert (subscription["Protocol"], subscription["Endpoint"]) == ("email", "ops@example.com")


def test_delete_removes_the_stack_and_reports_what_is_kept(aws):
    session = boto3.session.Session(region_name=REGION)
    dev = create_stage_resources("dev", region=REGION)
    kept = stack.delete("dev", session=session, poll_seconds=0)
    assert sorted(kept) == sorted(
        [
            f"AWS::S3::Bucket {dev.bucket}",
            f"AWS::DynamoDB::Table {stage_environment('dev')['TABLE_NAME']}",
        ]
    )
    # moto honours only DeletionPolicy Retain, so whether the two are really kept is not checked here.
    with pytest.raises(Exception, match="does not exist"):
        boto3.client("cloudformation").describe_stacks(StackName=stack.stack_name("dev"))


def test_first_deploy_refuses_to_adopt_a_bucket_kept_by_an_earlier_teardown(aws):
    account = boto3.client("sts").get_caller_identity()["Account"]
    boto3.client("s3").create_bucket(Bucket=stack.bucket_name("dev", account))
    with pytest.raises(stack.StackError, match="already exist outside the stack"):
        stack.deploy("dev", session=boto3.session.Session(region_name=REGION), poll_seconds=0)


def test_first_deploy_refuses_a_function_log_group_made_before_the_stack(aws):
    boto3.client("logs").create_log_group(logGroupName="/aws/lambda/snaprace-dev-preprocess")
    with pytest.raises(stack.StackError, match="log group /aws/lambda/snaprace-dev-preprocess"):
        stack.deploy("dev", session=boto3.session.Session(region_name=REGION), poll_seconds=0)


def test_stack_script_deploys_and_tears_down_a_stage(aws, capsys):
    from scripts.stack import main

    assert main(["deploy", "--stage", "dev"]) == 0
    out = capsys.readouterr().out
    assert "next: chalice deploy --stage dev" in out and "presigned S3 URLs" in out
    assert main(["delete", "--stage", "dev"]) == 0
    out = capsys.readouterr().out
    assert "kept, with their data" in out and "aws s3 rb" in out


# --- Chalice's side: package and deploy ------------------------------------------------------


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """`chalice package --stage prod`: a first run downloads Lambda wheels (~30 s); later ones reuse them."""
    out = tmp_path_factory.mktemp("package")
    env = {**os.environ, "AWS_DEFAULT_REGION": REGION}
    chalice = Path(sys.executable).with_name("chalice")
    result = subprocess.run(
        [
            str(chalice),
            "package",
            "--stage",
            STAGE,
            "--merge-template",
            str(gateway.MERGE_TEMPLATE),
            str(out),
        ],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_the_prod_api_merge_template_is_current():
    from scripts.api_template import main

    assert main([]) == 0


def test_prod_api_answers_its_own_413_and_429_in_the_api_shape_with_cors_and_throttles_face_routes(package):
    api = json.loads((package / "sam.json").read_text())["Resources"]["RestAPI"]["Properties"]
    responses = api["GatewayResponses"]
    origin = stage_environment(STAGE)["CORS_ALLOWED_ORIGINS"]
    for response_type, status, code in (
        ("REQUEST_TOO_LARGE", "413", "RequestTooLarge"),
        ("THROTTLED", "429", "TooManyRequests"),
    ):
        answer = responses[response_type]
        assert answer["StatusCode"] == status
        body = json.loads(answer["ResponseTemplates"]["application/json"])
        assert body["error"]["code"] == code and body["error"]["message"]
        headers = answer["ResponseParameters"]["Headers"]
        assert headers["Access-Control-Allow-Origin"] == f"'{origin}'"  # prod's one site
        assert headers["Access-Control-Allow-Headers"] == "'Content-Type'"
    assert responses["THROTTLED"]["ResponseParameters"]["Headers"]["Retry-After"] == "'1'"

    throttles = {(s["ResourcePath"], s["HttpMethod"]): s for s in api["MethodSettings"]}
    for path in ("/events/{org_id}/{event_id}/selfie-search", "/events/{org_id}/{event_id}/face-opt-out"):
        setting = throttles.pop(("/" + path.replace("/", "~1"), "POST"))
        assert 0 < setting["ThrottlingRateLimit"] <= 5 and 0 < setting["ThrottlingBurstLimit"] <= 10
        # The throttled path is one the API has, in the form Chalice's Swagger names it.
        assert path in api["DefinitionBody"]["paths"] and "post" in api["DefinitionBody"]["paths"][path]
    assert throttles == {}


def test_the_package_carries_the_web_pages_files(package):
    import zipfile

    from chalicelib.services import web

    with zipfile.ZipFile(package / "deployment.zip") as deployment:
        names = set(deployment.namelist())
    files = {f"chalicelib/web/{path.name}" for path in web.WEB_DIR.iterdir() if path.is_file()}
    assert files >= {"chalicelib/web/app.js", "chalicelib/web/event.html"}
    assert files <= names


def test_chalice_package_prod_passes_cfn_lint(package):
    sam = (package / "sam.json").read_text()
    assert _lint(sam) == []
    template = json.loads(sam)
    functions = {
        r["Properties"]["Handler"]: r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    }
    on_upload = functions["app.on_upload"]["Properties"]
    (source,) = on_upload["Events"].values()
    queue = stage_environment(STAGE)["INGEST_QUEUE_NAME"]
    assert source["Properties"]["Queue"]["Fn::Sub"].endswith(f":{queue}")
    assert source["Properties"]["BatchSize"] == 1
    # The roles carry the hand-written policies, not generated ones.
    roles = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    documents = [json.dumps(r["Properties"]["Policies"][0]["PolicyDocument"], sort_keys=True) for r in roles]
    files = sorted(PROJECT_DIR.joinpath(".chalice").glob(f"policy-{STAGE}-*.json"))
    assert sorted(documents) == sorted(json.dumps(json.loads(f.read_text()), sort_keys=True) for f in files)


def _load_app(stage: str):
    """app.py imported afresh with a stage's environment, as `chalice deploy` imports it."""
    saved = dict(os.environ)
    os.environ.update(stage_environment(stage))
    try:
        spec = importlib.util.spec_from_file_location(f"snaprace_{stage}_app", PROJECT_DIR / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module.app


def _deployer(config, deployed: dict | None = None):
    """Chalice's default deployer, except: no REST API (moto cannot import Swagger 2.0; its handler
    and authorizer functions are deployed alone), the app
    code without its dependencies (the package test builds those), and the record of what is
    deployed passed in and out instead of kept in .chalice/deployed/."""
    import botocore.session
    from chalice.awsclient import TypedAWSClient
    from chalice.config import DeployedResources
    from chalice.deploy import deployer, models
    from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
    from chalice.deploy.executor import Executor
    from chalice.deploy.packager import AppOnlyDeploymentPackager
    from chalice.deploy.planner import PlanStage, RemoteState
    from chalice.deploy.swagger import TemplatedSwaggerGenerator
    from chalice.deploy.sweeper import ResourceSweeper
    from chalice.policy import AppPolicyGenerator
    from chalice.utils import UI, OSUtils

    class WithoutRestAPI(ApplicationGraphBuilder):
        def build(self, config, stage_name):
            application = super().build(config, stage_name)
            # The REST API's functions (its handler and its authorizers) without the REST API.
            resources = []
            for r in application.resources:
                resources += [r.lambda_function, *r.authorizers] if isinstance(r, models.RestAPI) else [r]
            application.resources = resources
            return application

    client = TypedAWSClient(botocore.session.get_session())
    record = DeployedResources(deployed) if deployed else DeployedResources.empty()
    osutils, ui = OSUtils(), UI(out=io.StringIO(), err=io.StringIO())
    packager = AppOnlyDeploymentPackager(osutils=osutils, dependency_builder=None, ui=ui)
    build = deployer.BuildStage(
        steps=[
            deployer.InjectDefaults(),
            deployer.DeploymentPackager(packager=packager),
            deployer.PolicyGenerator(policy_gen=AppPolicyGenerator(osutils=osutils), osutils=osutils),
            deployer.SwaggerBuilder(swagger_generator=TemplatedSwaggerGenerator()),
            deployer.LambdaEventSourcePolicyInjector(),
            deployer.WebsocketPolicyInjector(),
        ]
    )
    return deployer.Deployer(
        application_builder=WithoutRestAPI(),
        deps_builder=DependencyBuilder(),
        build_stage=build,
        plan_stage=PlanStage(
            osutils=osutils,
            remote_state=RemoteState(client, record),
        ),
        sweeper=ResourceSweeper(),
        executor=Executor(client, ui),
        recorder=deployer.NoopResultsRecorder(osutils=osutils),
    )


def test_chalice_deploy_prod_against_moto_wires_functions_roles_queue_and_state_machine(prod):
    from chalice.config import Config

    config = Config(
        chalice_stage=STAGE,
        user_provided_params={"chalice_app": _load_app(STAGE), "project_dir": str(PROJECT_DIR)},
        config_from_disk=json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text()),
    )
    deployed = _deployer(config).deploy(config, STAGE)
    _deployer(config, deployed).deploy(config, STAGE)  # a second deploy updates in place

    lam, iam = boto3.client("lambda"), boto3.client("iam")
    functions = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
    names = {"api_handler": f"snaprace-{STAGE}"}
    for name in ("on_upload", "event_jobs", "retention", "organiser_token", *FUNCTION_PLACEHOLDERS.values()):
        names[name] = function_name(STAGE, name)
    assert set(functions) == set(names.values())

    env = stage_environment(STAGE)
    for name, deployed in names.items():
        function = functions[deployed]
        assert function["Environment"]["Variables"] == env
        role = function["Role"].split("/")[-1]
        assert role == f"snaprace-{STAGE}-{name}"
        (policy_name,) = iam.list_role_policies(RoleName=role)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        assert document == json.loads((PROJECT_DIR / ".chalice" / f"policy-{STAGE}-{name}.json").read_text())

    # The trigger reads this stage's ingest queue, one message at a time, with the stage's cap.
    (mapping,) = lam.list_event_source_mappings()["EventSourceMappings"]
    assert mapping["EventSourceArn"] == prod.queue_arn
    assert mapping["FunctionArn"] == functions[names["on_upload"]]["FunctionArn"]
    assert mapping["BatchSize"] == 1
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": int(env["INGEST_MAX_CONCURRENCY"])}

    # The state machine's Task states name exactly the functions Chalice created.
    definition = boto3.client("stepfunctions").describe_state_machine(stateMachineArn=prod.state_machine_arn)
    tasks = set(re.findall(r'"Resource":\s*"([^"]+)"', definition["definition"]))
    assert tasks == {functions[names[n]]["FunctionArn"] for n in FUNCTION_PLACEHOLDERS.values()}


def test_api_settings_puts_the_gateway_responses_and_throttles_chalice_deploy_cannot(aws, tmp_path):
    import boto3

    from infra import gateway
    from scripts import api_settings

    client = boto3.client("apigateway", region_name="us-east-1")
    api_id = client.create_rest_api(name="snaprace")["id"]
    root = client.get_resources(restApiId=api_id)["items"][0]["id"]
    client.put_method(restApiId=api_id, resourceId=root, httpMethod="GET", authorizationType="NONE")
    client.put_integration(restApiId=api_id, resourceId=root, httpMethod="GET", type="MOCK")
    client.create_deployment(restApiId=api_id, stageName="api")  # as chalice deploy leaves it
    deployed = tmp_path / ".chalice" / "deployed"
    deployed.mkdir(parents=True)
    (deployed / "prod.json").write_text(
        json.dumps({"resources": [{"name": "rest_api", "resource_type": "rest_api", "rest_api_id": api_id}]})
    )
    assert api_settings.rest_api_id("prod", tmp_path) == api_id
    with pytest.raises(api_settings.NotDeployed):
        api_settings.rest_api_id("dev", tmp_path)

    for _ in range(2):  # a second run changes nothing
        done = api_settings.apply(client, api_id, "api", ["https://runners.example"])
    assert done == {"gateway_responses": len(gateway.GATEWAY_RESPONSES), "throttled_methods": 2}

    responses = {r["responseType"]: r for r in client.get_gateway_responses(restApiId=api_id)["items"]}
    too_large, throttled = responses["REQUEST_TOO_LARGE"], responses["THROTTLED"]
    assert too_large["statusCode"] == "413" and throttled["statusCode"] == "429"
    for response in (too_large, throttled):
        headers = response["responseParameters"]
        assert headers["gatewayresponse.header.Access-Control-Allow-Origin"] == "'https://runners.example'"
        assert json.loads(response["responseTemplates"]["application/json"])["error"]["code"]
    assert throttled["responseParameters"]["gatewayresponse.header.Retry-After"] == "'1'"

    settings = client.get_stage(restApiId=api_id, stageName="api")["methodSettings"]
    selfie = settings["~1events~1{org_id}~1{event_id}~1selfie-search/POST"]
    opt_out = settings["~1events~1{org_id}~1{event_id}~1face-opt-out/POST"]
    assert (selfie["throttlingRateLimit"], selfie["throttlingBurstLimit"]) == (4.0, 8)
    assert (opt_out["throttlingRateLimit"], opt_out["throttlingBurstLimit"]) == (1.0, 2)
    assert len(client.get_deployments(restApiId=api_id)["items"]) == 3  # redeployed each run
