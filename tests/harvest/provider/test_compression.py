"""Responses are gzip-compressed for harvesters that accept it, and only for them."""

import gzip

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

LIST = {"verb": "ListRecords", "metadataPrefix": "oai_dc"}


def test_a_harvester_that_accepts_gzip_gets_the_same_document_compressed(publish):
    for i in range(5):
        publish(title=f"Compressed {i}")
    plain = Client().get("/oai", LIST)
    compressed = Client().get("/oai", LIST, HTTP_ACCEPT_ENCODING="gzip, deflate")

    assert compressed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in compressed["Vary"] and "Accept-Encoding" in plain["Vary"]
    assert len(compressed.content) < len(plain.content) / 2
    unpacked = gzip.decompress(compressed.content)
    # The same document but for the moment of the response.
    strip = lambda body: body.split(b"<responseDate>")[0] + body.split(b"</responseDate>")[1]  # noqa: E731
    assert strip(unpacked) == strip(plain.content)
    assert b"Compressed 4" in unpacked


@pytest.mark.parametrize("accept_encoding", [None, "identity", "deflate", "gzip;q=0", "br, gzip; q=0.0"])
def test_a_harvester_that_does_not_accept_gzip_gets_plain_xml(publish, accept_encoding):
    for i in range(5):
        publish(title=f"Plain {i}")
    headers = {"HTTP_ACCEPT_ENCODING": accept_encoding} if accept_encoding else {}

    response = Client().get("/oai", LIST, **headers)

    assert not response.has_header("Content-Encoding")
    assert response.content.startswith(b"<?xml") and b"Plain 4" in response.content
