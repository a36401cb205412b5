# gunicorn -c deploy/gunicorn.conf.py repository.wsgi:application
# Uploads stream through the worker for minutes at a time, so use threads and a long timeout.
bind = "127.0.0.1:8000"
workers = 2
threads = 4
worker_class = "gthread"
timeout = 3600
graceful_timeout = 60
accesslog = "-"
# A worker's heap grows with each large upload it streams (glibc keeps freed arenas); recycling workers now
# and then keeps their memory flat (see tests/bench/upload.py).
max_requests = 500
max_requests_jitter = 100
