"""sandbox/atomic.py: moto's DynamoDB with DynamoDB's atomicity, and transactions rolled back from
a journal of their items rather than a copy of the table."""

from __future__ import annotations

import threading

import boto3
import pytest
from botocore.exceptions import ClientError

TABLE = "atomic"


@pytest.fixture
def dynamodb(aws):
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


def _key(sk: str) -> dict:
    return {"PK": {"S": "P"}, "SK": {"S": sk}}


def _items(client) -> dict[str, dict]:
    found = client.scan(TableName=TABLE)["Items"]
    return {item["SK"]["S"]: item for item in found}


def test_a_cancelled_transaction_leaves_every_item_as_it_was(dynamodb):
    dynamodb.put_item(TableName=TABLE, Item={**_key("counter"), "n": {"N": "1"}})
    dynamodb.put_item(TableName=TABLE, Item={**_key("guard"), "open": {"BOOL": False}})
    before = _items(dynamodb)
    with pytest.raises(ClientError) as refused:
        dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": _key("counter"),
                        "UpdateExpression": "ADD n :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": {**_key("new"), "v": {"S": "x"}}}},
                {"Delete": {"TableName": TABLE, "Key": _key("other")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": _key("guard"),
                        "ConditionExpression": "#o = :t",
                        "ExpressionAttributeNames": {"#o": "open"},
                        "ExpressionAttributeValues": {":t": {"BOOL": True}},
                    }
                },
            ]
        )
    assert refused.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _items(dynamodb) == before  # the ADD undone, the new item gone


def test_a_transaction_that_succeeds_applies_every_write(dynamodb):
    dynamodb.put_item(TableName=TABLE, Item={**_key("gone"), "v": {"S": "x"}})
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {**_key("new"), "v": {"S": "y"}}}},
            {"Delete": {"TableName": TABLE, "Key": _key("gone")}},
        ]
    )
    assert set(_items(dynamodb)) == {"new"}


def test_concurrent_adds_to_one_item_are_all_counted(dynamodb):
    dynamodb.put_item(TableName=TABLE, Item={**_key("counter"), "n": {"N": "0"}})

    def add() -> None:
        for _ in range(25):
            dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": TABLE,
                            "Key": _key("counter"),
                            "UpdateExpression": "ADD n :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        }
                    }
                ]
            )

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _items(dynamodb)["counter"]["n"] == {"N": "100"}


def test_the_moto_servers_journal_stays_installed_until_it_is_taken_out():
    # The sandbox once left the journal's context to the garbage collector, which closed it: moto
    # went back to deep-copying the whole table on every transaction and nothing said so.
    import gc
    import socket

    from moto.dynamodb.models import DynamoDBBackend
    from moto.server import ThreadedMotoServer

    from sandbox.atomic import install_serial_dynamodb

    original = DynamoDBBackend.transact_write_items
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        uninstall = install_serial_dynamodb(server)
        gc.collect()
        assert DynamoDBBackend.transact_write_items is not original
        uninstall()
        assert DynamoDBBackend.transact_write_items is original
    finally:
        server.stop()
