"""What an operator watches: health probes (`health.py`), Prometheus metrics (`metrics.py`), structured logs with a
request id that follows the Celery tasks a request starts (`logs.py`), and the redaction all three share so that
no secret leaves through them (`redaction.py`). `middleware.py` answers the probes and the metrics scrape before
host validation and HTTPS redirects, which probes from a kubelet or Prometheus by pod address would fail."""
