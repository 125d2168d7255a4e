"""Pipeline steps as plain functions over moto S3 and DynamoDB."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime

import boto3
import pytest
from PIL import Image
from thumbhash import thumbhash_to_image

from chalicelib.adapters.storage import Storage
from chalicelib.adapters.table import PhotoTable
from chalicelib.config import Settings
from chalicelib.domain.errors import EmptyImage, ImageTooLarge, InvalidKey, RawObjectMissing
from chalicelib.domain.model import RawObject
from chalicelib.services import pipeline
from sandbox.stage import stage_environment
from tests.support.fakes import FakeRekognition
from tests.support.workflow import jpeg_bytes, upload


@pytest.fixture
def settings():
    return Settings.from_env(stage_environment("dev"))


@pytest.fixture
def storage(resources):
    return Storage(boto3.client("s3"))


def source(res, key, *, version_id=None, etag="etag-1", uploaded_at="2025-05-04T09:00:00Z"):
    return RawObject(
        bucket=res.bucket, key=key, version_id=version_id, etag=etag, size=1, uploaded_at=uploaded_at
    ).to_dict()


def head(res, key):
    s3 = boto3.client("s3")
    meta = s3.head_object(Bucket=res.bucket, Key=key)
    tags = s3.get_object_tagging(Bucket=res.bucket, Key=key)["TagSet"]
    return meta, {t["Key"]: t["Value"] for t in tags}


def test_preprocess_writes_the_processed_copy_with_metadata_and_tag(resources, storage, table, settings):
    key = "acme/e1/raw/서울 race+day/IMG 1.jpg"
    upload(resources, key, jpeg_bytes(), {"photographer": "@Kim.Photo"})
    photo = pipeline.preprocess(source(resources, key), storage=storage, table=table, settings=settings)

    assert photo["processed_key"] == f"acme/e1/processed/{photo['photo_id']}.jpg"
    assert photo["original_filename"] == "IMG 1.jpg"
    assert photo["photographer"] == "kim.photo"
    assert (photo["width"], photo["height"]) == (320, 240)
    assert photo["captured_at"] == "2025-05-04T09:00:00Z"  # no EXIF: the upload time
    meta, tags = head(resources, photo["processed_key"])
    assert tags == {"folder": "processed"}
    assert meta["ContentType"] == "image/jpeg"
    assert meta["Metadata"] == {
        "photo-id": photo["photo_id"],
        "thumb-hash": photo["thumbhash"],
        "photographer": "kim.photo",
    }
    assert meta["CacheControl"] == "public, max-age=31536000, immutable"


def test_preprocess_writes_a_grid_rendition_next_to_the_processed_copy(resources, storage, table, settings):
    key = "acme/e1/raw/IMG_G.jpg"
    upload(resources, key, jpeg_bytes(size=(1600, 1200)))
    photo = pipeline.preprocess(source(resources, key), storage=storage, table=table, settings=settings)

    assert photo["grid_key"] == f"acme/e1/processed/{photo['photo_id']}.grid.webp"
    meta, tags = head(resources, photo["grid_key"])
    assert tags == {"folder": "processed"} and meta["ContentType"] == "image/webp"
    assert meta["CacheControl"] == "public, max-age=31536000, immutable"
    assert "original-key" not in meta["Metadata"]
    body = boto3.client("s3").get_object(Bucket=resources.bucket, Key=photo["grid_key"])["Body"].read()
    grid = Image.open(io.BytesIO(body))
    assert (grid.format, grid.size) == ("WEBP", (512, 384))
    full = boto3.client("s3").get_object(Bucket=resources.bucket, Key=photo["processed_key"])["Body"].read()
    assert len(body) < len(full) / 3


def test_the_photos_thumbhash_decodes_to_a_preview_of_its_shape_and_colour(
    resources, storage, table, settings
):
    key = "acme/e1/raw/IMG_3.jpg"
    upload(resources, key, jpeg_bytes((320, 160), colour=(200, 120, 40)))
    photo = pipeline.preprocess(source(resources, key), storage=storage, table=table, settings=settings)

    preview = thumbhash_to_image(base64.b64decode(photo["thumbhash"], validate=True)).convert("RGB")

    assert 1.6 < preview.width / preview.height < 2.4  # ThumbHash keeps the ratio roughly
    red, green, blue = preview.getpixel((preview.width // 2, preview.height // 2))
    assert red > green > blue  # the photo's orange, not a grey placeholder


def test_preprocess_gives_a_retry_the_same_photo_id(resources, storage, table, settings):
    key = "acme/e1/raw/IMG_2.jpg"
    upload(resources, key, jpeg_bytes())
    first = pipeline.preprocess(source(resources, key), storage=storage, table=table, settings=settings)
    second = pipeline.preprocess(source(resources, key), storage=storage, table=table, settings=settings)
    assert first == second


def test_preprocess_reads_the_uploaded_version_even_after_an_overwrite(resources, storage, table, settings):
    s3 = boto3.client("s3")
    s3.put_bucket_versioning(Bucket=resources.bucket, VersioningConfiguration={"Status": "Enabled"})
    key = "acme/e1/raw/IMG_V.jpg"
    first = s3.put_object(Bucket=resources.bucket, Key=key, Body=jpeg_bytes((320, 240)))["VersionId"]
    s3.put_object(Bucket=resources.bucket, Key=key, Body=jpeg_bytes((200, 100)))
    photo = pipeline.preprocess(
        source(resources, key, version_id=first), storage=storage, table=table, settings=settings
    )
    assert (photo["width"], photo["height"]) == (320, 240)


def test_preprocess_accepts_the_instagram_handle_metadata(resources, storage, table, settings):
    key = "acme/e1/raw/IMG_3.jpg"
    upload(resources, key, jpeg_bytes(), {"instagram-handle": "@Runner.Shots", "photographer": "other"})
    assert (
        pipeline.preprocess(source(resources, key), storage=storage, table=table, settings=settings)[
            "photographer"
        ]
        == "runner.shots"
    )


def test_preprocess_of_a_missing_object_is_named(resources, storage, table, settings):
    with pytest.raises(RawObjectMissing):
        pipeline.preprocess(
            source(resources, "acme/e1/raw/gone.jpg"), storage=storage, table=table, settings=settings
        )


def test_preprocess_of_an_empty_object_is_named(resources, storage, table, settings):
    upload(resources, "acme/e1/raw/empty.jpg", b"")
    with pytest.raises(EmptyImage):
        pipeline.preprocess(
            source(resources, "acme/e1/raw/empty.jpg"), storage=storage, table=table, settings=settings
        )


def test_preprocess_refuses_uploads_over_the_byte_limit(resources, storage, table, settings):
    from dataclasses import replace

    upload(resources, "acme/e1/raw/big.jpg", jpeg_bytes())
    small = replace(settings, max_upload_bytes=100)
    with pytest.raises(ImageTooLarge, match="over the limit of 100"):
        pipeline.preprocess(
            source(resources, "acme/e1/raw/big.jpg"), storage=storage, table=table, settings=small
        )


def test_preprocess_refuses_a_key_outside_the_layout(resources, storage, table, settings):
    with pytest.raises(InvalidKey):
        pipeline.preprocess(
            source(resources, "acme/e1/processed/x.jpg"), storage=storage, table=table, settings=settings
        )


def test_detect_text_and_index_faces_use_the_processed_copy(resources, storage, table, settings):
    from chalicelib.domain.bibs import TextDetection

    seen = []
    fake = FakeRekognition(
        text=lambda b, k: seen.append(k) or [TextDetection("B0042", 93.0)],
        faces=lambda b, k: ["a", "b"],
    )
    upload(resources, "acme/e1/raw/IMG_4.jpg", jpeg_bytes())
    photo = pipeline.preprocess(
        source(resources, "acme/e1/raw/IMG_4.jpg"), storage=storage, table=table, settings=settings
    )
    assert pipeline.detect_text({"photo": photo}, rekognition=fake, table=table, settings=settings) == {
        "bibs": ["0042"],
        "reads": [{"bib": "0042", "box": None}],
        "unlisted_bibs": [],
        "corrections": [],
        "error": None,
    }
    faces = pipeline.index_faces({"photo": photo}, rekognition=fake, table=table, settings=settings)
    assert seen == [photo["processed_key"]]
    assert faces["face_count"] == 2 and len(faces["face_ids"]) == 2
    assert ("acme", "e1") in fake.collections


def _fanout_event(res, photo, bibs, face_ids=()):
    return {
        **source(res, photo["raw_key"]),
        "photo": photo,
        "analysis": {
            "text": {"bibs": list(bibs), "error": None},
            "faces": {"face_ids": list(face_ids), "error": None},
        },
    }


def _snapshot(table):
    """Every item in the table, whole and in a stable order."""
    items = boto3.client("dynamodb").scan(TableName=table.name)["Items"]
    return sorted(json.dumps(item, sort_keys=True) for item in items)


def _records(table):
    return sorted((r["status"], r["photo_id"]) for r in table.event_records("acme", "e1"))


@pytest.fixture
def photo(resources, storage, table, settings):
    upload(resources, "acme/e1/raw/IMG_5.jpg", jpeg_bytes())
    return pipeline.preprocess(
        source(resources, "acme/e1/raw/IMG_5.jpg"), storage=storage, table=table, settings=settings
    )


def test_fanout_twice_writes_the_same_items(resources, table, photo):
    event = _fanout_event(resources, photo, ["1234", "0567"], ["f1"])
    pipeline.fanout(event, table=table, rekognition=FakeRekognition())
    first = _snapshot(table)
    pipeline.fanout(event, table=table, rekognition=FakeRekognition())
    assert _snapshot(table) == first
    for bib in ("1234", "0567"):
        assert [p["photo_id"] for p in table.bib_page("acme", "e1", bib, limit=5).items] == [
            photo["photo_id"]
        ]
    assert table.event("acme", "e1") is None or table.event("acme", "e1")["photo_count"] == 1


def test_fanout_removes_bib_items_the_photo_no_longer_has(resources, table, photo):
    pipeline.fanout(
        _fanout_event(resources, photo, ["1234", "0567"]), table=table, rekognition=FakeRekognition()
    )
    pipeline.fanout(_fanout_event(resources, photo, ["1234"]), table=table, rekognition=FakeRekognition())
    assert table.bib_page("acme", "e1", "0567", limit=5).items == []
    assert [p["photo_id"] for p in table.bib_page("acme", "e1", "1234", limit=5).items] == [photo["photo_id"]]


def test_fanout_clears_the_failure_an_earlier_run_recorded(resources, table, photo):
    failed = {**source(resources, photo["raw_key"]), "error": {"Error": "ThrottlingException", "Cause": "x"}}
    recorded = pipeline.record_failure(failed, table=table)
    assert table.failure("acme", "e1", recorded["photo_id"]) is not None
    pipeline.fanout(_fanout_event(resources, photo, []), table=table, rekognition=FakeRekognition())
    assert _records(table) == [("PROCESSED", photo["photo_id"])]


def test_record_failure_keeps_the_lambda_error_message(resources, table):
    event = {
        **source(resources, "acme/e1/raw/bad.jpg"),
        "error": {
            "Error": "CorruptImage",
            "Cause": '{"errorMessage": "JPEG is truncated", "errorType": "CorruptImage"}',
        },
    }
    result = pipeline.record_failure(event, table=table, now=lambda: datetime(2025, 5, 4, 10, tzinfo=UTC))
    item = table.failure("acme", "e1", result["photo_id"])
    assert item["status"] == "FAILED"
    assert (item["error"], item["cause"]) == ("CorruptImage", "JPEG is truncated")
    assert item["failed_at"] == "2025-05-04T10:00:00Z"
    assert item["raw_key"] == "acme/e1/raw/bad.jpg"
    # The same failing upload always lands on the same record.
    assert pipeline.record_failure(event, table=table)["photo_id"] == result["photo_id"]


def test_record_failure_after_preprocess_uses_the_photo_id_and_a_later_success_clears_it(
    resources, table, photo
):
    event = {
        **source(resources, photo["raw_key"]),
        "photo": photo,
        "error": {"Error": "UnprocessedItemsError", "Cause": "x"},
    }
    assert pipeline.record_failure(event, table=table)["photo_id"] == photo["photo_id"]
    assert _records(table) == [("FAILED", photo["photo_id"])]
    pipeline.fanout(_fanout_event(resources, photo, []), table=table, rekognition=FakeRekognition())
    assert _records(table) == [("PROCESSED", photo["photo_id"])]


@pytest.mark.parametrize(
    ("before", "run_a", "run_b"),
    [
        ((), ("1234", "0567"), ("1234",)),  # A would list the photo under a bib B's record dropped
        (("1234", "0567"), ("1234",), ("1234", "0567")),  # A would delete an entry B's record needs
    ],
)
def test_two_runs_of_one_photo_racing_in_fanout_leave_one_consistent_photo(
    resources, table, photo, before, run_a, run_b
):
    if before:
        pipeline.fanout(_fanout_event(resources, photo, before), table=table, rekognition=FakeRekognition())
    # Run A read the photo and wrote its record; before A writes its bib entries, run B (say a
    # reprocess) saves the photo from start to end.
    first, second = boto3.client("dynamodb"), boto3.client("dynamodb")

    def b_runs_whole(**kwargs):
        first.meta.events.unregister("before-call.dynamodb.BatchWriteItem", b_runs_whole)
        event = _fanout_event(resources, photo, run_b, ["face-b"])
        pipeline.fanout(event, table=PhotoTable(second, table.name), rekognition=FakeRekognition())

    first.meta.events.register("before-call.dynamodb.BatchWriteItem", b_runs_whole)
    event = _fanout_event(resources, photo, run_a, ["face-a"])
    pipeline.fanout(event, table=PhotoTable(first, table.name), rekognition=FakeRekognition())

    record = table.photo("acme", "e1", photo["photo_id"])
    assert record["bibs"] == list(run_b)  # the run that saved last
    listed = {bib for bib in ("1234", "0567") if table.bib_page("acme", "e1", bib, limit=5).items}
    assert listed == set(record["bibs"]), "a bib search finds the photo exactly under the bibs it shows"
    assert [p["photo_id"] for p in table.gallery_page("acme", "e1", limit=5).items] == [photo["photo_id"]]
    event_record = table.event("acme", "e1")
    assert event_record is None or event_record["photo_count"] == 1
