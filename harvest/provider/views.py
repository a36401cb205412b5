"""The OAI-PMH endpoint: one URL, GET or POST (application/x-www-form-urlencoded), every verb.

A response is gzip-compressed when the harvester accepts it (Accept-Encoding), at zlib's fastest level: a page of
ListRecords is a megabyte or more of repetitive XML, which level 1 shrinks several times over at hundreds of MB/s,
where Django's GZipMiddleware (level 6) measured ten times slower on a page (about 27 ms a megabyte). No
secret is ever in a response, so compression leaks nothing (BREACH).
"""

import re
import zlib

from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_vary_headers
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from harvest.provider.verbs import respond

GZIP_LEVEL = 1
GZIP_MIN_LENGTH = 1024  # below this, compression saves less than it costs
_ACCEPTS_GZIP = re.compile(r"\bgzip\b(?!\s*;\s*q\s*=\s*0(\.0*)?\s*(,|$))")


@csrf_exempt  # harvesters POST without a session or a CSRF token; the endpoint only reads
@require_http_methods(["GET", "POST"])
def oai_endpoint(request: HttpRequest) -> HttpResponse:
    arguments = request.POST if request.method == "POST" else request.GET
    # Protocol errors are answered with 200 and an <error> element, as OAI-PMH requires.
    body = respond(arguments)
    response = HttpResponse(content_type="text/xml; charset=utf-8")
    patch_vary_headers(response, ("Accept-Encoding",))
    if len(body) >= GZIP_MIN_LENGTH and _ACCEPTS_GZIP.search(request.headers.get("Accept-Encoding", "")):
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # wbits 31: the gzip container
        body = compressor.compress(body) + compressor.flush()
        response["Content-Encoding"] = "gzip"
    response.content = body
    return response
