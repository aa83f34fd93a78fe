"""Where the local firer learns the schedules from.

Both give each schedule's definition as GetSchedule returns it (the app
creates them through the boto3 'scheduler' API, as on AWS):

- FeedSource: the local endpoint's change feed (feed.py): one bulk read,
  then long polls that return only what changed. A poll costs the same with
  ten schedules pending or ten thousand. What runlocal uses.
- ListingSource: ListSchedules and GetSchedule on any scheduler endpoint
  (moto in-process in unit tests), polled. Its cost grows with the schedules.

`read_all()` returns every definition of the group; `changes()` returns
[(name, definition or None when deleted)], or None when the source lost
track (read everything again).
"""

from __future__ import annotations

import json
import time
from typing import Any

Change = tuple[str, dict | None]

LONG_POLL_SECONDS = 20.0


class SourceUnavailable(Exception):
    """The endpoint did not answer (stopped, restarting)."""


class FeedSource:
    def __init__(self, endpoint: str, group: str, wait: float = LONG_POLL_SECONDS) -> None:
        import urllib3

        self.base = endpoint.rstrip("/") + "/_local/schedules"
        self.group = group
        self.wait = wait
        self.epoch = ""
        self.seq = 0
        self.http = urllib3.PoolManager(
            maxsize=1, retries=False, timeout=urllib3.Timeout(connect=2, read=wait + 10)
        )

    def _get(self, url: str) -> dict:
        import urllib3

        try:
            response = self.http.request("GET", url)
        except urllib3.exceptions.HTTPError as exc:
            raise SourceUnavailable(str(exc)) from None
        if response.status != 200:
            raise SourceUnavailable(f"{url}: HTTP {response.status}")
        return json.loads(response.data)

    def read_all(self) -> list[dict]:
        answer = self._get(self.base)
        self.epoch, self.seq = answer["epoch"], answer["seq"]
        return [s for s in answer["schedules"] if s.get("GroupName") == self.group]

    def changes(self) -> list[Change] | None:
        answer = self._get(f"{self.base}?since={self.seq}&epoch={self.epoch}&wait={self.wait}")
        if answer.get("reset"):
            return None
        self.seq = answer["seq"]
        return [(c["name"], c["schedule"]) for c in answer["changes"] if c["group"] == self.group]

    def close(self) -> None:
        self.http.clear()


class ListingSource:
    def __init__(self, client: Any, group: str, poll_interval: float = 0.25) -> None:
        self.client = client
        self.group = group
        self.poll_interval = poll_interval
        # Each schedule's LastModificationDate as listed: a changed one (a
        # recurring schedule edited or paused) is read again.
        self.known: dict[str, Any] = {}

    def _names(self) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        for _ in range(3):
            names: dict[str, Any] = {}
            kwargs: dict = {"GroupName": self.group, "MaxResults": 100}
            try:
                while True:
                    page = self.client.list_schedules(**kwargs)
                    for summary in page.get("Schedules", []):
                        names[summary["Name"]] = summary.get("LastModificationDate")
                    if not page.get("NextToken"):
                        return names
                    kwargs["NextToken"] = page["NextToken"]
            except ClientError as exc:
                # A page token goes stale when its schedule is deleted
                # meanwhile: list again from the start.
                if exc.response["Error"]["Code"] != "InvalidToken":
                    raise
        raise SourceUnavailable("the schedule listing kept changing")

    def _get(self, name: str) -> dict | None:
        try:
            return self.client.get_schedule(Name=name, GroupName=self.group)
        except self.client.exceptions.ResourceNotFoundException:
            return None

    def read_all(self) -> list[dict]:
        self.known = self._names()
        return [d for name in self.known if (d := self._get(name))]

    def changes(self) -> list[Change] | None:
        time.sleep(self.poll_interval)
        names = self._names()
        changed = [n for n, modified in names.items() if self.known.get(n, modified) != modified]
        found: list[Change] = [(n, self._get(n)) for n in [*(names.keys() - self.known), *changed]]
        found += [(name, None) for name in self.known.keys() - names.keys()]
        self.known = names
        return found

    def close(self) -> None:
        return None
