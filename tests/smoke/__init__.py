"""`make smoke`: the production topology started as separate processes on this machine and driven over HTTP.

`python -m tests.smoke.run` starts PostgreSQL's database, Redis, moto's S3 server (files and backup buckets), the
DataCite fake, a docker-registry serving the `minimal` test image, two gunicorn pools (web and uploads, the
shipped deploy/ configurations), a Celery worker per queue and one beat, all with DJANGO_DEBUG=0; then deposits,
verifies in the pinned image, accepts, and checks the DOI, landing page, OAI-PMH, search, health, backup and
restore. Modules: `supervisor` (processes and their logs), `backing` (the services the app talks to), `topology`
(the app's own processes and their environment), `flow` (the HTTP steps), `run` (the steps in order, timings and
the one-line verdict).
"""
