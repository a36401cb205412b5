"""The safe HTTPS fetcher of staging, and the only module of the project that imports urllib3.

Fetches run outside the sandbox, on a worker that can reach internal services, so every fetch is a server-side
request forgery waiting to happen. ``fetch(url, writer, policy, label=..., declared_size=..., accept=...)``
therefore:

- fetches https URLs only, without user names or passwords in them;
- resolves each host name once and refuses it when any of its addresses is not public (addresses.py);
- connects to the address that was checked, never resolving the name again (a rebinding attacker could answer
  differently), with the real host name for SNI, certificate checking and the Host header;
- follows redirects by hand (301/302/303 turn a POST into a GET, 307/308 repeat it) and checks every hop again,
  up to ``FetchPolicy.max_redirects``; honours no proxy settings from the environment;
- enforces the size (the declared size is a hard cap, also against the announced Content-Length), the timeout
  per connection attempt and per read, and the total time;
- saves the bytes exactly as sent (``Accept-Encoding: identity``, no content decoding), as ``curl -O`` would;
- with ``refuse_landing_page``, refuses an HTML answer (a DOI that resolves to a landing page, not to data).

It streams the final 200 body into ``writer`` (anything with ``write(bytes)``) and returns the final URL. Every
failure raises ``StagingError``: urllib3's exceptions are translated here and never leave this module, and
neither does a urllib3 response.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from repository.runners.staging.addresses import checked_addresses
from repository.runners.staging.errors import StagingError, clip
from repository.runners.staging.specs import FetchPolicy

# urllib3 (already a dependency through botocore and requests, and the engine under requests) is used directly:
# an HTTPSConnectionPool opened on the checked IP address with server_hostname/assert_hostname set to the host
# name gives SNI and certificate checking for the name while never resolving it again. requests would add
# nothing but proxy settings from the environment, which must not apply here (a proxy would connect wherever it
# likes after our checks).

USER_AGENT = "nbarchive-staging/1"
READ_SIZE = 1024 * 1024
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
LANDING_PAGE_TYPES = {"text/html", "application/xhtml+xml"}


class Writer(Protocol):
    """Where the body goes (staging passes its VerifiedWriter, which enforces the declared size)."""

    def write(self, chunk: bytes) -> None: ...


@dataclass(frozen=True)
class _Endpoint:
    url: str
    host: str  # ASCII (IDNA) host name or IP literal without brackets
    port: int
    request_target: str  # path and query, percent-encoded
    addresses: tuple[str, ...]  # checked addresses to connect to, in resolver order

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == 443 else f"{host}:{self.port}"


def fetch(
    url: str,
    writer: Writer,
    policy: FetchPolicy,
    *,
    label: str,
    declared_size: int,
    accept: str,
    body: bytes | None = None,
    refuse_landing_page: bool = False,
) -> str:
    """Send the request, following redirects by hand; stream the final 200 body into `writer`; return its URL."""
    deadline = time.monotonic() + policy.total_seconds
    method = "POST" if body is not None else "GET"
    came_from = None
    for _hop in range(policy.max_redirects + 1):
        endpoint = _endpoint(url, policy, label, came_from)
        with _request(endpoint, method, body, accept, policy, deadline, label) as response:
            if response.status in REDIRECT_STATUSES:
                came_from, url = url, _redirect_target(response, url, label)
                if response.status in (301, 302, 303) and method == "POST":
                    # What browsers and curl do: only 307/308 repeat the POST; the others fetch the result with GET.
                    method, body = "GET", None
                continue
            _check_status(response, url, label)
            if refuse_landing_page:
                _refuse_landing_page(response, url, label)
            _check_announced_length(response, declared_size, label)
            _stream_body(response, writer, policy, deadline, label, url)
            return url
    raise StagingError(label, f"more than {policy.max_redirects} redirects; name the file's final https URL instead.")


def _endpoint(url: str, policy: FetchPolicy, label: str, came_from: str | None) -> _Endpoint:
    via = f" (redirected from {clip(came_from)})" if came_from else ""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise StagingError(label, f"{clip(url)}{via} is not an https URL; only https is fetched.")
    if parts.username is not None or parts.password is not None:
        raise StagingError(label, f"{clip(url)}{via} carries a user name or password; use a public URL.")
    try:
        port = parts.port or 443
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise StagingError(label, f"{clip(url)}{via} is not a valid URL ({clip(exc)}).") from exc
    if not host:
        raise StagingError(label, f"{clip(url)}{via} has no host name.")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    request_target = f"{path}?{query}" if query else path
    addresses = checked_addresses(host, port, policy.parsed_networks, label, via)
    return _Endpoint(url=url, host=host, port=port, request_target=request_target, addresses=addresses)


def _ssl_context(policy: FetchPolicy) -> ssl.SSLContext:
    context = ssl.create_default_context()  # the system's CAs, certificate and host name checks on
    if policy.ca_bundle:
        context.load_verify_locations(cafile=policy.ca_bundle)
    return context


@contextmanager
def _request(endpoint: _Endpoint, method, body, accept, policy, deadline, label) -> Iterator:
    """Yield the response of the first checked address that accepts the connection; close everything after."""
    headers = {
        "Host": endpoint.host_header,
        "User-Agent": USER_AGENT,
        "Accept": accept,
        "Accept-Encoding": "identity",  # the checksum is of the bytes as served, never of a decoded variant
    }
    if body is not None:
        headers["Content-Type"] = "application/json"
    last_error: Exception | None = None
    for address in endpoint.addresses:
        remaining = _remaining(deadline, policy, label, endpoint.url)
        per_step = min(policy.timeout_seconds, remaining)
        pool = urllib3.HTTPSConnectionPool(
            host=address,
            port=endpoint.port,
            server_hostname=endpoint.host,
            assert_hostname=endpoint.host,
            ssl_context=_ssl_context(policy),  # fresh each time: urllib3 adjusts the context it is given
            timeout=urllib3.Timeout(connect=per_step, read=per_step),
            retries=False,
            maxsize=1,
        )
        try:
            try:
                response = pool.urlopen(
                    method,
                    endpoint.request_target,
                    body=body,
                    headers=headers,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                    assert_same_host=False,
                )
            except NewConnectionError as exc:  # refused or unreachable: another checked address may work
                last_error = exc
                continue
            except HTTPError as exc:
                raise _transfer_error(exc, endpoint, policy, deadline, label) from exc
            try:
                yield response
            except HTTPError as exc:
                raise _transfer_error(exc, endpoint, policy, deadline, label) from exc
            finally:
                response.close()  # an unread body is dropped with its connection, never drained
            return
        finally:
            pool.close()
    raise StagingError(
        label, f"could not connect to {endpoint.host} ({clip(last_error)}); check the URL or try again later."
    )


def _transfer_error(exc: Exception, endpoint: _Endpoint, policy, deadline, label) -> StagingError:
    if isinstance(exc, SSLError):
        return StagingError(
            label, f"the TLS certificate of {endpoint.host} could not be verified ({clip(exc)}); refusing to fetch."
        )
    if time.monotonic() >= deadline:
        return _too_slow(label, endpoint.url, policy)
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return StagingError(
            label,
            f"{endpoint.host} did not answer within {policy.timeout_seconds:g} seconds; try again later.",
        )
    if isinstance(exc, ProtocolError):
        return StagingError(label, f"the connection to {endpoint.host} broke off ({clip(exc)}); try again later.")
    return StagingError(label, f"fetching from {endpoint.host} failed ({clip(exc)}); try again later.")


def _remaining(deadline: float, policy: FetchPolicy, label: str, url: str) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _too_slow(label, url, policy)
    return remaining


def _too_slow(label: str, url: str, policy: FetchPolicy) -> StagingError:
    return StagingError(
        label,
        f"fetching {clip(url)} took longer than {policy.total_seconds:g} seconds; try again later or use a "
        "smaller file.",
    )


def _redirect_target(response, url: str, label: str) -> str:
    location = response.headers.get("Location")
    if not location:
        raise StagingError(label, f"{clip(url)} answered HTTP {response.status} without saying where to.")
    return urljoin(url, location.strip())


def _check_status(response, url: str, label: str) -> None:
    if response.status == 200:
        return
    if response.status >= 500:
        advice = "the server had an error; try again later"
    else:
        advice = "check that the URL still serves the file"
    raise StagingError(label, f"{clip(url)} answered HTTP {response.status}; {advice}.")


def _refuse_landing_page(response, url: str, label: str) -> None:
    """A DOI that ends at an HTML page resolved to a landing page, not to the data.

    Decision: refuse it rather than accept HTML whose checksum happens to match. Landing pages are generated
    (session tokens, view counters, cookie banners), so such a checksum would break on the next run, and the
    notebook reads data, not a web page. The submitter names the file's https URL (kind `url`) instead.
    """
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type in LANDING_PAGE_TYPES:
        raise StagingError(
            label,
            f"the DOI resolves to a landing page ({clip(url)}, an HTML page), not to the data file; make the "
            "reference a url reference to the file's https download URL instead.",
        )


def _check_announced_length(response, declared_size: int, label: str) -> None:
    # Stop before reading a byte when the server already says the body is too big.
    try:
        announced = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return
    if announced > declared_size:
        raise StagingError(
            label,
            f"the server announces {announced} bytes, larger than the declared {declared_size} bytes; the file "
            "changed at the source or the declared size is wrong.",
        )


def _stream_body(response, writer: Writer, policy: FetchPolicy, deadline: float, label: str, url: str):
    # read1 returns after a single socket read: a server trickling bytes cannot keep one call busy past the
    # deadline (read() would block until a whole chunk arrived). A read waits at most the per-read timeout, so
    # the total can overrun by that much at worst.
    while chunk := response.read1(READ_SIZE, decode_content=False):
        writer.write(chunk)
        if time.monotonic() >= deadline:
            raise _too_slow(label, url, policy)
