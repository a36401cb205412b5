"""Staging of version files and data references: placement, checksums, cache, and the SSRF defences.

Network tests talk to a real HTTPS server on 127.0.0.1 (tests/fakes/https_server.py) whose certificate comes from
a throwaway CA; they allow 127.0.0.0/8 explicitly, as only tests and on-premise archives may. Refusal tests use the
default policy and assert that no connection was even attempted.
"""

import dataclasses
import hashlib
import io
import json
import os
import re
import socket
import stat
import threading
import time
from pathlib import Path

import pytest
import trustme
import urllib3.util.connection

from repository.runners.staging import (
    FetchPolicy,
    FileSpec,
    ReferenceSpec,
    StagingError,
    StagingStorageUnavailable,
    cache_dir_from_settings,
    policy_from_settings,
    stage_inputs,
)
from repository.storage import store_stream
from tests.fakes.https_server import LoopbackHTTPSServer

DATA = b"station,temperature\nA,12.5\nB,13.1\n"
DATA_SHA = hashlib.sha256(DATA).hexdigest()
DATA_SIZE = len(DATA)
OTHER_SHA = hashlib.sha256(b"something else").hexdigest()


# --- fixtures -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def ca_file(ca, tmp_path):
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def server(ca):
    with LoopbackHTTPSServer(ca) as running:
        yield running


@pytest.fixture
def other_server(ca):
    with LoopbackHTTPSServer(ca) as running:
        yield running


@pytest.fixture
def loopback_policy(ca_file):
    return FetchPolicy(allowed_networks=("127.0.0.0/8",), ca_bundle=ca_file, timeout_seconds=5, total_seconds=20)


@pytest.fixture
def workdir(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def connections(monkeypatch):
    """Every TCP connection urllib3 opens, as (host, port); the connection itself still happens."""
    opened = []
    real = urllib3.util.connection.create_connection

    def recording(address, *args, **kwargs):
        opened.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", recording)
    return opened


@pytest.fixture
def fake_dns(monkeypatch):
    """Answer chosen host names with chosen addresses (a list per lookup, used in turn); others resolve normally.

    Returns the mapping to fill and the list of names looked up.
    """
    answers: dict[str, list] = {}
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            lookups.append(host)
            queue = answers[host]
            addresses = queue.pop(0) if len(queue) > 1 else queue[0]
            if addresses is None:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
                for a in addresses
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, lookups


def url_ref(url, *, sha=DATA_SHA, size=DATA_SIZE, target="data/stations.csv", kind="url", **extra):
    return ReferenceSpec(
        label=f"data reference 1 ({url})", kind=kind, identifier=url, target_path=target, sha256=sha, size=size, **extra
    )


def stage(workdir, cache_dir, policy, references=(), files=()):
    return stage_inputs(
        workdir=workdir, files=list(files), references=list(references), cache_dir=cache_dir, policy=policy
    )


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def cache_files(cache_dir):
    return sorted(p.name for p in cache_dir.rglob("*") if p.is_file()) if cache_dir.exists() else []


def store_blob(data: bytes):
    return store_stream(io.BytesIO(data), max_size=10**9, expected_size=len(data))


# --- a good download ----------------------------------------------------------------------------------------------


def test_url_download_is_staged_read_only_with_its_checksum(server, loopback_policy, workdir, cache_dir):
    server.add_file("/files/stations.csv", DATA, content_type="text/csv")
    url = server.url("/files/stations.csv")

    [result] = stage(workdir, cache_dir, loopback_policy, [url_ref(url)])

    target = workdir / "data" / "stations.csv"
    assert target.read_bytes() == DATA
    assert result == {
        "label": f"data reference 1 ({url})",
        "target_path": "data/stations.csv",
        "sha256": DATA_SHA,
        "size": len(DATA),
        "source_url": url,
        "from_cache": False,
    }
    assert mode(target) == 0o444
    assert mode(workdir / "data") == 0o555
    assert mode(workdir) & 0o200, "the workdir root stays writable for the caller's scratch folder"
    assert (cache_dir / DATA_SHA[:2] / DATA_SHA).read_bytes() == DATA
    [request] = server.requests
    assert request.headers["user-agent"] == "nbarchive-staging/1"
    assert request.headers["host"] == f"127.0.0.1:{server.port}"
    assert request.headers["accept-encoding"] == "identity"


def test_second_staging_comes_from_the_cache_without_contacting_the_server(
    server, loopback_policy, tmp_path, cache_dir
):
    server.add_file("/a.csv", DATA)
    reference = url_ref(server.url("/a.csv"))
    first, second = tmp_path / "run1", tmp_path / "run2"
    first.mkdir()
    second.mkdir()

    stage(first, cache_dir, loopback_policy, [reference])
    [result] = stage(second, cache_dir, loopback_policy, [reference])

    assert len(server.requests) == 1
    assert result["from_cache"] is True and result["source_url"] is None
    assert (second / "data" / "stations.csv").read_bytes() == DATA
    assert mode(second / "data" / "stations.csv") == 0o444


def test_a_cache_entry_altered_after_writing_is_not_trusted(server, loopback_policy, tmp_path, cache_dir):
    server.add_file("/a.csv", DATA)
    reference = url_ref(server.url("/a.csv"))
    (tmp_path / "run1").mkdir()
    (tmp_path / "run2").mkdir()
    stage(tmp_path / "run1", cache_dir, loopback_policy, [reference])
    entry = cache_dir / DATA_SHA[:2] / DATA_SHA
    os.chmod(entry, 0o644)
    entry.write_bytes(b"x" * len(DATA))

    [result] = stage(tmp_path / "run2", cache_dir, loopback_policy, [reference])

    assert result["from_cache"] is False
    assert len(server.requests) == 2
    assert (tmp_path / "run2" / "data" / "stations.csv").read_bytes() == DATA
    assert entry.read_bytes() == DATA and mode(entry) == 0o444


def test_concurrent_runs_fill_the_same_cache_entry_without_corrupting_it(server, loopback_policy, tmp_path, cache_dir):
    server.add_file("/a.csv", DATA)
    reference = url_ref(server.url("/a.csv"))
    errors = []

    def run(number):
        workdir = tmp_path / f"run{number}"
        workdir.mkdir()
        try:
            stage(workdir, cache_dir, loopback_policy, [reference])
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert cache_files(cache_dir) == [DATA_SHA], "one whole entry, no temporary files left"
    for number in range(6):
        assert (tmp_path / f"run{number}" / "data" / "stations.csv").read_bytes() == DATA


def test_wrong_checksum_names_the_reference_and_leaves_no_file(server, loopback_policy, workdir, cache_dir):
    server.add_file("/a.csv", DATA)
    url = server.url("/a.csv")

    with pytest.raises(StagingError) as caught:
        stage(workdir, cache_dir, loopback_policy, [url_ref(url, sha=OTHER_SHA)])

    message = str(caught.value)
    assert message.startswith(f"data reference 1 ({url}): ")
    assert f"sha256 is {DATA_SHA}" in message and f"the reference says {OTHER_SHA}" in message
    assert "changed at the source or the checksum is wrong" in message
    assert "\n" not in message
    assert caught.value.reference_label == f"data reference 1 ({url})"
    assert not (workdir / "data" / "stations.csv").exists()
    assert cache_files(cache_dir) == []


# --- what is refused before any connection ------------------------------------------------------------------------


def test_plain_http_is_refused(connections, workdir, cache_dir):
    with pytest.raises(StagingError, match="is not an https URL"):
        stage(workdir, cache_dir, FetchPolicy(), [url_ref("http://example.org/a.csv")])
    assert connections == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/a.csv", "loopback"),
        ("https://localhost/a.csv", "loopback"),
        ("https://10.1.2.3/a.csv", "private"),
        ("https://192.168.0.10/a.csv", "private"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://[::1]/a.csv", "loopback"),
        ("https://[::ffff:127.0.0.1]/a.csv", "loopback (IPv4 inside IPv6)"),
        ("https://[fd00::1]/a.csv", "private"),
        ("https://100.64.0.1/a.csv", "shared"),
        ("https://0.0.0.0/a.csv", "unspecified"),
    ],
)
def test_non_public_addresses_are_refused_without_connecting(url, reason, connections, workdir, cache_dir):
    with pytest.raises(StagingError, match=re.escape(f"a {reason}")) as caught:
        stage(workdir, cache_dir, FetchPolicy(), [url_ref(url)])
    assert "only fetched from public internet addresses" in str(caught.value)
    assert connections == []
    assert not (workdir / "data").exists()


def test_a_name_is_refused_when_any_of_its_addresses_is_private(fake_dns, connections, workdir, cache_dir):
    answers, _ = fake_dns
    answers["mixed.example"] = [["93.184.215.14", "10.0.0.5"]]
    with pytest.raises(StagingError, match="resolves to 10.0.0.5, a private address"):
        stage(workdir, cache_dir, FetchPolicy(), [url_ref("https://mixed.example/a.csv")])
    assert connections == []


def test_declared_size_over_the_limit_is_refused_before_fetching(server, loopback_policy, workdir, cache_dir):
    server.add_file("/a.csv", DATA)
    policy = FetchPolicy(
        max_bytes=10, allowed_networks=loopback_policy.allowed_networks, ca_bundle=loopback_policy.ca_bundle
    )
    with pytest.raises(StagingError, match="more than the limit of 10 bytes"):
        stage(workdir, cache_dir, policy, [url_ref(server.url("/a.csv"))])
    assert server.requests == []


def test_an_allowed_network_only_allows_itself(server, ca_file, connections, workdir, cache_dir):
    server.add_file("/a.csv", DATA)
    policy = FetchPolicy(allowed_networks=("127.0.0.2/32",), ca_bundle=ca_file)
    with pytest.raises(StagingError, match="a loopback address"):
        stage(workdir, cache_dir, policy, [url_ref(server.url("/a.csv"))])
    assert connections == [] and server.requests == []


# --- DNS, TLS -----------------------------------------------------------------------------------------------------


def test_connects_to_the_checked_address_not_a_second_lookup(server, fake_dns, loopback_policy, workdir, cache_dir):
    answers, lookups = fake_dns
    # A rebinding resolver: the first answer passes the check, any later lookup would get something else.
    answers["data.example"] = [["127.0.0.1"], None]
    server.add_file("/a.csv", DATA)
    url = server.url("/a.csv", host="data.example")

    [result] = stage(workdir, cache_dir, loopback_policy, [url_ref(url)])

    assert result["source_url"] == url
    assert lookups == ["data.example"]
    assert server.requests[0].headers["host"] == f"data.example:{server.port}"


def test_a_certificate_for_another_name_is_refused(server, fake_dns, loopback_policy, workdir, cache_dir):
    answers, _ = fake_dns
    answers["wrong.example"] = [["127.0.0.1"]]
    server.add_file("/a.csv", DATA)
    with pytest.raises(StagingError, match="TLS certificate of wrong.example could not be verified"):
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/a.csv", host="wrong.example"))])
    assert server.requests == []


def test_a_certificate_from_an_untrusted_ca_is_refused(server, workdir, cache_dir):
    server.add_file("/a.csv", DATA)
    policy = FetchPolicy(allowed_networks=("127.0.0.0/8",))  # no ca_bundle: the test CA is unknown
    with pytest.raises(StagingError, match="could not be verified"):
        stage(workdir, cache_dir, policy, [url_ref(server.url("/a.csv"))])
    assert server.requests == []


# --- redirects ----------------------------------------------------------------------------------------------------


def test_redirect_to_the_same_server_is_followed(server, loopback_policy, workdir, cache_dir):
    server.add_redirect("/latest.csv", "/v2/stations.csv")
    server.add_file("/v2/stations.csv", DATA)

    [result] = stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/latest.csv"))])

    assert result["source_url"] == server.url("/v2/stations.csv")
    assert (workdir / "data" / "stations.csv").read_bytes() == DATA


def test_redirect_to_another_allowed_port_is_followed(server, other_server, loopback_policy, workdir, cache_dir):
    server.add_redirect("/a.csv", other_server.url("/mirror/a.csv"), status=301)
    other_server.add_file("/mirror/a.csv", DATA)

    [result] = stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/a.csv"))])

    assert result["source_url"] == other_server.url("/mirror/a.csv")
    assert len(other_server.requests) == 1


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("http://127.0.0.1/a.csv", "is not an https URL"),
        ("https://10.0.0.1/a.csv", "resolves to 10.0.0.1, a private address"),
        ("https://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("https://[::1]/a.csv", "a loopback address"),
    ],
)
def test_redirect_to_a_refused_target_is_not_followed(
    location, expected, server, loopback_policy, connections, workdir, cache_dir
):
    server.add_redirect("/a.csv", location)
    with pytest.raises(StagingError, match=expected) as caught:
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/a.csv"))])
    assert f"(redirected from {server.url('/a.csv')})" in str(caught.value)
    assert connections == [("127.0.0.1", server.port)], "only the first, allowed hop was contacted"
    assert not (workdir / "data" / "stations.csv").exists()


def test_redirect_from_an_allowed_host_to_a_loopback_address_outside_the_allowance(
    server, ca_file, connections, workdir, cache_dir
):
    server.add_redirect("/a.csv", f"https://127.0.0.2:{server.port}/a.csv")
    policy = FetchPolicy(allowed_networks=("127.0.0.1/32",), ca_bundle=ca_file)
    with pytest.raises(StagingError, match="resolves to 127.0.0.2, a loopback address"):
        stage(workdir, cache_dir, policy, [url_ref(server.url("/a.csv"))])
    assert connections == [("127.0.0.1", server.port)]


def test_too_many_redirects_are_refused(server, loopback_policy, workdir, cache_dir):
    server.add_redirect("/loop", "/loop")
    with pytest.raises(StagingError, match="more than 5 redirects"):
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/loop"))])
    assert len(server.requests) == 6


# --- size and time ------------------------------------------------------------------------------------------------


def test_announced_length_over_the_declared_size_stops_before_the_body(server, loopback_policy, workdir, cache_dir):
    def huge(handler, request):
        handler.send_response(200)
        handler.send_header("Content-Length", str(10**9))
        handler.end_headers()
        handler.wfile.write(b"x" * 1024)
        handler.stopping.wait(10)  # would keep sending; the client must not wait for it

    server.add_route("/huge.bin", huge)
    started = time.monotonic()
    with pytest.raises(StagingError, match=f"announces 1000000000 bytes, larger than the declared {len(DATA)} bytes"):
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/huge.bin"))])
    assert time.monotonic() - started < 5
    assert cache_files(cache_dir) == []


def test_streamed_body_over_the_declared_size_is_cut_off(server, loopback_policy, workdir, cache_dir):
    server.add_file("/grown.csv", DATA + b"C,14.0\n" * 100_000, send_length=False)
    with pytest.raises(StagingError, match=f"larger than the declared {len(DATA)} bytes"):
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/grown.csv"))])
    assert not (workdir / "data" / "stations.csv").exists()
    assert cache_files(cache_dir) == []


def test_shorter_body_than_declared_fails(server, loopback_policy, workdir, cache_dir):
    server.add_file("/short.csv", DATA[:10])
    with pytest.raises(StagingError, match=rf"\(10 bytes, declared {len(DATA)}\)"):
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/short.csv"))])


def test_a_server_that_stops_answering_times_out(server, ca_file, workdir, cache_dir):
    def stall(handler, request):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(DATA)))
        handler.end_headers()
        handler.wfile.flush()
        handler.stopping.wait(10)

    server.add_route("/stall.csv", stall)
    policy = FetchPolicy(allowed_networks=("127.0.0.0/8",), ca_bundle=ca_file, timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(StagingError, match="did not answer within 0.5 seconds"):
        stage(workdir, cache_dir, policy, [url_ref(server.url("/stall.csv"))])
    assert time.monotonic() - started < 5
    assert not (workdir / "data" / "stations.csv").exists()


def test_a_trickling_body_is_stopped_at_the_total_time(server, ca_file, workdir, cache_dir):
    body = b"y" * 200

    def trickle(handler, request):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        for byte in body:
            if handler.stopping.wait(0.05):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    server.add_route("/slow.bin", trickle)
    policy = FetchPolicy(allowed_networks=("127.0.0.0/8",), ca_bundle=ca_file, timeout_seconds=2, total_seconds=1)
    started = time.monotonic()
    with pytest.raises(StagingError, match="took longer than 1 seconds"):
        stage(
            workdir,
            cache_dir,
            policy,
            [url_ref(server.url("/slow.bin"), sha=hashlib.sha256(body).hexdigest(), size=len(body))],
        )
    assert time.monotonic() - started < 4, "every byte arrives within the read timeout; only the total stops it"


# --- DOI and archive queries --------------------------------------------------------------------------------------


def test_doi_resolving_to_a_landing_page_fails_with_advice(server, loopback_policy, workdir, cache_dir):
    server.add_redirect("/doi/10.5281/zenodo.123", "/records/123")
    server.add_file("/records/123", b"<!doctype html><title>Record</title>", content_type="text/html; charset=utf-8")
    policy = FetchPolicy(
        allowed_networks=("127.0.0.0/8",), ca_bundle=loopback_policy.ca_bundle, doi_resolver=server.url("/doi/")
    )
    reference = ReferenceSpec(
        label="data reference 3 (doi:10.5281/zenodo.123)",
        kind="doi",
        identifier="10.5281/zenodo.123",
        target_path="data/stations.csv",
        sha256=DATA_SHA,
        size=len(DATA),
    )

    with pytest.raises(StagingError) as caught:
        stage(workdir, cache_dir, policy, [reference])

    message = str(caught.value)
    assert message.startswith("data reference 3 (doi:10.5281/zenodo.123): the DOI resolves to a landing page")
    assert "https download URL" in message
    assert server.requests_to("/doi/10.5281/zenodo.123")[0].headers["accept"] == "*/*"
    assert cache_files(cache_dir) == []


def test_doi_resolving_to_the_file_is_downloaded(server, loopback_policy, workdir, cache_dir):
    server.add_redirect("/doi/10.1234/abc", "/files/stations.csv")
    server.add_file("/files/stations.csv", DATA, content_type="text/csv")
    policy = FetchPolicy(
        allowed_networks=("127.0.0.0/8",), ca_bundle=loopback_policy.ca_bundle, doi_resolver=server.url("/doi/")
    )

    [result] = stage(workdir, cache_dir, policy, [url_ref("doi:10.1234/abc", kind="doi")])

    assert result["source_url"] == server.url("/files/stations.csv")
    assert (workdir / "data" / "stations.csv").read_bytes() == DATA


def test_archive_query_is_posted_and_its_answer_verified(server, loopback_policy, workdir, cache_dir):
    answer = json.dumps({"rows": [["A", 12.5], ["B", 13.1]]}).encode()

    def api(handler, request):
        if request.method != "POST" or request.headers.get("content-type") != "application/json":
            handler.send_simple(415, b"", content_type="text/plain")
            return
        handler.send_simple(200, answer, content_type="application/json")

    server.add_route("/api/search", api)
    query = {"station": ["A", "B"], "from": "2020-01-01"}
    reference = url_ref(
        server.url("/api/search"),
        kind="archive_query",
        query=query,
        target="data/q.json",
        sha=hashlib.sha256(answer).hexdigest(),
        size=len(answer),
    )

    [result] = stage(workdir, cache_dir, loopback_policy, [reference])

    assert (workdir / "data" / "q.json").read_bytes() == answer
    assert result["sha256"] == hashlib.sha256(answer).hexdigest()
    [request] = server.requests
    assert request.method == "POST"
    assert json.loads(request.body) == query
    assert request.headers["accept"] == "application/json"


def test_archive_query_with_a_changed_answer_fails(server, loopback_policy, workdir, cache_dir):
    server.add_route("/api/search", lambda handler, request: handler.send_simple(200, b'{"rows": []}'))
    reference = url_ref(server.url("/api/search"), kind="archive_query", query={"q": 1}, size=100)
    with pytest.raises(StagingError, match="the file changed at the source or the checksum is wrong"):
        stage(workdir, cache_dir, loopback_policy, [reference])


def test_an_error_status_is_reported(server, loopback_policy, workdir, cache_dir):
    with pytest.raises(StagingError, match="answered HTTP 404; check that the URL still serves the file"):
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/gone.csv"))])


# --- our own storage ----------------------------------------------------------------------------------------------


def test_repository_file_is_copied_from_blob_storage_without_network(connections, workdir, cache_dir):
    stored = store_blob(DATA)
    reference = ReferenceSpec(
        label="data reference 4 (rec-1/v2/stations.csv)",
        kind="repository_file",
        identifier="rec-1/v2/stations.csv",
        target_path="input/stations.csv",
        sha256=stored.sha256,
        size=stored.size,
        blob_key=stored.storage_key,
    )

    [result] = stage(workdir, cache_dir, FetchPolicy(), [reference])

    assert (workdir / "input" / "stations.csv").read_bytes() == DATA
    assert mode(workdir / "input" / "stations.csv") == 0o444
    assert result["source_url"] is None and result["from_cache"] is False
    assert connections == []


def test_a_reference_the_caller_refuses_fails_with_its_message_even_from_the_cache(connections, workdir, cache_dir):
    stored = store_blob(DATA)
    reference = ReferenceSpec(
        label="data reference 1 (rec-1/v2/stations.csv)", kind="repository_file", identifier="rec-1/v2/stations.csv",
        target_path="stations.csv", sha256=stored.sha256, size=stored.size, blob_key=stored.storage_key,
    )
    earlier_run = workdir / "earlier"
    earlier_run.mkdir()
    stage(earlier_run, cache_dir, FetchPolicy(), [reference])  # its bytes are in the cache now
    refused = dataclasses.replace(
        reference, refused="version 2 of record rec-1 was withdrawn on 2026-03-02, so its files can no longer be used."
    )

    with pytest.raises(StagingError) as raised:
        stage(workdir, cache_dir, FetchPolicy(), [refused])

    assert str(raised.value) == ("data reference 1 (rec-1/v2/stations.csv): version 2 of record rec-1 was withdrawn "
                                 "on 2026-03-02, so its files can no longer be used.")
    assert not (workdir / "stations.csv").exists()
    assert connections == []


def test_a_local_stand_in_is_always_read_never_taken_from_the_cache(connections, workdir, cache_dir, tmp_path):
    stored = store_blob(DATA)
    earlier_run = workdir / "earlier"
    earlier_run.mkdir()
    stage(earlier_run, cache_dir, FetchPolicy(), [ReferenceSpec(
        label="data reference 1 (rec-1/v2/stations.csv)", kind="repository_file", identifier="rec-1/v2/stations.csv",
        target_path="stations.csv", sha256=DATA_SHA, size=DATA_SIZE, blob_key=stored.storage_key)])
    local = tmp_path / "my-stations.csv"
    local.write_bytes(DATA.replace(b"12.5", b"99.9"))  # same size, other bytes
    reference = ReferenceSpec(label="data reference 1 (stations.csv)", kind="local_file", identifier=str(local),
                              target_path="stations.csv", sha256=DATA_SHA, size=DATA_SIZE, local_path=local)

    with pytest.raises(StagingError, match=f"sha256 is {hashlib.sha256(local.read_bytes()).hexdigest()} but the "
                                           f"reference says {DATA_SHA}; the file changed at the source"):
        stage(workdir, cache_dir, FetchPolicy(), [reference])
    assert not (workdir / "stations.csv").exists()

    local.write_bytes(DATA)
    [result] = stage(workdir, cache_dir, FetchPolicy(), [reference])
    assert (workdir / "stations.csv").read_bytes() == DATA and result["from_cache"] is False
    assert connections == []


def test_version_files_are_placed_at_nested_paths_read_only(workdir, cache_dir):
    notebook, table = b'{"cells": []}', b"a,b\n1,2\n"
    files = [
        FileSpec(path=path, blob_key=store_blob(data).storage_key, sha256=hashlib.sha256(data).hexdigest())
        for path, data in (("analysis.ipynb", notebook), ("data/raw/2020/table.csv", table))
    ]

    assert stage(workdir, cache_dir, FetchPolicy(), files=files) == []

    assert (workdir / "analysis.ipynb").read_bytes() == notebook
    assert (workdir / "data" / "raw" / "2020" / "table.csv").read_bytes() == table
    assert {mode(workdir / "analysis.ipynb"), mode(workdir / "data/raw/2020/table.csv")} == {0o444}
    assert {mode(workdir / "data"), mode(workdir / "data/raw"), mode(workdir / "data/raw/2020")} == {0o555}
    assert [p.name for p in workdir.rglob(".staging-*")] == []


def test_a_damaged_stored_file_is_reported_as_our_storage(workdir, cache_dir):
    stored = store_blob(DATA)
    spec = FileSpec(path="data/stations.csv", blob_key=stored.storage_key, sha256=OTHER_SHA)
    with pytest.raises(StagingError, match="our storage is damaged") as caught:
        stage(workdir, cache_dir, FetchPolicy(), files=[spec])
    assert caught.value.reference_label == "file 'data/stations.csv' of the version"
    assert list((workdir / "data").iterdir()) == []


def test_a_missing_blob_is_our_storage_failing_not_the_authors_input(workdir, cache_dir):
    spec = FileSpec(path="a.csv", blob_key="blobs/no/such/key", sha256=DATA_SHA)
    with pytest.raises(StagingStorageUnavailable, match="could not be read from our storage"):
        stage(workdir, cache_dir, FetchPolicy(), files=[spec])


# --- paths --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("../outside.csv", "contains '..'"),
        ("data/../../outside.csv", "contains '..'"),
        ("/etc/cron.d/x", "is absolute"),
        ("data//x.csv", "empty or '.' parts"),
        ("", "is empty"),
    ],
)
def test_unsafe_target_paths_are_refused(target, expected, server, loopback_policy, tmp_path, workdir, cache_dir):
    server.add_file("/a.csv", DATA)
    with pytest.raises(StagingError, match=expected):
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/a.csv"), target=target)])
    assert server.requests == []
    assert not (tmp_path / "outside.csv").exists()


def test_a_symlinked_folder_in_the_workdir_is_not_followed(server, loopback_policy, tmp_path, workdir, cache_dir):
    outside = tmp_path / "outside"
    outside.mkdir()
    (workdir / "data").symlink_to(outside)
    server.add_file("/a.csv", DATA)
    with pytest.raises(StagingError, match="passes through a symbolic link"):
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/a.csv"))])
    assert list(outside.iterdir()) == []


def test_a_symlink_at_the_target_is_not_written_through(tmp_path, workdir, cache_dir):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"keep me")
    (workdir / "a.csv").symlink_to(victim)
    spec = FileSpec(path="a.csv", blob_key=store_blob(DATA).storage_key, sha256=DATA_SHA)
    with pytest.raises(StagingError, match="already taken"):
        stage(workdir, cache_dir, FetchPolicy(), files=[spec])
    assert victim.read_bytes() == b"keep me"


def test_two_inputs_with_one_path_are_refused(server, loopback_policy, workdir, cache_dir):
    server.add_file("/a.csv", DATA)
    spec = FileSpec(path="data/stations.csv", blob_key=store_blob(DATA).storage_key, sha256=DATA_SHA)
    with pytest.raises(StagingError, match="'data/stations.csv' is already taken"):
        stage(workdir, cache_dir, loopback_policy, [url_ref(server.url("/a.csv"))], files=[spec])
    assert server.requests == []


def test_the_same_file_in_two_runs_shares_the_cache_inode(server, loopback_policy, tmp_path, cache_dir):
    server.add_file("/a.csv", DATA)
    (tmp_path / "run").mkdir()
    stage(tmp_path / "run", cache_dir, loopback_policy, [url_ref(server.url("/a.csv"))])
    staged = Path(tmp_path / "run" / "data" / "stations.csv")
    assert os.stat(staged).st_ino == os.stat(cache_dir / DATA_SHA[:2] / DATA_SHA).st_ino


def test_policy_and_cache_dir_come_from_settings(settings, tmp_path):
    settings.STAGING_MAX_BYTES = 1000
    settings.STAGING_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    settings.STAGING_CA_BUNDLE = ""
    settings.STAGING_CACHE_DIR = str(tmp_path / "c")

    policy = policy_from_settings()

    assert policy.max_bytes == 1000 and policy.allowed_networks == ("10.20.0.0/16",) and policy.ca_bundle is None
    assert policy.timeout_seconds == FetchPolicy().timeout_seconds
    assert cache_dir_from_settings() == tmp_path / "c"


def test_a_malformed_allowed_network_fails_when_the_policy_is_built():
    with pytest.raises(ValueError):
        FetchPolicy(allowed_networks=("10.0.0.0/33",))
