"""The S3 adapter against moto: header-safe metadata, and presigned URLs reused within half their life."""

from __future__ import annotations

from urllib.parse import unquote

import boto3
import pytest
from botocore.stub import Stubber

from chalicelib.adapters.storage import Storage, ascii_header_value
from chalicelib.domain.errors import ThrottlingException


def test_header_values_are_ascii_and_reversible():
    original = "acme/e1/raw/서울 마라톤 100%.jpg"
    header = ascii_header_value(original)
    assert header.isascii()
    assert unquote(header) == original


def test_metadata_is_stored_header_safe_and_capped(resources):
    storage = Storage(boto3.client("s3"))
    long_key = "acme/e1/raw/" + "서" * 600 + ".jpg"
    storage.put_object(
        resources.bucket,
        "acme/e1/processed/x.jpg",
        b"x",
        content_type="image/jpeg",
        metadata={"original-key": long_key, "photographer": "kim.포토"},
        tags={"folder": "processed"},
    )
    stored = boto3.client("s3").head_object(Bucket=resources.bucket, Key="acme/e1/processed/x.jpg")[
        "Metadata"
    ]
    assert unquote(stored["photographer"]) == "kim.포토"
    assert len(stored["original-key"]) == 1024 and stored["original-key"].isascii()


def test_presigned_urls_are_reused_within_half_their_lifetime(resources):
    client = boto3.client("s3")
    signed = []
    client.meta.events.register("before-sign.s3.GetObject", lambda **kwargs: signed.append(1))
    now = [1_000_000.0]
    storage = Storage(client, clock=lambda: now[0])
    first = storage.presigned_get_url(resources.bucket, "a/b/processed/x.jpg", expires_in=3600)
    now[0] += 60
    assert storage.presigned_get_url(resources.bucket, "a/b/processed/x.jpg", expires_in=3600) == first
    assert len(signed) == 1
    now[0] += 1800  # past half the lifetime: a fresh URL
    storage.presigned_get_url(resources.bucket, "a/b/processed/x.jpg", expires_in=3600)
    storage.presigned_get_url(resources.bucket, "a/b/processed/y.jpg", expires_in=3600)
    assert len(signed) == 3


def test_a_reused_presigned_url_always_has_at_least_half_its_lifetime_left(resources):
    client = boto3.client("s3")
    now = [1_000_000.0]
    signed_at: list[float] = []
    client.meta.events.register("before-sign.s3.GetObject", lambda **kwargs: signed_at.append(now[0]))
    storage = Storage(client, clock=lambda: now[0])
    for _ in range(3 * 60):  # three hours, a request a minute, for one photo
        storage.presigned_get_url(resources.bucket, "a/b/processed/x.jpg", expires_in=3600)
        left = signed_at[-1] + 3600 - now[0]  # the URL handed out is the latest one signed
        assert left >= 1800, f"a URL handed out with {left:.0f} s left"
        now[0] += 60
    assert len(signed_at) <= 7  # still reused: about one signature per half hour


def test_s3_slow_down_is_throttling():
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
        with pytest.raises(ThrottlingException, match="S3 throttled"):
            Storage(client).get_object("photos", "acme/e1/raw/x.jpg", max_bytes=1000)
