from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks import Webhook

from tasks import services
from tasks.executor import run_task


def test_it_delivers_a_due_webhook(aws, httpserver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_NETWORKS = True
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    task, _ = services.task_create(
        action="webhook",
        payload={"url": httpserver.url_for("/hook"), "data": {"a": 1}},
        run_at=datetime.now(UTC),
    )
    result = run_task({"task_id": task.id}, None)
    assert result["result"] == "completed"
    request, _response = httpserver.log[0]
    Webhook(settings.WEBHOOK_SIGNING_SECRET).verify(request.get_data(), dict(request.headers))
    stored = services.task_get(task_id=task.id)
    assert stored.status == "completed"
    assert stored.attempt_history[0].http_status == 200
