"""Answers the health probes and the metrics scrape first in the middleware stack.

Before host validation and the HTTPS redirect on purpose: a kubelet or Prometheus reaches a pod by its address
(not an ALLOWED_HOSTS name) over plain HTTP. Nothing here uses the Host header, cookies or the session.
"""

from django.http import HttpResponse, JsonResponse

from repository.observability import health, metrics

METRICS = "/metrics"


class OperationsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Their latency is measured under a name of their own (they resolve to no view).
        request.metrics_view = request.path.strip("/").replace("/", "_")
        if request.path == health.LIVE:
            response = JsonResponse({"status": "alive"})
        elif request.path == health.READY:
            ready, body = health.readiness()
            response = JsonResponse(body, status=200 if ready else 503)
        elif request.path == METRICS:
            if not metrics.may_read_metrics(request):
                response = HttpResponse("Metrics are readable from METRICS_ALLOWED_CIDRS or with METRICS_TOKEN.\n",
                                        status=403, content_type="text/plain")
            else:
                from prometheus_client import CONTENT_TYPE_LATEST

                response = HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
        else:
            del request.metrics_view
            return self.get_response(request)
        response["Cache-Control"] = "no-store"
        # A probe every few seconds must not write a warning each time it is refused or finds a part down: the
        # answer says what failed, to the prober that asked.
        response._has_been_logged = True
        return response
