"""Dashboard URLs, mounted at the site root after the API (scheduler_site/urls.py)."""

from __future__ import annotations

from django.urls import path

from tasks.views import auth, dead_letters, keys, schedules, tasks

app_name = "dashboard"

urlpatterns = [
    path("", tasks.task_list, name="task_list"),
    path("login/", auth.login_view, name="login"),
    path("logout/", auth.logout_view, name="logout"),
    path("tasks/new/", tasks.task_new, name="task_new"),
    path("tasks/go/", tasks.task_go, name="task_go"),
    path("tasks/<str:task_id>/", tasks.task_detail, name="task_detail"),
    path(
        "tasks/<str:task_id>/cancel/",
        tasks.task_command,
        {"command": "cancel"},
        name="task_cancel",
    ),
    path(
        "tasks/<str:task_id>/run-now/",
        tasks.task_command,
        {"command": "run_now"},
        name="task_run_now",
    ),
    path("tasks/<str:task_id>/retry/", tasks.task_command, {"command": "retry"}, name="task_retry"),
    path("tasks/<str:task_id>/reschedule/", tasks.task_reschedule, name="task_reschedule"),
    path("dead-letters/", dead_letters.dead_letter_list, name="dead_letters"),
    path(
        "dead-letters/replay-all/",
        dead_letters.dead_letter_replay_all,
        name="dead_letter_replay_all",
    ),
    path(
        "dead-letters/<str:message_id>/replay/",
        dead_letters.dead_letter_replay,
        name="dead_letter_replay",
    ),
    path(
        "dead-letters/<str:message_id>/discard/",
        dead_letters.dead_letter_discard,
        name="dead_letter_discard",
    ),
    path("schedules/", schedules.schedule_list, name="schedule_list"),
    path("schedules/new/", schedules.schedule_new, name="schedule_new"),
    path("schedules/preview/", schedules.schedule_preview, name="schedule_preview"),
    path("schedules/<str:schedule_id>/", schedules.schedule_detail, name="schedule_detail"),
    path("schedules/<str:schedule_id>/edit/", schedules.schedule_edit, name="schedule_edit"),
    *[
        path(
            f"schedules/<str:schedule_id>/{command}/",
            schedules.schedule_command,
            {"command": command},
            name=f"schedule_{command}",
        )
        for command in ("pause", "resume", "delete")
    ],
    path("keys/", keys.key_list, name="keys"),
    path("keys/<str:key_id>/revoke/", keys.key_revoke, name="key_revoke"),
]
