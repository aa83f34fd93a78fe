"""A crowd of tasks due in the same second, in the local mode: the hop
queue's stand-in (tasks/localmode/sqsource.py) sees its messages early (the
local lookahead) and starts each invocation when Lambda's event source would
have, or, for a crowd, the crowd's lead before the second, so that every
claim is made before the second and only the requests go out at it."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from tasks import taskqueue
from tasks.localmode import crowd
from tasks.localmode.sqsource import QueueSource, held
from tasks.models import claim_early_seconds

DUE = datetime(2027, 5, 1, 12, 30, 41, tzinfo=UTC)


@pytest.fixture
def lookahead():
    taskqueue.set_lookahead(crowd.hop_lookahead())
    yield crowd.hop_lookahead()
    taskqueue.set_lookahead(0.0)


def message(n: int, due: datetime = DUE, sent: datetime | None = None) -> dict:
    sent = sent or due - timedelta(seconds=20)
    return {
        "MessageId": f"m{n}",
        "ReceiptHandle": f"r{n}",
        "Body": json.dumps({"task_id": f"t{n}", "due_at": due.isoformat()}),
        "Attributes": {"SentTimestamp": str(int(sent.timestamp() * 1000))},
    }


class FakeSQS:
    def __init__(self) -> None:
        self.released: list[str] = []
        self.deleted: list[str] = []

    def receive_message(self, **kwargs) -> dict:
        return {}

    def change_message_visibility(self, *, QueueUrl, ReceiptHandle, VisibilityTimeout):
        assert VisibilityTimeout == 0
        self.released.append(ReceiptHandle)

    def delete_message_batch(self, *, QueueUrl, Entries):
        self.deleted += [entry["ReceiptHandle"] for entry in Entries]


@pytest.fixture
def source():
    source = QueueSource(
        client=FakeSQS(), url="q", arn="arn", region="us-east-1", invoke=lambda e, c: None
    )
    yield source
    source.stop()


def test_it_leads_a_crowd_by_its_size_within_the_claim_window():
    assert crowd.lead(1) == pytest.approx(crowd.LEAD_BASE_SECONDS + crowd.LEAD_PER_TASK_SECONDS)
    assert crowd.lead(100) > crowd.lead(10) > crowd.lead(1)
    # However large the crowd, never earlier than the executor may claim.
    assert crowd.lead(100_000) == crowd.max_lead() < claim_early_seconds()


def test_it_makes_local_messages_visible_a_lookahead_earlier(lookahead):
    now = DUE - timedelta(seconds=30)
    local = taskqueue.delay_for(DUE, now)
    on_aws = taskqueue.delay_for(DUE, now, lookahead=0.0)
    assert on_aws - local in (int(lookahead), int(lookahead) + 1)
    visible = now + timedelta(seconds=local)
    # Early enough for the largest lead, never past its due time.
    assert visible <= DUE - timedelta(seconds=crowd.max_lead())


def test_it_times_a_message_as_lambdas_event_source_would_see_it(lookahead):
    sent = DUE - timedelta(seconds=30)
    entry = held(message(1, sent=sent), now=0.0)
    assert entry.due == DUE.timestamp()
    on_aws = sent + timedelta(seconds=taskqueue.delay_for(DUE, sent, lookahead=0.0))
    assert entry.visible == on_aws.timestamp()
    # A body without a due time is not the stand-in's to time: at once.
    odd = held({"MessageId": "x", "ReceiptHandle": "x", "Body": "{}"}, now=5.0)
    assert (odd.due, odd.visible) == (None, 5.0)


def test_it_starts_a_lone_task_when_lambda_would(source, lookahead, settings):
    source._hold([message(1)])
    visible = source.held[0].visible
    # Within the second that starts TASK_HOP_LEAD_SECONDS before its due time.
    lead = settings.TASK_HOP_LEAD_SECONDS
    assert DUE.timestamp() - lead <= visible < DUE.timestamp() - lead + 1
    start = visible - crowd.LEAD_PER_TASK_SECONDS  # one claim's time sooner
    ready, wake = source._take_startable(start - 0.01)
    assert ready == [] and wake == pytest.approx(start)
    ready, _ = source._take_startable(start)
    assert [entry.message["MessageId"] for entry in ready] == ["m1"]


def test_it_starts_a_crowd_its_lead_before_the_second(source, lookahead):
    size = 300
    source._hold([message(n) for n in range(size)])
    due = DUE.timestamp()
    start = due - crowd.max_lead()
    # Earlier than any of them would be visible to Lambda's event source, so
    # that the crowd's claims are made before its second.
    assert start < min(entry.visible for entry in source.held)
    assert source._take_startable(start - 0.01)[0] == []
    ready, _ = source._take_startable(start)
    assert len(ready) == size
    assert source.held == []


def test_it_counts_a_crowd_as_it_arrives(source, lookahead):
    due = DUE.timestamp()
    source._hold([message(0)])
    first = source.held[0]
    alone = first.start(source.crowds)
    source._hold([message(n) for n in range(1, 100)])
    assert first.start(source.crowds) < alone
    assert first.start(source.crowds) == pytest.approx(
        first.visible - 100 * crowd.LEAD_PER_TASK_SECONDS
    )
    assert first.start(source.crowds) > due - crowd.max_lead()


def test_it_never_starts_earlier_than_the_claim_window_allows():
    due, visible = 1000.0, 999.25
    for size in (1, 10, 100, 1000, 100_000):
        start = crowd.hop_start(due, visible, size)
        assert due - crowd.max_lead() <= start <= visible
    assert crowd.max_lead() < claim_early_seconds()


def test_it_releases_what_it_held_at_stop(lookahead):
    client = FakeSQS()
    source = QueueSource(
        client=client, url="q", arn="arn", region="us-east-1", invoke=lambda e, c: None
    )
    source._hold([message(1), message(2)])
    source.stop()
    # Visible again at once, for the next start (not after the visibility timeout).
    assert sorted(client.released) == ["r1", "r2"]


def test_it_invokes_a_crowd_expected_by_the_pacer_and_deletes_after(lookahead):
    """The pacer learns of each invocation before it runs (so outcomes wait
    for the crowd's claims), and each message is deleted after its invocation."""
    client = FakeSQS()
    expected, invoked = [], []
    done = threading.Event()

    class Pacer:
        def expect(self, dues):
            expected.extend(dues)

        def invocation(self, due):
            import contextlib

            return contextlib.nullcontext()

    def invoke(event, context):
        invoked.append(json.loads(event["Records"][0]["body"])["task_id"])
        if len(invoked) == 3:
            done.set()

    source = QueueSource(
        client=client, url="q", arn="arn", region="us-east-1", invoke=invoke, pacer=Pacer()
    )
    source.start()
    now = datetime.now(UTC)
    source._hold([message(n, due=now, sent=now - timedelta(seconds=5)) for n in range(3)])
    assert done.wait(10)
    source.stop()
    assert sorted(invoked) == ["t0", "t1", "t2"]
    assert expected == [now.timestamp()] * 3
    assert sorted(client.deleted) == ["r0", "r1", "r2"]


def test_it_runs_at_stop_what_is_due_within_the_horizon(lookahead):
    """A held message due any moment (Lambda's event source could have it
    already) is delivered within the stop, not late at the next start."""
    client = FakeSQS()
    invoked = []
    source = QueueSource(
        client=client,
        url="q",
        arn="arn",
        region="us-east-1",
        invoke=lambda event, context: invoked.append(event["Records"][0]["messageId"]),
    )
    now = datetime.now(UTC)
    soon = message(1, due=now + timedelta(seconds=1), sent=now)
    later = message(2, due=now + timedelta(seconds=30), sent=now)
    source._hold([soon, later])
    source.stop()
    assert invoked == ["m1"]
    assert client.deleted == ["r1"]
    assert client.released == ["r2"]


@pytest.mark.parametrize("window", [1.0, 5.0, 15.0, 30.0])
def test_it_keeps_every_lead_inside_the_claim_window_whatever_its_width(settings, window):
    settings.TASK_CLAIM_EARLY_SECONDS = window
    assert crowd.max_lead() < claim_early_seconds() == window
    due, visible = 1000.0, 999.25
    for size in (1, 10, 100, 1000, 100_000):
        assert crowd.lead(size) <= crowd.max_lead()
        # A crowd never starts earlier than the largest lead (a lone message
        # starts when Lambda's event source would have it: with a window
        # narrower than TASK_HOP_LEAD_SECONDS, the executor waits, unclaimed).
        start = crowd.hop_start(due, visible, size)
        assert min(visible, due - crowd.max_lead()) <= start <= visible
    # The local hop queue shows a message early enough for the largest lead.
    taskqueue.set_lookahead(crowd.hop_lookahead())
    try:
        for ahead in (30, 30.4, 30.9, 60, 600):
            now = DUE - timedelta(seconds=ahead)
            shown = now + timedelta(seconds=taskqueue.delay_for(DUE, now))
            assert shown <= DUE - timedelta(seconds=crowd.max_lead())
    finally:
        taskqueue.set_lookahead(0.0)


@pytest.fixture
def local_window(settings):
    """The local mode's claim window (runlocal's TASK_CLAIM_EARLY_SECONDS)."""
    settings.TASK_CLAIM_EARLY_SECONDS = 15.0
    taskqueue.set_lookahead(crowd.hop_lookahead())
    yield 15.0
    taskqueue.set_lookahead(0.0)


def test_it_starts_a_crowd_of_1000_its_wider_lead_before_the_second(source, local_window):
    source._hold([message(n) for n in range(1000)])
    due = DUE.timestamp()
    start = due - (local_window - crowd.CLAIM_MARGIN_SECONDS)
    assert source._take_startable(start - 0.01)[0] == []
    ready, _ = source._take_startable(start)
    assert len(ready) == 1000


def test_it_starts_a_lone_task_when_lambda_would_with_the_wider_window(
    source, local_window, settings
):
    """Only crowds get the wider lead: a lone task is timed as on AWS (the
    cost bench measures its hold), and the firer's lead for it is unchanged."""
    source._hold([message(1)])
    visible = source.held[0].visible
    lead = settings.TASK_HOP_LEAD_SECONDS
    assert DUE.timestamp() - lead <= visible < DUE.timestamp() - lead + 1
    start = visible - crowd.LEAD_PER_TASK_SECONDS
    assert source._take_startable(start - 0.01)[0] == []
    assert len(source._take_startable(start)[0]) == 1
    assert crowd.lead(1) == pytest.approx(crowd.LEAD_BASE_SECONDS + crowd.LEAD_PER_TASK_SECONDS)
