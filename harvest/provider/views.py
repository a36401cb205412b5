"""The OAI-PMH endpoint: one URL, GET or POST (application/x-www-form-urlencoded), every verb."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from harvest.provider.verbs import respond


@csrf_exempt  # harvesters POST without a session or a CSRF token; the endpoint only reads
@require_http_methods(["GET", "POST"])
def oai_endpoint(request: HttpRequest) -> HttpResponse:
    arguments = request.POST if request.method == "POST" else request.GET
    # Protocol errors are answered with 200 and an <error> element, as OAI-PMH requires.
    return HttpResponse(respond(arguments), content_type="text/xml; charset=utf-8")
