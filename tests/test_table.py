"""DynamoDB adapter against moto (and a Stubber for UnprocessedItems, which moto never returns)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from chalicelib.errors import ProvisionedThroughputExceededException, UnprocessedItemsError
from chalicelib.table import Table


@pytest.fixture
def table(resources):
    return Table(boto3.client("dynamodb"), resources.table_name, sleep=lambda s: None)


def test_writes_more_than_25_items_in_chunks(table):
    items = [{"PK": "P", "SK": f"S#{i:03d}", "n": i} for i in range(60)]
    assert table.write_batch(items) == 60
    page, last = table.query(pk="P", limit=100, newest_first=False)
    assert [item["n"] for item in page] == list(range(60))
    assert last is None


def test_numbers_come_back_as_ints_and_lists_as_lists(table):
    table.put_item({"PK": "P", "SK": "S", "width": 2048, "bibs": ["0042"], "nested": {"a": 1}})
    assert table.get_item("P", "S") == {"PK": "P", "SK": "S", "width": 2048, "bibs": ["0042"], "nested": {"a": 1}}
    assert table.get_item("P", "missing") is None


def test_query_pages_continue_from_the_last_key(table):
    table.write_batch([{"PK": "P", "SK": f"S#{i}"} for i in range(5)])
    first, cursor = table.query(pk="P", limit=3)
    second, end = table.query(pk="P", limit=3, start_key=cursor)
    assert [i["SK"] for i in first + second] == ["S#4", "S#3", "S#2", "S#1", "S#0"]


def test_deletes_go_in_the_same_batches(table):
    table.write_batch([{"PK": "P", "SK": "old"}])
    table.write_batch([{"PK": "P", "SK": "new"}], [{"PK": "P", "SK": "old"}])
    assert table.get_item("P", "old") is None and table.get_item("P", "new")


def _stubbed(client, sleeps):
    return Table(client, "t", max_attempts=4, base_delay=0.1, max_delay=0.3, sleep=sleeps.append)


def test_unprocessed_items_are_retried_with_capped_jittered_backoff():
    client = boto3.client("dynamodb", region_name="us-east-1")
    sleeps: list[float] = []
    left = {"t": [{"PutRequest": {"Item": {"PK": {"S": "P"}, "SK": {"S": "S"}}}}]}
    with Stubber(client) as stub:
        stub.add_response("batch_write_item", {"UnprocessedItems": left}, {"RequestItems": ANY})
        stub.add_response("batch_write_item", {"UnprocessedItems": left}, {"RequestItems": left})
        stub.add_response("batch_write_item", {"UnprocessedItems": {}}, {"RequestItems": left})
        _stubbed(client, sleeps).write_batch([{"PK": "P", "SK": "S"}, {"PK": "P", "SK": "T"}])
        stub.assert_no_pending_responses()
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.1 and 0 <= sleeps[1] <= 0.2


def test_unprocessed_items_that_never_drain_fail_the_step():
    client = boto3.client("dynamodb", region_name="us-east-1")
    sleeps: list[float] = []
    left = {"t": [{"PutRequest": {"Item": {"PK": {"S": "P"}, "SK": {"S": "S"}}}}]}
    with Stubber(client) as stub:
        for _ in range(4):
            stub.add_response("batch_write_item", {"UnprocessedItems": left}, {"RequestItems": ANY})
        with pytest.raises(UnprocessedItemsError, match="1 write requests still unprocessed after 4 attempts"):
            _stubbed(client, sleeps).write_batch([{"PK": "P", "SK": "S"}])
    assert len(sleeps) == 3 and max(sleeps) <= 0.3


def test_throughput_errors_are_named():
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_client_error("put_item", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(ProvisionedThroughputExceededException):
            Table(client, "t").put_item({"PK": "P", "SK": "S"})
