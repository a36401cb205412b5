# gunicorn -c deploy/gunicorn.conf.py repository.wsgi:application
# Uploads stream through the worker for minutes at a time, so use threads and a long timeout.
import os

bind = "127.0.0.1:8000"
workers = 2
threads = 4
worker_class = "gthread"
timeout = 3600
graceful_timeout = 60
# With LOG_FORMAT=json (the default with DJANGO_DEBUG=0) the app logs each request as a JSON line with its request
# id; gunicorn's own plain access line would only repeat it in another shape.
accesslog = "-" if os.environ.get("LOG_FORMAT") == "text" else None
# A worker's heap grows with each large upload it streams (glibc keeps freed arenas); recycling workers now
# and then keeps their memory flat (see tests/bench/upload.py).
max_requests = 500
max_requests_jitter = 100


def child_exit(server, worker):
    # /metrics sums the request metrics of every worker (PROMETHEUS_MULTIPROC_DIR): drop a dead worker's live gauges.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_starting(server):
    # The request metrics of a previous start would otherwise be summed with this one's.
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)
