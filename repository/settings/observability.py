"""Health probes, Prometheus metrics and logs (repository/observability/)."""

from ._env import env

# The queues a Celery worker must consume for /health/ready to say ready; /metrics reports their depth.
WORKER_QUEUES = env.list("WORKER_QUEUES", default=["celery", "verification", "dois"])
# Seconds each readiness check may take (they run at once), and the workers' share of it to answer the broadcast.
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=3.0)
HEALTH_WORKER_TIMEOUT = env.float("HEALTH_WORKER_TIMEOUT", default=1.0)

# Who may read /metrics: clients from these networks (a request that came through a proxy never counts as
# local), or anyone presenting `Authorization: Bearer <METRICS_TOKEN>`. Empty token: no token is accepted.
METRICS_ALLOWED_CIDRS = env.list("METRICS_ALLOWED_CIDRS", default=["127.0.0.0/8", "::1/128"])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
