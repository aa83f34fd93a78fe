"""The local endpoint's shortcuts around moto's slow paths (awsserver.py):
an item operation's answer written as it stands, and the capacity meter
reading items from moto's memory. Each must answer exactly what moto's own
path answers."""

from __future__ import annotations

import io
import json

import pytest

from tasks.localmode import awsserver

AUTH = (
    "AWS4-HMAC-SHA256 Credential=local/20261201/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-target, Signature=0"
)
TABLE = {
    "TableName": "t",
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": "id", "AttributeType": "S"},
        {"AttributeName": "status", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "by-status",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
ITEM = {
    "id": {"S": "a"},
    "status": {"S": "scheduled"},
    "attempts": {"N": "0"},
    "history": {"L": []},
    "payload": {"M": {"url": {"S": "http://x"}, "n": {"N": "1"}, "ok": {"BOOL": True}}},
}
CLAIM = {
    "TableName": "t",
    "Key": {"id": {"S": "a"}},
    "ConditionExpression": "#0 = :0",
    "UpdateExpression": "SET #0 = :1, #1 = list_append(#1, :2) ADD #2 :3",
    "ExpressionAttributeNames": {"#0": "status", "#1": "history", "#2": "attempts"},
    "ExpressionAttributeValues": {
        ":0": {"S": "scheduled"},
        ":1": {"S": "running"},
        ":2": {"L": [{"M": {"n": {"N": "1"}}}]},
        ":3": {"N": "1"},
    },
    "ReturnValues": "ALL_NEW",
    "ReturnConsumedCapacity": "TOTAL",
}


@pytest.fixture
def call(monkeypatch):
    """One request to a fresh in-memory endpoint: (status, answer)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    from moto.dynamodb.models import dynamodb_backends

    dynamodb_backends["123456789012"]["us-east-1"].reset()
    app = awsserver.make_app(None)

    def request(operation: str, body: dict) -> tuple[str, dict]:
        data = json.dumps(body).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "4566",
            "HTTP_HOST": "127.0.0.1:4566",
            "wsgi.url_scheme": "http",
            "CONTENT_TYPE": "application/x-amz-json-1.0",
            "CONTENT_LENGTH": str(len(data)),
            "HTTP_X_AMZ_TARGET": f"DynamoDB_20120810.{operation}",
            "HTTP_AUTHORIZATION": AUTH,
            "wsgi.input": io.BytesIO(data),
        }
        answer = []
        body_out = b"".join(app(environ, lambda status, headers, *_: answer.append(status)))
        return answer[0], json.loads(body_out or b"{}")

    request("CreateTable", TABLE)
    return request


def test_it_answers_item_operations_as_moto_serializes_them(call, monkeypatch):
    from moto.dynamodb.responses import DynamoResult

    fast = DynamoResult.execute_result
    answers = []

    def both(self, context):
        quick, slow = fast(self, context), fast.serialize(self, context)
        answers.append((quick[0], quick[1], json.loads(quick[2])))
        answers.append((slow[0], slow[1], json.loads(slow[2])))
        return slow

    monkeypatch.setattr(DynamoResult, "execute_result", both)
    call("PutItem", {"TableName": "t", "Item": ITEM, "ReturnConsumedCapacity": "TOTAL"})
    call("UpdateItem", CLAIM)
    call("GetItem", {"TableName": "t", "Key": {"id": {"S": "a"}}})
    call("DeleteItem", {"TableName": "t", "Key": {"id": {"S": "a"}}, "ReturnValues": "ALL_OLD"})

    # Four answers, and the meter's DescribeTable (once per table): its own
    # reads of the item before and after the write do not go through moto.
    assert len(answers) == 2 * 5
    for quick, slow in zip(answers[::2], answers[1::2], strict=True):
        assert quick[0] == slow[0] == 200
        assert quick[1]["Content-Type"] == slow[1]["Content-Type"]
        assert quick[2] == slow[2]


def test_it_meters_a_write_from_memory_as_through_moto(call, monkeypatch):
    call("PutItem", {"TableName": "t", "Item": ITEM})
    status, fast = call("UpdateItem", CLAIM)
    assert status.startswith("200")
    assert fast["Attributes"]["status"] == {"S": "running"}

    # The same write again, with the meter reading through moto's HTTP layer.
    monkeypatch.setattr(awsserver, "_stored_item", lambda *args: None)
    call("PutItem", {"TableName": "t", "Item": ITEM})
    status, slow = call("UpdateItem", CLAIM)
    assert status.startswith("200")
    assert fast == slow
    # The item (1 KB) and the status index's entry moving (a delete and a put).
    assert fast["ConsumedCapacity"] == {"TableName": "t", "CapacityUnits": 3.0}


def test_it_still_refuses_a_claim_whose_condition_fails(call):
    call("PutItem", {"TableName": "t", "Item": ITEM | {"status": {"S": "cancelled"}}})
    status, answer = call("UpdateItem", CLAIM)
    assert status.startswith("400")
    assert "ConditionalCheckFailed" in answer["__type"]
    _, stored = call("GetItem", {"TableName": "t", "Key": {"id": {"S": "a"}}})
    assert stored["Item"]["status"] == {"S": "cancelled"}
