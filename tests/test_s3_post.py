"""S3's POST policy rules in the sandbox (sandbox.s3_post).

The forms are what boto3's generate_presigned_post signs for a photographer's upload: the exact
key, the Content-Type, a content-length-range and the photographer's handle. The checker is tested
on them directly; then moto's server with the gate in front must store the upload the policy allows
and refuse, storing nothing, what S3 refuses.
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import boto3
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import ClientError

from sandbox.s3_post import (
    PostPolicyError,
    check_post_policy,
    install_post_policy_gate,
    parse_post_form,
)

SECRET = "sandbox"  # the local stage's AWS_SECRET_ACCESS_KEY
BUCKET = "snaprace-s3post-photos"
KEY = "demo/city-10k/raw/finish-001.jpg"
PHOTOGRAPHER = "@snap.shooter"
MAX_BYTES = 1024


def s3_client(endpoint_url=None, *, secret=SECRET, signature_version="v4"):
    """An S3 client signing as the app's clients do (SigV4, chalicelib/clients.py)."""
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id="sandbox",
        aws_secret_access_key=secret,
        config=Config(signature_version=signature_version) if signature_version else None,
    )


def presigned_post(
    key=KEY, *, content_type="image/jpeg", expires_in=600, conditions=(), client=None, **client_options
):
    """The presigned POST a photographer gets: exact key and type, size range, photographer."""
    client = client or s3_client(**client_options)
    return client.generate_presigned_post(
        BUCKET,
        key,
        Fields={"Content-Type": content_type, "x-amz-meta-photographer": PHOTOGRAPHER},
        Conditions=[
            {"Content-Type": content_type},
            ["content-length-range", 1, MAX_BYTES],
            {"x-amz-meta-photographer": PHOTOGRAPHER},
            *conditions,
        ],
        ExpiresIn=expires_in,
    )


def check(fields, size=100, *, bucket=BUCKET, now=None, secret=SECRET, allow_sigv2=False):
    check_post_policy(
        fields,
        size,
        bucket,
        now=now or datetime.now(UTC),
        secret_key=secret,
        allow_sigv2=allow_sigv2,
    )


def refusal(fields, size=100, **options) -> PostPolicyError:
    with pytest.raises(PostPolicyError) as raised:
        check(fields, size, **options)
    return raised.value


def signed_form(**changes):
    return {**presigned_post()["fields"], **changes}


# --- the checker -------------------------------------------------------------------------------


def test_accepts_the_form_boto3_signs():
    check(presigned_post()["fields"])


def test_a_content_type_the_policy_does_not_allow_is_access_denied():
    error = refusal(signed_form(**{"Content-Type": "image/png"}))
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert error.message == (
        'Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", "image/jpeg"]'
    )


def test_another_key_is_access_denied():
    error = refusal(signed_form(key="demo/city-10k/raw/someone-else.jpg"))
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert error.message == f'Invalid according to Policy: Policy Condition failed: ["eq", "$key", "{KEY}"]'


def test_another_photographer_is_access_denied():
    error = refusal(signed_form(**{"x-amz-meta-photographer": "@impostor"}))
    assert error.code == "AccessDenied" and "$x-amz-meta-photographer" in error.message


def test_a_file_over_the_range_is_entity_too_large():
    error = refusal(presigned_post()["fields"], MAX_BYTES + 1)
    assert (error.code, error.status) == ("EntityTooLarge", 400)
    assert error.message == "Your proposed upload exceeds the maximum allowed size"
    assert dict(error.extra) == {"ProposedSize": str(MAX_BYTES + 1), "MaxSizeAllowed": str(MAX_BYTES)}


def test_a_file_under_the_range_is_entity_too_small():
    error = refusal(presigned_post()["fields"], 0)
    assert (error.code, error.status) == ("EntityTooSmall", 400)
    assert error.message == "Your proposed upload is smaller than the minimum allowed size"
    assert dict(error.extra) == {"ProposedSize": "0", "MinSizeAllowed": "1"}


def test_the_range_includes_both_bounds():
    fields = presigned_post()["fields"]
    check(fields, 1)
    check(fields, MAX_BYTES)


def test_a_field_no_condition_covers_is_an_extra_input_field():
    error = refusal(signed_form(**{"x-amz-meta-bib": "1234"}))
    assert (error.code, error.status) == ("AccessDenied", 403)
    assert error.message == "Invalid according to Policy: Extra input fields: x-amz-meta-bib"


def test_x_ignore_fields_need_no_condition():
    check(signed_form(**{"x-ignore-upload-id": "42", "X-Ignore-Filename": "IMG_0001.JPG"}))


def test_field_names_match_in_any_case_but_values_do_not():
    fields = presigned_post()["fields"]
    renamed = {name.upper() if name != "policy" else name: value for name, value in fields.items()}
    check(renamed)
    error = refusal({**fields, "Content-Type": "IMAGE/JPEG"})
    assert "Policy Condition failed" in error.message


def test_a_field_a_condition_names_must_be_in_the_form():
    fields = presigned_post()["fields"]
    del fields["x-amz-meta-photographer"]
    error = refusal(fields)
    assert error.message == (
        f'Invalid according to Policy: Policy Condition failed: ["eq", "$x-amz-meta-photographer", "{PHOTOGRAPHER}"]'
    )


def test_starts_with_matches_a_prefix_and_an_empty_prefix_matches_anything():
    post = s3_client().generate_presigned_post(
        BUCKET,
        "demo/city-10k/raw/${filename}",
        Fields={"success_action_status": "201"},
        Conditions=[
            ["starts-with", "$key", "demo/city-10k/raw/"],
            ["starts-with", "$x-amz-meta-photographer", ""],
            {"success_action_status": "201"},
        ],
    )
    check({**post["fields"], "key": "demo/city-10k/raw/a.jpg", "x-amz-meta-photographer": ""})
    check({**post["fields"], "key": "demo/city-10k/raw/a.jpg", "x-amz-meta-photographer": "@anyone"})
    error = refusal({**post["fields"], "key": "demo/other/raw/a.jpg", "x-amz-meta-photographer": ""})
    assert error.message.endswith('["starts-with", "$key", "demo/city-10k/raw/"]')


def test_a_content_type_list_passes_starts_with_only_if_every_item_does():
    post = s3_client().generate_presigned_post(
        BUCKET, KEY, Fields={}, Conditions=[["starts-with", "$Content-Type", "image/"]]
    )
    check({**post["fields"], "Content-Type": "image/jpeg,image/png,image/heic"})
    assert refusal({**post["fields"], "Content-Type": "image/jpeg,text/plain"}).code == "AccessDenied"


def test_starts_with_fails_on_fields_s3_matches_exactly():
    post = s3_client().generate_presigned_post(
        BUCKET, KEY, Fields={}, Conditions=[["starts-with", "$success_action_status", ""]]
    )
    error = refusal({**post["fields"], "success_action_status": "201"})
    assert error.message.endswith('["starts-with", "$success_action_status", ""]')


def test_the_bucket_condition_is_the_bucket_posted_to():
    error = refusal(presigned_post()["fields"], bucket="another-bucket")
    assert error.message.endswith(f'["eq", "$bucket", "{BUCKET}"]')


def test_an_expired_policy_is_access_denied():
    later = datetime.now(UTC) + timedelta(hours=1)
    error = refusal(presigned_post(expires_in=600)["fields"], now=later)
    assert (error.code, error.status, error.message) == (
        "AccessDenied",
        403,
        "Invalid according to Policy: Policy expired.",
    )


def test_a_tampered_signature_does_not_match():
    fields = presigned_post()["fields"]
    tampered = fields["x-amz-signature"][:-1] + ("0" if fields["x-amz-signature"][-1] != "0" else "1")
    error = refusal({**fields, "x-amz-signature": tampered})
    assert (error.code, error.status) == ("SignatureDoesNotMatch", 403)
    assert error.message.startswith("The request signature we calculated does not match")


def test_a_rewritten_policy_does_not_match_its_signature():
    fields = presigned_post()["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    policy["conditions"][1] = ["content-length-range", 1, 10 * MAX_BYTES]
    rewritten = base64.b64encode(json.dumps(policy).encode()).decode()
    assert refusal({**fields, "policy": rewritten}, 5 * MAX_BYTES).code == "SignatureDoesNotMatch"


def test_a_form_signed_with_another_secret_does_not_match():
    assert refusal(presigned_post(secret="not-the-sandbox-secret")["fields"]).code == "SignatureDoesNotMatch"


def test_the_signature_is_not_checked_without_a_secret():
    check(presigned_post(secret="not-the-sandbox-secret")["fields"], secret=None)


def test_a_form_without_a_key_is_an_invalid_argument():
    fields = presigned_post()["fields"]
    del fields["key"]
    error = refusal(fields)
    assert (error.code, error.status) == ("InvalidArgument", 400)
    assert error.message.startswith("Bucket POST must contain a field named 'key'.")


def test_a_policy_without_a_signature_is_an_invalid_argument():
    fields = presigned_post()["fields"]
    del fields["x-amz-signature"]
    error = refusal(fields)
    assert (error.code, error.status) == ("InvalidArgument", 400)
    assert error.message.startswith("Bucket POST must contain a field named 'x-amz-signature'.")


def test_sigv2_forms_are_refused_unless_allowed():
    # boto3's default signer for S3 in us-east-1 and eu-west-1 writes SigV2 forms
    # (AWSAccessKeyId, signature); S3 refuses SigV2 on buckets created after June 2020.
    fields = presigned_post(signature_version=None)["fields"]
    assert "AWSAccessKeyId" in fields and "signature" in fields
    error = refusal(fields)
    assert (error.code, error.status) == ("InvalidRequest", 400)
    assert error.message == (
        "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
    )
    check(fields, allow_sigv2=True)
    other = presigned_post(signature_version=None, secret="not-the-sandbox-secret")["fields"]
    assert refusal(other, allow_sigv2=True).code == "SignatureDoesNotMatch"


SIGV4_FIELDS = {
    "x-amz-algorithm": "AWS4-HMAC-SHA256",
    "x-amz-credential": "sandbox/20260101/us-east-1/s3/aws4_request",
    "x-amz-date": "20260101T000000Z",
    "x-amz-signature": "0",
}


def _unsigned(policy: object) -> dict[str, str]:
    """A form for `policy` whose signature is not checked (the checker is given no secret)."""
    text = policy if isinstance(policy, str) else json.dumps(policy)
    return {"key": KEY, "policy": base64.b64encode(text.encode()).decode(), **SIGV4_FIELDS}


FUTURE = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"key": KEY, "policy": "not base64!", **SIGV4_FIELDS}, "Invalid Policy: Invalid JSON."),
        (_unsigned("{not json"), "Invalid Policy: Invalid JSON."),
        (_unsigned({"conditions": []}), "Invalid Policy: Policy missing expiration."),
        (
            _unsigned({"expiration": "tomorrow", "conditions": []}),
            "Invalid Policy: Invalid 'expiration' value: 'tomorrow'",
        ),
        (_unsigned({"expiration": FUTURE}), "Invalid Policy: Policy missing conditions."),
        (
            _unsigned({"expiration": FUTURE, "conditions": [{"key": KEY, "acl": "private"}]}),
            "Invalid Policy: Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.",
        ),
        (
            _unsigned({"expiration": FUTURE, "conditions": [["ends-with", "$key", ".jpg"]]}),
            "Invalid Policy: Invalid Condition: unknown operation 'ends-with'.",
        ),
    ],
)
def test_a_policy_s3_cannot_read_is_an_invalid_policy_document(fields, message):
    error = refusal(fields, secret=None)
    assert (error.code, error.status, error.message) == ("InvalidPolicyDocument", 400, message)


def test_the_policy_may_use_the_documented_escapes():
    # \/ and \$ as the documentation writes them (JSON itself has no \$ escape).
    conditions = (
        r'[{"key": "demo\/city-10k\/raw\/\$1.jpg"}, ["eq", "\$x-amz-date", "20260101T000000Z"],'
        r' {"x-amz-algorithm": "AWS4-HMAC-SHA256"},'
        r' {"x-amz-credential": "sandbox\/20260101\/us-east-1\/s3\/aws4_request"}]'
    )
    policy = f'{{"expiration": "{FUTURE}", "conditions": {conditions}}}'
    check({**_unsigned(policy), "key": "demo/city-10k/raw/$1.jpg"}, secret=None)


def test_an_error_is_s3s_xml_error_document():
    error = refusal(presigned_post()["fields"], MAX_BYTES + 1)
    document = ET.fromstring(error.to_xml())
    assert document.tag == "Error"
    assert [child.tag for child in document] == ["Code", "Message", "ProposedSize", "MaxSizeAllowed"]
    assert document.findtext("Code") == "EntityTooLarge"


# --- the form ------------------------------------------------------------------------------------


def test_the_form_is_read_up_to_the_file_and_later_fields_are_cut():
    body, content_type = urllib3.encode_multipart_formdata(
        [
            ("key", KEY),
            ("policy", "p"),
            ("file", ("a.jpg", b"\xff\xd8 \r\n--not-a-boundary", "image/jpeg")),
            ("key", "late"),
        ]
    )
    boundary = content_type.split("boundary=")[1]
    form = parse_post_form(body, boundary)
    assert form.fields == {"key": KEY, "policy": "p"}
    assert form.file == b"\xff\xd8 \r\n--not-a-boundary"
    assert b"late" not in form.through_file
    assert parse_post_form(form.through_file, boundary) == form


def test_a_body_that_is_not_multipart_is_a_malformed_post_request():
    with pytest.raises(PostPolicyError, match="not well-formed multipart/form-data") as raised:
        parse_post_form(b"key=a&policy=b", "boundary")
    assert (raised.value.code, raised.value.status) == ("MalformedPOSTRequest", 400)


# --- moto's server with the gate -------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_s3():
    """moto's server on a free port with the gate in front, as the sandbox runs it; one bucket."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    from sandbox.runtime import free_port

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        install_post_policy_gate(server, secret_key=SECRET)
        host, port = server.get_host_and_port()
        s3 = s3_client(f"http://{host}:{port}")
        s3.create_bucket(Bucket=BUCKET)
        yield s3
    finally:
        server.stop()


def upload(post, body, *, fields=None, headers=None, url=None):
    """POST the form as a browser does: the signed fields, then the file last."""
    form = {**(fields if fields is not None else post["fields"]), "file": ("photo.jpg", body, "image/jpeg")}
    return urllib3.request("POST", url or post["url"], fields=form, headers=headers, timeout=30)


def stored(s3, key):
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("404", "NoSuchKey"):
            return False
        raise
    return True


def s3_error(response):
    document = ET.fromstring(response.data)
    return response.status, document.findtext("Code"), document.findtext("Message")


def test_moto_stores_the_upload_the_policy_allows(moto_s3):
    key = "demo/city-10k/raw/allowed.jpg"
    response = upload(presigned_post(key, client=moto_s3), b"\xff\xd8" + b"x" * 100)
    assert response.status == 204, response.data
    head = moto_s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ContentLength"] == 102
    assert head["ContentType"] == "image/jpeg"
    assert head["Metadata"] == {"photographer": PHOTOGRAPHER}


def test_moto_refuses_a_wrong_content_type_and_stores_nothing(moto_s3):
    key = "demo/city-10k/raw/wrong-type.jpg"
    post = presigned_post(key, client=moto_s3)
    response = upload(post, b"GIF89a", fields={**post["fields"], "Content-Type": "image/gif"})
    assert s3_error(response) == (
        403,
        "AccessDenied",
        'Invalid according to Policy: Policy Condition failed: ["eq", "$Content-Type", "image/jpeg"]',
    )
    assert not stored(moto_s3, key)


def test_moto_refuses_a_file_over_the_range_and_stores_nothing(moto_s3):
    key = "demo/city-10k/raw/too-large.jpg"
    response = upload(presigned_post(key, client=moto_s3), b"x" * (MAX_BYTES + 1))
    assert s3_error(response)[:2] == (400, "EntityTooLarge")
    assert ET.fromstring(response.data).findtext("MaxSizeAllowed") == str(MAX_BYTES)
    assert not stored(moto_s3, key)


def test_moto_refuses_another_key_and_stores_nothing(moto_s3):
    post = presigned_post("demo/city-10k/raw/mine.jpg", client=moto_s3)
    other = "demo/city-10k/raw/someone-elses.jpg"
    response = upload(post, b"x" * 10, fields={**post["fields"], "key": other})
    assert s3_error(response)[:2] == (403, "AccessDenied")
    assert not stored(moto_s3, other) and not stored(moto_s3, "demo/city-10k/raw/mine.jpg")


def test_moto_refuses_a_field_the_policy_does_not_list(moto_s3):
    key = "demo/city-10k/raw/extra-field.jpg"
    post = presigned_post(key, client=moto_s3)
    response = upload(post, b"x" * 10, fields={**post["fields"], "acl": "public-read"})
    assert s3_error(response) == (403, "AccessDenied", "Invalid according to Policy: Extra input fields: acl")
    assert not stored(moto_s3, key)


def test_moto_refuses_an_expired_policy(moto_s3):
    key = "demo/city-10k/raw/expired.jpg"
    response = upload(presigned_post(key, client=moto_s3, expires_in=-60), b"x" * 10)
    assert s3_error(response) == (403, "AccessDenied", "Invalid according to Policy: Policy expired.")
    assert not stored(moto_s3, key)


def test_moto_refuses_a_tampered_signature(moto_s3):
    key = "demo/city-10k/raw/tampered.jpg"
    post = presigned_post(key, client=moto_s3)
    signature = post["fields"]["x-amz-signature"]
    tampered = {**post["fields"], "x-amz-signature": signature[::-1]}
    response = upload(post, b"x" * 10, fields=tampered)
    assert s3_error(response)[:2] == (403, "SignatureDoesNotMatch")
    assert not stored(moto_s3, key)


def test_moto_refuses_a_sigv2_form(moto_s3):
    key = "demo/city-10k/raw/sigv2.jpg"
    post = presigned_post(key, client=s3_client(moto_s3.meta.endpoint_url, signature_version=None))
    assert s3_error(upload(post, b"x" * 10))[:2] == (400, "InvalidRequest")
    assert not stored(moto_s3, key)


def test_moto_checks_virtual_host_style_posts_too(moto_s3):
    key = "demo/city-10k/raw/virtual-host.jpg"
    post = presigned_post(key, client=moto_s3)
    port = moto_s3.meta.endpoint_url.rsplit(":", 1)[1]
    root = f"{moto_s3.meta.endpoint_url}/"
    headers = {"Host": f"{BUCKET}.localhost:{port}"}
    wrong = upload(
        post, b"x" * 10, fields={**post["fields"], "Content-Type": "image/png"}, headers=headers, url=root
    )
    assert s3_error(wrong)[:2] == (403, "AccessDenied")
    assert not stored(moto_s3, key)
    assert upload(post, b"x" * 10, headers=headers, url=root).status == 204
    assert stored(moto_s3, key)


def test_requests_without_a_policy_pass_through(moto_s3):
    moto_s3.put_object(Bucket=BUCKET, Key="demo/city-10k/raw/put.jpg", Body=b"x")
    anonymous = upload({"url": f"{moto_s3.meta.endpoint_url}/{BUCKET}", "fields": {"key": "anon.jpg"}}, b"x")
    assert anonymous.status == 204  # moto's own answer: no policy, so nothing for the gate to check
    keys = {item["Key"] for item in moto_s3.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert {"demo/city-10k/raw/put.jpg", "anon.jpg"} <= keys


def test_fields_after_the_file_do_not_reach_moto(moto_s3):
    key = "demo/city-10k/raw/late-fields.jpg"
    post = presigned_post(key, client=moto_s3)
    body, content_type = urllib3.encode_multipart_formdata(
        [*post["fields"].items(), ("file", ("photo.jpg", b"x" * 10, "image/jpeg")), ("key", "late.jpg")]
    )
    response = urllib3.request("POST", post["url"], body=body, headers={"Content-Type": content_type})
    assert response.status == 204, response.data
    assert stored(moto_s3, key) and not stored(moto_s3, "late.jpg")


def test_error_bodies_are_xml_with_the_error_status(moto_s3):
    response = upload(presigned_post(client=moto_s3), b"")
    assert response.status == 400 and response.headers["Content-Type"] == "application/xml"
    assert re.match(
        rb'<\?xml version="1.0" encoding="UTF-8"\?>\n<Error><Code>EntityTooSmall</Code>', response.data
    )
