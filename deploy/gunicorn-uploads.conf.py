# gunicorn -c deploy/gunicorn-uploads.conf.py repository.wsgi:application
# The upload pool: deploy/nginx.conf sends it only the requests that carry file bytes (PUT of a draft's file, PUT
# of a direct upload's part), which stream through a worker for minutes. Everything else goes to the web pool
# (deploy/gunicorn.conf.py), so recycling workers here never touches pages or the read API.
import os
from pathlib import Path

# The hooks (and settings) of the web pool; what differs follows.
exec(compile(Path(__file__).with_name("gunicorn.conf.py").read_text(), "gunicorn.conf.py", "exec"))

bind = "127.0.0.1:8001"
timeout = 3600
# A worker's heap grows with each large upload it streams (glibc keeps freed arenas; MALLOC_ARENA_MAX=2 of
# deploy/env.example bounds it, see tests/bench/upload.py): recycle a worker now and then as a second guard.
max_requests = 500
max_requests_jitter = 100
# A recycled (or reloaded) worker stops taking requests and finishes the uploads it is streaming: give a part or
# a whole file that long before it is cut off.
graceful_timeout = 900

# Its own metrics directory: on_starting empties it, and the web pool's must survive this pool's restarts.
# Scrape this pool's /metrics on its own port (deploy/env.example).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ.get(
        "UPLOADS_PROMETHEUS_MULTIPROC_DIR", os.environ["PROMETHEUS_MULTIPROC_DIR"].rstrip("/") + "-uploads")
