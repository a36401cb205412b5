# gunicorn -c deploy/gunicorn.conf.py repository.wsgi:application
# The web pool: pages, downloads, the API's reads and small writes. File uploads have a pool of their own
# (deploy/gunicorn-uploads.conf.py; deploy/nginx.conf routes them), so nothing here recycles workers: each restart
# would drop its threads' database connections and warm caches (measured: ~100 instead of 300 API requests/s).
# Threads, since a download from local storage streams through the worker for as long as the client reads.
import os

bind = "127.0.0.1:8000"
workers = 2
threads = 4
worker_class = "gthread"
# gthread workers tell the arbiter they are alive every second whatever their threads do, so this only ends a
# worker whose main loop hangs; a long download is not cut by it.
timeout = 60
graceful_timeout = 60
# With LOG_FORMAT=json (the default with DJANGO_DEBUG=0) the app logs each request as a JSON line with its request
# id; gunicorn's own plain access line would only repeat it in another shape.
accesslog = "-" if os.environ.get("LOG_FORMAT") == "text" else None


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
