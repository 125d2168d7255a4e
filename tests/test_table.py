"""The repository against moto (and a Stubber for UnprocessedItems, which moto never returns).

These tests are where the key layout may be named: they check what the items look like in the
table, so every other module can speak only the repository's domain methods.
"""

from __future__ import annotations

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from botocore.stub import ANY, Stubber

from chalicelib.adapters.table import PhotoTable
from chalicelib.domain.errors import ProvisionedThroughputExceededException, UnprocessedItemsError
from chalicelib.domain.model import Analysis, Failure
from tests.support.photos import make_photo


def stored(table: PhotoTable) -> dict[tuple[str, str], dict]:
    """Every item as the table holds it, keys included, by (PK, SK)."""
    deserializer = TypeDeserializer()
    items = boto3.client("dynamodb").scan(TableName=table.name)["Items"]
    decoded = [{k: deserializer.deserialize(v) for k, v in item.items()} for item in items]
    return {(item["PK"], item["SK"]): item for item in decoded}


def test_photo_is_keyed_by_org_and_event_and_listed_by_photographer(table):
    photo = make_photo("acme", "run-5k", 1, photographer="snap.shooter")
    table.save_photo(photo, Analysis(bibs=("1234",), face_ids=("f1", "f2")))
    item = stored(table)[("ORG#acme#EVT#run-5k", f"PHOTO#{photo.photo_id}")]
    assert item["status"] == "PROCESSED" and item["type"] == "PHOTO"
    assert item["face_count"] == 2 and item["face_ids"] == ["f1", "f2"]
    assert (item["GSI1PK"], item["GSI1SK"]) == (
        "ORG#acme#EVT#run-5k#PG#snap.shooter",
        f"PHOTO#{photo.photo_id}",
    )
    assert "GSI2PK" not in item


def test_bib_listing_items_carry_the_display_fields_and_are_scoped_by_org(table):
    photo = make_photo("acme", "run-5k", 1, photographer="p")
    table.save_photo(photo, Analysis(bibs=("1234", "0567", "1234")))
    table.save_photo(make_photo("other", "run-5k", 1), Analysis(bibs=("1234",)))
    items = stored(table)
    record = items[("ORG#acme#EVT#run-5k", f"PHOTO#{photo.photo_id}")]
    assert record["bibs"] == ["1234", "0567"]
    for bib in ("1234", "0567"):
        entry = items[(f"ORG#acme#EVT#run-5k#BIB#{bib}", f"PHOTO#{photo.photo_id}")]
        assert entry["type"] == "BIB_INDEX" and entry["bib"] == bib
        for name in (
            "photo_id",
            "bucket",
            "org_id",
            "event_id",
            "processed_key",
            "width",
            "height",
            "thumbhash",
            "bibs",
            "photographer",
            "captured_at",
            "original_filename",
        ):
            assert entry[name] == record[name], name
    assert [p["photo_id"] for p in table.bib_page("acme", "run-5k", "1234", limit=10).items] == [
        photo.photo_id
    ]


def test_photographer_listing_is_exact_so_event_prefixes_cannot_collide(table):
    short, longer = (
        make_photo("acme", "run-5k", 1, photographer="p"),
        make_photo("acme", "run-5k-2025", 2, photographer="p"),
    )
    table.save_photo(short, Analysis())
    table.save_photo(longer, Analysis())
    assert [p["photo_id"] for p in table.photographer_page("acme", "run-5k", "p", limit=10).items] == [
        short.photo_id
    ]


def test_photo_without_photographer_is_not_in_the_photographer_listing(table):
    photo = make_photo("acme", "e1", 1, photographer=None)
    table.save_photo(photo, Analysis())
    item = stored(table)[("ORG#acme#EVT#e1", f"PHOTO#{photo.photo_id}")]
    assert "GSI1PK" not in item and "photographer" not in item


def test_fallback_reasons_are_recorded_on_the_photo(table):
    photo = make_photo("acme", "e1", 1)
    table.save_photo(photo, Analysis(bibs_error="ThrottlingException"))
    record = table.photo("acme", "e1", photo.photo_id)
    assert record["bibs_error"] == "ThrottlingException" and "faces_error" not in record


def test_failure_is_recorded_beside_the_photos_and_listed_in_the_failure_index(table):
    failure = Failure(
        error="CorruptImage", cause="truncated", failed_at="2025-05-04T09:00:00Z", extra={"raw_size": 9}
    )
    table.record_failure("acme", "run-5k", "01JTB2Y4X0ABCDEFGHJKMNPQRS", "acme/run-5k/raw/x/IMG.jpg", failure)
    item = stored(table)[("ORG#acme#EVT#run-5k", "FAILED#01JTB2Y4X0ABCDEFGHJKMNPQRS")]
    assert item["status"] == "FAILED" and item["raw_size"] == 9
    assert (item["GSI2PK"], item["GSI2SK"]) == (
        "ORG#acme#EVT#run-5k#FAILED",
        "FAILED#01JTB2Y4X0ABCDEFGHJKMNPQRS",
    )
    record = table.failure("acme", "run-5k", "01JTB2Y4X0ABCDEFGHJKMNPQRS")
    assert record["original_filename"] == "IMG.jpg" and (record["error"], record["cause"]) == (
        "CorruptImage",
        "truncated",
    )
    assert table.gallery_page("acme", "run-5k", limit=10).items == []  # the gallery lists photos only


def test_records_are_plain_values_without_key_attributes(table):
    photo = make_photo("acme", "e1", 1, photographer="p")
    table.save_photo(photo, Analysis(bibs=("0042",)))
    record = table.photo("acme", "e1", photo.photo_id)
    assert record["width"] == 2048 and isinstance(record["width"], int)
    assert record["bibs"] == ["0042"]
    assert not {"PK", "SK", "GSI1PK", "GSI1SK"} & set(record)
    assert table.photo("acme", "e1", make_photo("acme", "e1", 2).photo_id) is None


def test_saving_a_photo_with_more_than_25_items_writes_them_in_chunks(table):
    photo = make_photo("acme", "e1", 1)
    bibs = tuple(f"{n:04d}" for n in range(1, 31))
    assert table.save_photo(photo, Analysis(bibs=bibs)) == 31
    assert all(table.bib_page("acme", "e1", bib, limit=5).items for bib in bibs)


def test_gallery_pages_continue_from_the_last_key_newest_first(table):
    photos = [make_photo("acme", "e1", n) for n in range(5)]
    for photo in photos:
        table.save_photo(photo, Analysis())
    first = table.gallery_page("acme", "e1", limit=3)
    second = table.gallery_page("acme", "e1", limit=3, after=first.last_key)
    assert [p["photo_id"] for p in first.items + second.items] == [p.photo_id for p in reversed(photos)]
    assert second.last_key is None


def test_saving_again_drops_bibs_the_photo_lost_and_clears_its_failures(table):
    photo = make_photo("acme", "e1", 1)
    failure = Failure(error="CorruptImage", cause="x", failed_at="2025-05-04T09:00:00Z")
    table.record_failure("acme", "e1", photo.photo_id, photo.raw_key, failure)
    table.save_photo(photo, Analysis(bibs=("1234", "0567")))
    table.save_photo(photo, Analysis(bibs=("1234",)), clear_failures=[photo.photo_id])
    assert table.bib_page("acme", "e1", "0567", limit=5).items == []
    assert table.bib_page("acme", "e1", "1234", limit=5).items
    assert table.failure("acme", "e1", photo.photo_id) is None


def test_photos_are_fetched_in_batches_and_unknown_ids_are_left_out(table):
    photos = [make_photo("acme", "e1", n) for n in range(120)]
    for photo in photos:
        table.save_photo(photo, Analysis())
    wanted = [p.photo_id for p in photos] + [make_photo("acme", "e1", 999).photo_id]
    assert sorted(r["photo_id"] for r in table.photos("acme", "e1", wanted)) == sorted(
        p.photo_id for p in photos
    )


def test_event_records_are_every_photo_and_failure_of_that_event_only(table):
    photo = make_photo("acme", "e1", 1)
    table.save_photo(photo, Analysis(bibs=("1234",)))
    table.save_photo(make_photo("acme", "e2", 1), Analysis())
    failure = Failure(error="CorruptImage", cause="x", failed_at="2025-05-04T09:00:00Z")
    table.record_failure("acme", "e1", "01JTB2Y4X0ABCDEFGHJKMNPQRS", "acme/e1/raw/b.jpg", failure)
    statuses = sorted((r["status"], r["photo_id"]) for r in table.event_records("acme", "e1"))
    assert statuses == sorted([("PROCESSED", photo.photo_id), ("FAILED", "01JTB2Y4X0ABCDEFGHJKMNPQRS")])


def _stubbed(client, sleeps):
    return PhotoTable(client, "t", max_attempts=4, base_delay=0.1, max_delay=0.3, sleep=sleeps.append)


def _save_with_unprocessed_rounds(rounds: int) -> list[float]:
    """Save a photo whose bib entries come back unprocessed `rounds` times; return the waits."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    sleeps: list[float] = []
    left = {"t": [{"PutRequest": {"Item": {"PK": {"S": "P"}, "SK": {"S": "S"}}}}]}
    with Stubber(client) as stub:
        stub.add_response("get_item", {}, {"TableName": "t", "Key": ANY, "ConsistentRead": True})
        stub.add_response("transact_write_items", {}, {"TransactItems": ANY})  # the photo and its count
        stub.add_response("batch_write_item", {"UnprocessedItems": left}, {"RequestItems": ANY})
        for round_ in range(1, rounds + 1):  # each retry sends only what was left
            unprocessed = left if round_ < rounds else {}
            stub.add_response("batch_write_item", {"UnprocessedItems": unprocessed}, {"RequestItems": left})
        stub.add_response("get_item", {}, {"TableName": "t", "Key": ANY, "ConsistentRead": True})  # read back
        _stubbed(client, sleeps).save_photo(make_photo("acme", "e1", 1), Analysis(bibs=("1234",)))
        stub.assert_no_pending_responses()
    return sleeps


def test_unprocessed_items_are_retried_with_capped_jittered_backoff():
    sleeps = _save_with_unprocessed_rounds(2)
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2


def test_unprocessed_items_that_never_drain_fail_the_step():
    client = boto3.client("dynamodb", region_name="us-east-1")
    sleeps: list[float] = []
    left = {"t": [{"PutRequest": {"Item": {"PK": {"S": "P"}, "SK": {"S": "S"}}}}]}
    with Stubber(client) as stub:
        stub.add_response("get_item", {}, {"TableName": "t", "Key": ANY, "ConsistentRead": True})
        stub.add_response("transact_write_items", {}, {"TransactItems": ANY})
        for _ in range(4):
            stub.add_response("batch_write_item", {"UnprocessedItems": left}, {"RequestItems": ANY})
        with pytest.raises(
            UnprocessedItemsError, match="1 write requests still unprocessed after 4 attempts"
        ):
            _stubbed(client, sleeps).save_photo(make_photo("acme", "e1", 1), Analysis(bibs=("1234",)))
    assert len(sleeps) == 3 and max(sleeps) <= 0.3


def test_throughput_errors_are_named():
    client = boto3.client("dynamodb", region_name="us-east-1")
    failure = Failure(error="CorruptImage", cause="x", failed_at="2025-05-04T09:00:00Z")
    with Stubber(client) as stub:
        stub.add_client_error("put_item", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(ProvisionedThroughputExceededException):
            PhotoTable(client, "t").record_failure(
                "acme", "e1", "01JTB2Y4X0ABCDEFGHJKMNPQRS", "acme/e1/raw/x.jpg", failure
            )


def test_batch_write_backoff_is_jittered_so_retries_spread_out():
    # Full jitter: each wait is drawn anew from 0 to its bound (0.1 s, then 0.2 s), so Lambdas that
    # were throttled together do not come back together.
    waits = [_save_with_unprocessed_rounds(2) for _ in range(30)]
    first, second = [w[0] for w in waits], [w[1] for w in waits]
    assert all(0 <= f <= 0.1 for f in first) and all(0 <= s <= 0.2 for s in second)
    assert len(set(first)) > 20 and len(set(second)) > 20
    assert min(first) < 0.05 < max(first) and min(second) < 0.1 < max(second)


def _unprocessing_first_batch_get(client, left: int) -> None:
    """Make the next BatchGetItem answer `left` of its keys as UnprocessedKeys, as a throttled
    table does (moto never does)."""
    calls = []

    def split(parsed, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            return
        (name, items), *_ = parsed["Responses"].items()
        kept, moved = items[: len(items) - left], items[len(items) - left :]
        parsed["Responses"][name] = kept
        parsed["UnprocessedKeys"] = {name: {"Keys": [{"PK": i["PK"], "SK": i["SK"]} for i in moved]}}

    client.meta.events.register("after-call.dynamodb.BatchGetItem", split)


def test_unprocessed_keys_are_asked_for_again_until_every_photo_is_read(table):
    photos = [make_photo("acme", "e1", n) for n in range(5)]
    for photo in photos:
        table.save_photo(photo, Analysis())
    client, sleeps = boto3.client("dynamodb"), []
    _unprocessing_first_batch_get(client, left=3)
    retrying = PhotoTable(client, table.name, base_delay=0.1, max_delay=0.3, sleep=sleeps.append)

    found = retrying.photos("acme", "e1", [p.photo_id for p in photos])

    assert sorted(r["photo_id"] for r in found) == sorted(p.photo_id for p in photos)
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= 0.1


def test_unprocessed_keys_that_never_drain_are_an_unprocessed_items_error():
    client = boto3.client("dynamodb", region_name="us-east-1")
    sleeps: list[float] = []
    key = {"PK": {"S": "ORG#acme#EVT#e1"}, "SK": {"S": "PHOTO#x"}}
    with Stubber(client) as stub:
        for _ in range(4):
            stub.add_response(
                "batch_get_item",
                {"Responses": {"t": []}, "UnprocessedKeys": {"t": {"Keys": [key]}}},
                {"RequestItems": ANY},
            )
        with pytest.raises(UnprocessedItemsError, match="BatchGetItem left keys unprocessed"):
            _stubbed(client, sleeps).photos("acme", "e1", ["x"])
        stub.assert_no_pending_responses()
    assert len(sleeps) == 3  # between the 4 attempts; none after the last
