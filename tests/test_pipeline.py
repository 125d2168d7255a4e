"""Pipeline steps as plain functions over moto S3 and DynamoDB."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import unquote

import boto3
import pytest

from chalicelib import pipeline
from chalicelib.config import Settings
from chalicelib.errors import EmptyImage, ImageTooLarge, InvalidKey, RawObjectMissing
from chalicelib.model import RawObject
from chalicelib.storage import Storage
from chalicelib.table import Table
from sandbox.stage import stage_environment
from tests.fakes import FakeRekognition
from tests.workflow_helpers import jpeg_bytes, upload


@pytest.fixture
def settings():
    return Settings.from_env(stage_environment("dev"))


@pytest.fixture
def storage(resources):
    return Storage(boto3.client("s3"))


@pytest.fixture
def table(resources):
    return Table(boto3.client("dynamodb"), resources.table_name, sleep=lambda s: None)


def source(res, key, *, version_id=None, etag="etag-1", uploaded_at="2025-05-04T09:00:00Z"):
    return RawObject(
        bucket=res.bucket, key=key, version_id=version_id, etag=etag, size=1, uploaded_at=uploaded_at
    ).to_dict()


def head(res, key):
    s3 = boto3.client("s3")
    meta = s3.head_object(Bucket=res.bucket, Key=key)
    tags = s3.get_object_tagging(Bucket=res.bucket, Key=key)["TagSet"]
    return meta, {t["Key"]: t["Value"] for t in tags}


def test_preprocess_writes_the_processed_copy_with_metadata_and_tag(resources, storage, settings):
    key = "acme/e1/raw/서울 race+day/IMG 1.jpg"
    upload(resources, key, jpeg_bytes(), {"photographer": "@Kim.Photo"})
    photo = pipeline.preprocess(source(resources, key), storage=storage, settings=settings)

    assert photo["processed_key"] == f"acme/e1/processed/{photo['photo_id']}.jpg"
    assert photo["original_filename"] == "IMG 1.jpg"
    assert photo["photographer"] == "kim.photo"
    assert (photo["width"], photo["height"]) == (320, 240)
    assert photo["captured_at"] == "2025-05-04T09:00:00Z"  # no EXIF: the upload time
    meta, tags = head(resources, photo["processed_key"])
    assert tags == {"folder": "processed"}
    assert meta["ContentType"] == "image/jpeg"
    assert unquote(meta["Metadata"]["original-key"]) == key
    assert meta["Metadata"]["photo-id"] == photo["photo_id"]
    assert meta["Metadata"]["thumb-hash"] == photo["thumbhash"]
    assert meta["Metadata"]["photographer"] == "kim.photo"


def test_preprocess_gives_a_retry_the_same_photo_id(resources, storage, settings):
    key = "acme/e1/raw/IMG_2.jpg"
    upload(resources, key, jpeg_bytes())
    first = pipeline.preprocess(source(resources, key), storage=storage, settings=settings)
    second = pipeline.preprocess(source(resources, key), storage=storage, settings=settings)
    assert first == second


def test_preprocess_reads_the_uploaded_version_even_after_an_overwrite(resources, storage, settings):
    s3 = boto3.client("s3")
    s3.put_bucket_versioning(Bucket=resources.bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "acme/e1/raw/IMG_V.jpg"
    first = s3.put_object(Bucket=resources.bucket, Key=key, Body=jpeg_bytes((320, 240)))["VersionId"]
    s3.put_object(Bucket=resources.bucket, Key=key, Body=jpeg_bytes((200, 100)))
    photo = pipeline.preprocess(source(resources, key, version_id=first), storage=storage, settings=settings)
    assert (photo["width"], photo["height"]) == (320, 240)


def test_preprocess_accepts_the_instagram_handle_metadata(resources, storage, settings):
    key = "acme/e1/raw/IMG_3.jpg"
    upload(resources, key, jpeg_bytes(), {"instagram-handle": "@Runner.Shots", "photographer": "other"})
    assert pipeline.preprocess(source(resources, key), storage=storage, settings=settings)["photographer"] == "runner.shots"


def test_preprocess_of_a_missing_object_is_named(resources, storage, settings):
    with pytest.raises(RawObjectMissing):
        pipeline.preprocess(source(resources, "acme/e1/raw/gone.jpg"), storage=storage, settings=settings)


def test_preprocess_of_an_empty_object_is_named(resources, storage, settings):
    upload(resources, "acme/e1/raw/empty.jpg", b"")
    with pytest.raises(EmptyImage):
        pipeline.preprocess(source(resources, "acme/e1/raw/empty.jpg"), storage=storage, settings=settings)


def test_preprocess_refuses_uploads_over_the_byte_limit(resources, storage, settings):
    from dataclasses import replace

    upload(resources, "acme/e1/raw/big.jpg", jpeg_bytes())
    small = replace(settings, max_upload_bytes=100)
    with pytest.raises(ImageTooLarge, match="over the limit of 100"):
        pipeline.preprocess(source(resources, "acme/e1/raw/big.jpg"), storage=storage, settings=small)


def test_preprocess_refuses_a_key_outside_the_layout(resources, storage, settings):
    with pytest.raises(InvalidKey):
        pipeline.preprocess(source(resources, "acme/e1/processed/x.jpg"), storage=storage, settings=settings)


def test_detect_text_and_index_faces_use_the_processed_copy(resources, storage, settings):
    from chalicelib.bibs import TextDetection

    seen = []
    fake = FakeRekognition(
        text=lambda b, k: seen.append(k) or [TextDetection("B0042", 93.0)],
        faces=lambda b, k: ["a", "b"],
    )
    upload(resources, "acme/e1/raw/IMG_4.jpg", jpeg_bytes())
    photo = pipeline.preprocess(source(resources, "acme/e1/raw/IMG_4.jpg"), storage=storage, settings=settings)
    assert pipeline.detect_text({"photo": photo}, rekognition=fake, settings=settings) == {"bibs": ["0042"], "error": None}
    faces = pipeline.index_faces({"photo": photo}, rekognition=fake, settings=settings)
    assert seen == [photo["processed_key"]]
    assert faces["face_count"] == 2 and len(faces["face_ids"]) == 2
    assert "acme-e1" in fake.collections


def _fanout_event(res, photo, bibs, face_ids=()):
    return {
        **source(res, photo["raw_key"]),
        "photo": photo,
        "analysis": {"text": {"bibs": list(bibs), "error": None}, "faces": {"face_ids": list(face_ids), "error": None}},
    }


def _keys(table):
    ddb = boto3.client("dynamodb")
    return sorted((i["PK"]["S"], i["SK"]["S"]) for i in ddb.scan(TableName=table.name)["Items"])


@pytest.fixture
def photo(resources, storage, settings):
    upload(resources, "acme/e1/raw/IMG_5.jpg", jpeg_bytes())
    return pipeline.preprocess(source(resources, "acme/e1/raw/IMG_5.jpg"), storage=storage, settings=settings)


def test_fanout_twice_writes_the_same_items(resources, table, photo):
    event = _fanout_event(resources, photo, ["1234", "0567"], ["f1"])
    pipeline.fanout(event, table=table)
    first = _keys(table)
    pipeline.fanout(event, table=table)
    assert _keys(table) == first
    assert len(first) == 3


def test_fanout_removes_bib_items_the_photo_no_longer_has(resources, table, photo):
    pipeline.fanout(_fanout_event(resources, photo, ["1234", "0567"]), table=table)
    pipeline.fanout(_fanout_event(resources, photo, ["1234"]), table=table)
    bib_partitions = [pk for pk, sk in _keys(table) if "#BIB#" in pk]
    assert bib_partitions == ["ORG#acme#EVT#e1#BIB#1234"]


def test_fanout_clears_the_failure_an_earlier_run_recorded(resources, table, photo):
    failed = {**source(resources, photo["raw_key"]), "error": {"Error": "ThrottlingException", "Cause": "x"}}
    recorded = pipeline.record_failure(failed, table=table)
    assert ("ORG#acme#EVT#e1", f"FAILED#{recorded['photo_id']}") in _keys(table)
    pipeline.fanout(_fanout_event(resources, photo, []), table=table)
    assert _keys(table) == [("ORG#acme#EVT#e1", f"PHOTO#{photo['photo_id']}")]


def test_record_failure_keeps_the_lambda_error_message(resources, table):
    event = {
        **source(resources, "acme/e1/raw/bad.jpg"),
        "error": {"Error": "CorruptImage", "Cause": '{"errorMessage": "JPEG is truncated", "errorType": "CorruptImage"}'},
    }
    result = pipeline.record_failure(event, table=table, now=lambda: datetime(2025, 5, 4, 10, tzinfo=timezone.utc))
    item = table.get_item("ORG#acme#EVT#e1", f"FAILED#{result['photo_id']}")
    assert item["status"] == "FAILED"
    assert (item["error"], item["cause"]) == ("CorruptImage", "JPEG is truncated")
    assert item["failed_at"] == "2025-05-04T10:00:00Z"
    assert item["raw_key"] == "acme/e1/raw/bad.jpg"
    # The same failing upload always lands on the same record.
    assert pipeline.record_failure(event, table=table)["photo_id"] == result["photo_id"]


def test_record_failure_after_preprocess_uses_the_photo_id_and_a_later_success_clears_it(resources, table, photo):
    event = {**source(resources, photo["raw_key"]), "photo": photo, "error": {"Error": "UnprocessedItemsError", "Cause": "x"}}
    assert pipeline.record_failure(event, table=table)["photo_id"] == photo["photo_id"]
    assert _keys(table) == [("ORG#acme#EVT#e1", f"FAILED#{photo['photo_id']}")]
    pipeline.fanout(_fanout_event(resources, photo, []), table=table)
    assert _keys(table) == [("ORG#acme#EVT#e1", f"PHOTO#{photo['photo_id']}")]


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
