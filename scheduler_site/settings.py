"""All configuration comes from environment variables (see the README).

Defaults are safe for production; the local mode (`make run`) and the tests set
their own values through the environment.
"""

from __future__ import annotations

from pathlib import Path

from django.utils.csp import CSP

from scheduler_site.env import env_bool, env_float, env_int, env_list, env_origins, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", False)
# The local mode (`make run`) relaxes a few production guards, each named below.
LOCAL_MODE = env_bool("SCHEDULER_LOCAL_MODE", False)

SECRET_KEY = env_str(
    "DJANGO_SECRET_KEY", "insecure-local-only-key" if (DEBUG or LOCAL_MODE) else None
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "django.contrib.messages",
    "corsheaders",
    "ninja",
    "tasks",
]

MIDDLEWARE = [
    # First: it answers CORS preflights itself (see CORS_* below).
    "corsheaders.middleware.CorsMiddleware",
    # Before anything reads a request body.
    "scheduler_site.middleware.RefuseChunkedBodiesMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "scheduler_site.middleware.DashboardCacheMiddleware",
    # Last, so it sees the 404/405 answers Django and ninja make as text.
    "scheduler_site.middleware.ApiJsonErrorsMiddleware",
    # After it: an exception from a view reaches the innermost first.
    "scheduler_site.middleware.StorageUnavailableMiddleware",
]

ROOT_URLCONF = "scheduler_site.urls"
WSGI_APPLICATION = "scheduler_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.messages.context_processors.messages",
                "tasks.context_processors.local_health",
            ],
        },
    },
]

# Tasks, API keys and operators live in DynamoDB; a Lambda has no disk to keep
# a SQL database on, so Django gets none.
DATABASES: dict = {}

# Sessions need no database: they are signed cookies.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
_SECURE_COOKIES = env_bool("DJANGO_SECURE_COOKIES", not (DEBUG or LOCAL_MODE))
SESSION_COOKIE_SECURE = _SECURE_COOKIES
CSRF_COOKIE_SECURE = _SECURE_COOKIES
CSRF_COOKIE_HTTPONLY = True
# One-time messages ("Task cancelled.") in a signed cookie: no database.
MESSAGE_STORAGE = "django.contrib.messages.storage.cookie.CookieStorage"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Same-origin everything and no inline script or style: htmx is configured
# (base.html) not to inject styles nor to eval.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = env_str("DJANGO_STATIC_URL", "static/")
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "staticfiles": {
        # Hashed names need `collectstatic` (the Lambda package runs it); the
        # local mode and DEBUG serve straight from the apps. Both storages keep
        # the stage prefix (SCRIPT_NAME) in static URLs (scheduler_site/storage.py).
        "BACKEND": "scheduler_site.storage.ManifestStorage"
        if not (DEBUG or LOCAL_MODE)
        else "scheduler_site.storage.PlainStorage",
    },
}
WHITENOISE_USE_FINDERS = DEBUG or LOCAL_MODE
WHITENOISE_MANIFEST_STRICT = False

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- CORS -------------------------------------------------------------------
# Browser apps on these origins may call the JSON API (not the dashboard).
# None by default. API keys travel in the Authorization header, never in
# cookies, so credentials are not allowed.
CORS_ALLOWED_ORIGINS = env_origins("CORS_ALLOWED_ORIGINS")
CORS_URLS_REGEX = r"^/(api/|schedule-task$)"
# Every method the API's routes use (tests/test_cors.py checks them against
# the OpenAPI schema): DELETE discards a dead letter and deletes a schedule,
# PATCH changes a schedule.
CORS_ALLOW_METHODS = ("DELETE", "GET", "OPTIONS", "PATCH", "POST")
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "idempotency-key")
CORS_ALLOW_CREDENTIALS = False
CORS_PREFLIGHT_MAX_AGE = 86400

# --- AWS -------------------------------------------------------------------
# AWS_ENDPOINT_URL (botocore's standard variable) points every client at a
# local server in the local mode and in tests.
AWS_REGION = env_str("AWS_REGION", env_str("AWS_DEFAULT_REGION", "us-east-1"))
TABLE_PREFIX = env_str(
    "SCHEDULER_TABLE_PREFIX", "task-scheduler-local" if LOCAL_MODE else "task-scheduler-dev"
)
TASKS_TABLE = env_str("TASKS_TABLE", f"{TABLE_PREFIX}-tasks")
API_KEYS_TABLE = env_str("API_KEYS_TABLE", f"{TABLE_PREFIX}-api-keys")
OPERATORS_TABLE = env_str("OPERATORS_TABLE", f"{TABLE_PREFIX}-operators")
SCHEDULES_TABLE = env_str("SCHEDULES_TABLE", f"{TABLE_PREFIX}-schedules")

SCHEDULE_GROUP = env_str("SCHEDULER_GROUP_NAME", "task-scheduler-dev")
EXECUTOR_FUNCTION_ARN = env_str(
    "EXECUTOR_FUNCTION_ARN",
    "arn:aws:lambda:us-east-1:000000000000:function:task-scheduler-dev-executor",
)
SCHEDULER_ROLE_ARN = env_str(
    "SCHEDULER_ROLE_ARN", "arn:aws:iam::000000000000:role/task-scheduler-dev-scheduler"
)
# Where EventBridge Scheduler and the executor's Lambda put invocations they
# gave up on; the dashboard's Dead letters page reads it. The local mode has
# its own queue on the local endpoint, where the stand-in puts them.
SCHEDULER_DLQ_ARN = env_str(
    "SCHEDULER_DLQ_ARN",
    f"arn:aws:sqs:{AWS_REGION}:123456789012:{TABLE_PREFIX}-dlq" if LOCAL_MODE else "",
)
# HTTP connections each AWS client keeps. A Lambda runs one invocation at a
# time; the local mode runs many executor threads in one process.
AWS_MAX_POOL_CONNECTIONS = env_int("AWS_MAX_POOL_CONNECTIONS", 64 if LOCAL_MODE else 10, minimum=1)
# EventBridge's own retries of a failed Lambda invocation (not webhook retries).
SCHEDULER_MAX_RETRY_ATTEMPTS = env_int("SCHEDULER_MAX_RETRY_ATTEMPTS", 2, minimum=0)
SCHEDULER_MAX_EVENT_AGE_SECONDS = env_int("SCHEDULER_MAX_EVENT_AGE_SECONDS", 3600, minimum=60)
# The hop queue (tasks/taskqueue.py): with it, schedules fire a minute early
# and the executor hands each task to this SQS queue with DelaySeconds, so
# that it arrives just before its second. Without it (""), a schedule fires
# at its second and an early delivery waits in the executor.
TASK_QUEUE_URL = env_str("TASK_QUEUE_URL", "")
# A hop message becomes visible within the second that starts this long
# before the task is due (tasks/taskqueue.py): more is more precise and
# dearer (the executor holds what comes early), less is cheaper and later.
TASK_HOP_LEAD_SECONDS = env_float("TASK_HOP_LEAD_SECONDS", 0.75, minimum=0.5)
# How long before its due time the executor may claim a task (it then holds
# the delivery, connected, until due: tasks/services/running.py). On AWS each
# invocation has its own Lambda, and 5 s is plenty. The local mode runs every
# invocation in one process against an endpoint that serves one request at a
# time, and a crowd of tasks due in the same second needs all of its claims
# made before that second (tasks/localmode/crowd.py): it takes 15 s. At most
# 30 s, well inside the executor's lease (EXECUTOR_LEASE_SECONDS, at least 60).
TASK_CLAIM_EARLY_SECONDS = env_float(
    "TASK_CLAIM_EARLY_SECONDS", 15.0 if LOCAL_MODE else 5.0, minimum=1.0, maximum=30.0
)

# --- Tasks ------------------------------------------------------------------
TASK_DEFAULT_MAX_ATTEMPTS = env_int("TASK_DEFAULT_MAX_ATTEMPTS", 3, minimum=1)
TASK_MAX_ATTEMPTS_LIMIT = env_int("TASK_MAX_ATTEMPTS_LIMIT", 10, minimum=1)
# runAt further in the past than this is refused; within it the task runs now.
TASK_PAST_TOLERANCE_SECONDS = env_int("TASK_PAST_TOLERANCE_SECONDS", 300, minimum=0)
TASK_MAX_HORIZON_DAYS = env_int("TASK_MAX_HORIZON_DAYS", 365, minimum=1)
TASK_MAX_PAYLOAD_BYTES = env_int("TASK_MAX_PAYLOAD_BYTES", 65536, minimum=1024)
TASK_RETRY_BASE_SECONDS = env_float("TASK_RETRY_BASE_SECONDS", 30.0)
TASK_RETRY_MAX_SECONDS = env_float("TASK_RETRY_MAX_SECONDS", 3600.0)
# A running task whose executor has not finished after this long is stuck
# (longer than the executor Lambda's timeout): it may be cancelled or retried.
EXECUTOR_LEASE_SECONDS = env_int("EXECUTOR_LEASE_SECONDS", 300, minimum=60)

# --- Webhooks ---------------------------------------------------------------
# Required by the executor (it refuses to run a webhook unsigned); the fixed,
# public default is only acceptable where nothing is real.
WEBHOOK_SIGNING_SECRET = env_str(
    "WEBHOOK_SIGNING_SECRET",
    "whsec_bG9jYWwtb25seS1zaWduaW5nLXNlY3JldC0wMDAw" if (DEBUG or LOCAL_MODE) else "",
)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 10.0, minimum=0.1)
# Lets webhooks reach loopback and private networks: for local development only.
WEBHOOK_ALLOW_PRIVATE_NETWORKS = env_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", LOCAL_MODE)
WEBHOOK_USER_AGENT = "django-task-scheduler/0.1 (+webhook)"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Their INFO lines (credential and endpoint discovery) are noise.
    "loggers": {
        **{name: {"level": "WARNING"} for name in ("botocore", "boto3", "pynamodb", "urllib3")},
        # "Connection pool is full, discarding connection" is harmless.
        "urllib3.connectionpool": {"level": "ERROR"},
    },
}
