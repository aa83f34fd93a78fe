"""The Dead letters page: what the dead-letter queue holds, replayed or
discarded one by one or all at once. Thin: services/dead_letters.py decides."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from tasks.errors import Conflict, NotFound, Unavailable
from tasks.services import dead_letters
from tasks.views.auth import as_sentence, login_required, render_page

RESULT_WORDS = {"run_now": "runs now", "removed": "removed", "kept": "kept"}


@require_GET
@login_required
def dead_letter_list(request: HttpRequest) -> HttpResponse:
    try:
        page = dead_letters.deadletter_list()
        problem = None
    except Unavailable as exc:
        page, problem = None, exc.message
    context = {"page": page, "problem": problem, "max_messages": dead_letters.MAX_MESSAGES}
    return render_page(request, "tasks/dead_letters.html", context, 503 if problem else 200)


@require_POST
@login_required
def dead_letter_replay(request: HttpRequest, message_id: str) -> HttpResponse:
    try:
        replayed = dead_letters.deadletter_replay(message_id=message_id)
    except (NotFound, Conflict, Unavailable) as exc:
        messages.error(request, as_sentence(exc.message))
    else:
        messages.success(request, as_sentence(f"Replayed: {replayed.detail}"))
    return redirect("dashboard:dead_letters")


@require_POST
@login_required
def dead_letter_replay_all(request: HttpRequest) -> HttpResponse:
    try:
        results = dead_letters.deadletter_replay_all()
    except Unavailable as exc:
        messages.error(request, as_sentence(exc.message))
        return redirect("dashboard:dead_letters")
    counts = {word: 0 for word in RESULT_WORDS}
    for result in results:
        counts[result.result] += 1
    summary = ", ".join(f"{n} {RESULT_WORDS[word]}" for word, n in counts.items() if n)
    messages.success(request, f"Replayed {len(results)} dead letters: {summary or 'none'}.")
    return redirect("dashboard:dead_letters")


@require_POST
@login_required
def dead_letter_discard(request: HttpRequest, message_id: str) -> HttpResponse:
    try:
        dead_letters.deadletter_discard(message_id=message_id)
    except (NotFound, Unavailable) as exc:
        messages.error(request, as_sentence(exc.message))
    else:
        messages.success(request, "Dead letter discarded.")
    return redirect("dashboard:dead_letters")
