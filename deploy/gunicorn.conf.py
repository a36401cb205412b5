# gunicorn -c deploy/gunicorn.conf.py repository.wsgi:application
# Uploads stream through the worker for minutes at a time, so use threads and a long timeout.
bind = "127.0.0.1:8000"
workers = 2
threads = 4
worker_class = "gthread"
timeout = 3600
graceful_timeout = 60
accesslog = "-"
