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


def endpoint(region: str = "us-east-1"):
    """A fresh in-memory endpoint: request(operation, body) -> (status, answer)."""
    from moto.dynamodb.models import dynamodb_backends

    dynamodb_backends["123456789012"][region].reset()
    app = awsserver.make_app(None)
    auth = AUTH.replace("us-east-1", region)

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
            "HTTP_AUTHORIZATION": auth,
            "wsgi.input": io.BytesIO(data),
        }
        answer = []
        body_out = b"".join(app(environ, lambda status, headers, *_: answer.append(status)))
        return answer[0], json.loads(body_out or b"{}")

    request("CreateTable", TABLE)
    return request


@pytest.fixture
def call(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    return endpoint()


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


# The executor's writes as PynamoDB sends them (tasks/services/running.py):
# the claim, and the outcome with its attempt appended.
PYNAMODB_CLAIM = {
    "TableName": "t",
    "Key": {"id": {"S": "a"}},
    "ConditionExpression": "(#0 = :0 AND #1 <= :1)",
    "ReturnValues": "ALL_NEW",
    "UpdateExpression": "SET #0 = :2, #2 = :3, #3 = :4 REMOVE #4 ADD #5 :5",
    "ExpressionAttributeNames": {
        "#0": "status",
        "#1": "due_at",
        "#2": "lease_expires_at",
        "#3": "updated_at",
        "#4": "due_listing",
        "#5": "attempts",
    },
    "ExpressionAttributeValues": {
        ":0": {"S": "scheduled"},
        ":1": {"S": "2026-12-01T17:49:46.643643+0000"},
        ":2": {"S": "running"},
        ":3": {"S": "2026-12-01T17:54:41.643467+0000"},
        ":4": {"S": "2026-12-01T17:49:41.643756+0000"},
        ":5": {"N": "1"},
    },
    "ReturnConsumedCapacity": "TOTAL",
}
PYNAMODB_RECORD = {
    "TableName": "t",
    "Key": {"id": {"S": "a"}},
    "ConditionExpression": "#0 = :0",
    "UpdateExpression": (
        "SET #0 = :1, #1 = list_append (if_not_exists (#1, :2), :3), #2 = :4 REMOVE #3, #4"
    ),
    "ExpressionAttributeNames": {
        "#0": "status",
        "#1": "attempt_history",
        "#2": "updated_at",
        "#3": "due_listing",
        "#4": "error",
    },
    "ExpressionAttributeValues": {
        ":0": {"S": "running"},
        ":1": {"S": "completed"},
        ":2": {"L": []},
        ":3": {"L": [{"M": {"number": {"N": "1"}, "outcome": {"S": "success"}}}]},
        ":4": {"S": "2026-12-01T17:49:43.058240+0000"},
    },
    "ReturnConsumedCapacity": "TOTAL",
}
TASK = {
    "id": {"S": "a"},
    "status": {"S": "scheduled"},
    "due_at": {"S": "2026-12-01T17:49:45.000000+0000"},
    "due_listing": {"S": "due"},
    "attempts": {"N": "0"},
    "error": {"S": "an earlier failure"},
    "payload": {"M": {"url": {"S": "http://x"}, "data": {"M": {"n": {"N": "1.50"}}}}},
}


def variant(request: dict, **changes) -> dict:
    names = dict(request["ExpressionAttributeNames"])
    values = dict(request["ExpressionAttributeValues"])
    values.update(changes.pop("values", {}))
    names.update(changes.pop("names", {}))
    return {
        **request,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        **changes,
    }


CASES = [
    # (the stored item, the writes in order)
    (TASK, [PYNAMODB_CLAIM, PYNAMODB_RECORD]),
    (TASK, [PYNAMODB_CLAIM, PYNAMODB_CLAIM]),  # a duplicate claim: refused
    (TASK | {"status": {"S": "cancelled"}}, [PYNAMODB_CLAIM]),
    (TASK | {"due_at": {"S": "2026-12-01T17:50:00.000000+0000"}}, [PYNAMODB_CLAIM]),  # not due
    ({k: v for k, v in TASK.items() if k != "attempts"}, [PYNAMODB_CLAIM]),  # ADD to nothing
    (TASK | {"attempts": {"N": "2.5"}}, [PYNAMODB_CLAIM]),
    (
        TASK | {"attempt_history": {"L": [{"M": {"number": {"N": "1"}}}]}},
        [
            PYNAMODB_CLAIM,
            PYNAMODB_RECORD,
        ],
    ),
    (TASK | {"status": {"S": "running"}}, [variant(PYNAMODB_RECORD, ReturnValues="ALL_NEW")]),
    (TASK | {"status": {"S": "running"}}, [variant(PYNAMODB_RECORD, ReturnValues="ALL_OLD")]),
    (TASK | {"status": {"N": "1"}}, [PYNAMODB_CLAIM]),  # a type that does not compare
    (TASK, [variant(PYNAMODB_CLAIM, values={":9": {"S": "unused"}})]),
    (TASK, [variant(PYNAMODB_CLAIM, values={":2": {"N": "7"}})]),  # an index key of the wrong type
    (TASK, [variant(PYNAMODB_CLAIM, values={":2": {"S": ""}})]),  # an empty index key
    (TASK, [variant(PYNAMODB_CLAIM, names={"#2": "id"})]),  # the table's key
    (TASK, [variant(PYNAMODB_CLAIM, Key={"id": {"S": "missing"}})]),
    (TASK, [variant(PYNAMODB_CLAIM, ConditionExpression="#0 = :0 AND #1 > :1")]),
    (TASK, [variant(PYNAMODB_CLAIM, ConditionExpression="#0 <> :0 OR #1 <= :1")]),
    (TASK, [variant(PYNAMODB_CLAIM, UpdateExpression="SET #0 = :2, #0 = :3 ADD #5 :5")]),
]


@pytest.mark.parametrize("stored, writes", CASES)
def test_it_updates_items_exactly_as_moto_does(monkeypatch, stored, writes):
    """The fast path (fastupdate.py) against moto's own UpdateItem: the same
    answers and the same stored item after each write."""
    from tasks.localmode import fastupdate

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    fast, slow = endpoint("us-east-1"), endpoint("eu-west-1")
    for call in (fast, slow):
        call("PutItem", {"TableName": "t", "Item": stored})
    applied = []
    update_item = fastupdate.update_item

    def spy(backend, request):
        answer = update_item(backend, request)
        applied.append(answer is not None)
        return answer

    monkeypatch.setattr(fastupdate, "update_item", spy)
    for write in writes:
        quick = fast("UpdateItem", write)
        with monkeypatch.context() as moto_only:
            moto_only.setattr(fastupdate, "update_item", lambda backend, request: None)
            own = slow("UpdateItem", {**write, "TableName": "t"})
        assert quick[0] == own[0]
        if quick[0].startswith("200"):
            assert quick[1] == own[1]
        else:
            assert quick[1]["__type"] == own[1]["__type"]
        key = {"TableName": "t", "Key": write["Key"], "ConsistentRead": True}
        assert fast("GetItem", key) == slow("GetItem", key)
    if stored is TASK and writes[0] is PYNAMODB_CLAIM:
        assert applied[0]  # the claim as the executor makes it is on the fast path


def test_it_checks_a_message_against_the_retention_period_as_moto_does():
    import moto.sqs.models as sqs

    awsserver.make_app(None)  # installs the shortcut
    shortcut = sqs.SQSBackend.is_message_valid_based_on_retention_period
    backend = sqs.sqs_backends["123456789012"]["eu-west-2"]
    backend.reset()
    backend.create_queue("q", MessageRetentionPeriod="60")
    backend.send_message("q", "fresh")
    backend.send_message("q", "old")
    fresh, old = backend.get_queue("q")._messages
    old.sent_timestamp -= 61_000  # sent 61 s ago: past its 60 s retention
    assert shortcut(backend, "q", fresh) is True
    assert shortcut(backend, "q", old) is False
    # moto's own check agrees.
    assert shortcut.original(backend, "q", fresh) is True
    assert shortcut.original(backend, "q", old) is False
