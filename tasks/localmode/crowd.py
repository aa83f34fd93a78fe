"""How far ahead of its second the local mode starts an invocation: more
when many tasks share the second.

The local endpoint serves one request at a time, and every task's claim is a
write it must serve (a few ms each), so a crowd of N tasks due at the same
second needs about N claims' time before that second. The firer starts
each invocation `lead(crowd)` seconds before its second, the hop queue's
stand-in (sqsource) at `hop_start`: the executor claims the task then, and holds
its request until the second (it never sends early). The lead never exceeds
the executor's claim window (tasks.models.claim_early_seconds, the setting
TASK_CLAIM_EARLY_SECONDS: 15 s in the local mode, 5 s on AWS), less half a
second: a claim made earlier would be refused.
"""

from __future__ import annotations

import collections

from tasks.models import claim_early_seconds

LEAD_BASE_SECONDS = 0.25
# About one claim's cost, endpoint and client, under a crowd (a 2-core machine).
LEAD_PER_TASK_SECONDS = 0.015
# The claim's condition is computed by the executor when it sends the claim
# (due at most the claim window from then), so an invocation started half a
# second inside the window is never refused, however long the claim waits
# for the endpoint.
CLAIM_MARGIN_SECONDS = 0.5


def max_lead() -> float:
    """The largest lead: the claim window less CLAIM_MARGIN_SECONDS."""
    return claim_early_seconds() - CLAIM_MARGIN_SECONDS


def hop_lookahead() -> float:
    """How much earlier than DelaySeconds would on AWS the local hop queue
    makes its messages visible (tasks.taskqueue.set_lookahead), so that its
    stand-in sees a crowd in time to start it max_lead() early: on AWS a
    message becomes visible at the latest 1 s less TASK_HOP_LEAD_SECONDS (at
    least 0.5 s) after its due time, locally then at least max_lead() before
    it. The stand-in holds every other message until Lambda's event source
    would have seen it."""
    return max_lead() + 0.5


def lead(
    crowd: int, base: float = LEAD_BASE_SECONDS, per_task: float = LEAD_PER_TASK_SECONDS
) -> float:
    """Seconds before its second to start one of `crowd` invocations due then."""
    return min(base + per_task * crowd, max_lead())


def hop_start(due: float, visible: float, crowd: int, largest: float | None = None) -> float:
    """When the hop stand-in starts a message's invocation: as early before
    the time Lambda's event source would have received it (`visible`) as
    the crowd's claims take here (LEAD_PER_TASK_SECONDS each), but not before
    the largest lead (`largest`, max_lead() unless given). A lone message
    starts when it would on AWS (15 ms sooner), so its hold and lateness stay
    AWS's (the cost bench measures them); a crowd of about 1,000 starts the
    largest lead before its second (300, with the AWS window of 5 s)."""
    largest = max_lead() if largest is None else largest
    return min(visible, max(due - largest, visible - LEAD_PER_TASK_SECONDS * crowd))


class Crowds:
    """How many invocations are due in each second (epoch seconds). A second
    keeps its count while its invocations start, so that the last of a crowd
    gets the same lead as the first; old seconds are trimmed."""

    def __init__(self) -> None:
        self.counts: collections.Counter[int] = collections.Counter()

    def add(self, at: float) -> None:
        self.counts[int(at)] += 1

    def remove(self, at: float) -> None:
        self.counts[int(at)] -= 1

    def __getitem__(self, at: float) -> int:
        return self.counts[int(at)]

    def clear(self) -> None:
        self.counts.clear()

    def trim(self, now: float) -> None:
        if len(self.counts) > 1000:
            for second in [s for s, n in self.counts.items() if s < now - 60 or n <= 0]:
                del self.counts[second]
