"""Staging: put a version's files and its data references where the notebook expects them, before the run.

Contract (`stage_inputs`):
- Every file and reference lands under `workdir` at its relative path; parent folders are created. A path that is
  absolute, contains `..`, or would leave `workdir` (also through a symlink already in `workdir`) is refused.
- Every staged file has the sha256 its spec names, or staging fails; nothing is ever left at a target path that
  did not verify. Staged files end 0o444 and the folders created for them 0o555; `workdir` itself stays writable
  so the caller can add a scratch folder. (To delete a staged tree as a non-root user, chmod the folders u+w.)
- Version files are streamed from our blob storage and re-verified: a mismatch means our storage is damaged.
- References are verified copies out of a cache keyed by sha256 (`cache_dir/<sha[:2]>/<sha>`). A miss fetches
  into a temporary file beside the entry and renames it into place only after the checksum matched, so
  concurrent runs see either no entry or a whole, verified one. The entry is hard-linked into `workdir`
  (copied when the link is impossible, e.g. across filesystems).
- Network fetches happen outside the sandbox, so they are server-side request forgery waiting to happen: https
  only; every host name is resolved here and refused when any of its addresses is not public (loopback, private,
  link-local, cloud metadata, shared, reserved, IPv4 embedded in IPv6 ...) unless it lies in
  `FetchPolicy.allowed_networks`; the connection goes to the address that was checked (no second DNS lookup a
  rebinding attacker could answer differently), with the real host name for SNI, certificate checking and the
  Host header. Redirects are followed by hand and every hop is checked again. Size (the declared size is a hard
  cap), per-read timeout and total time are enforced.
- Kinds: `url` is a GET; `archive_query` POSTs the JSON `query` to the https endpoint and keeps the response body;
  `doi` resolves through `FetchPolicy.doi_resolver` and downloads what the DOI finally points to, refusing an
  HTML answer (a landing page: see `_refuse_landing_page`); `repository_file` copies our own blob, no network.
- Bytes are saved exactly as sent (`Accept-Encoding: identity`, no content decoding), as `curl -O` would, so the
  checksum a submitter computed on a download matches.

Every failure raises `StagingError`, whose one-line message names the reference, says what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
import socket
import ssl
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urljoin, urlsplit

import urllib3
from django.conf import settings
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from repository.errors import NbarchiveError
from repository.integrations.s3 import STORAGE_ERRORS
from repository.storage import open_blob

USER_AGENT = "nbarchive-staging/1"
CHUNK_SIZE = 1024 * 1024
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
LANDING_PAGE_TYPES = {"text/html", "application/xhtml+xml"}
# Addresses that `ipaddress` does not single out by name but that must never be fetched from.
CLOUD_METADATA = ipaddress.ip_address("169.254.169.254")
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64: the last 32 bits are an IPv4 address
MAX_MESSAGE_TEXT = 200


@dataclass(frozen=True)
class ReferenceSpec:
    """A data reference as plain data, built by the caller from a DataReference row."""

    label: str  # human name for messages, e.g. 'data reference 2 (https://example.org/a.csv)'
    kind: str  # "doi" | "url" | "repository_file" | "archive_query"
    identifier: str
    target_path: str
    sha256: str
    size: int
    query: dict | None = None
    blob_key: str | None = None  # repository_file: the storage key of our own blob


@dataclass(frozen=True)
class FileSpec:
    path: str
    blob_key: str
    sha256: str


@dataclass(frozen=True)
class FetchPolicy:
    max_bytes: int = 5 * 1024**3
    timeout_seconds: float = 60.0  # per connection attempt and per read
    total_seconds: float = 1800.0  # whole transfer of one reference, redirects included
    max_redirects: int = 5
    # CIDRs allowed even though private/loopback: ONLY for tests and on-premise archives.
    allowed_networks: tuple[str, ...] = ()
    ca_bundle: str | None = None  # extra CA file to trust besides the system's (tests use a local CA)
    doi_resolver: str = "https://doi.org/"
    _networks: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        # Parsed once, and a typo in the configuration fails at once rather than at the first fetch.
        networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in self.allowed_networks)
        object.__setattr__(self, "_networks", networks)


class StagingError(NbarchiveError):
    """Staging failed; `reference_label` names the file or reference, `message` says what is wrong and what to do."""

    status = 422
    code = "staging_failed"
    title = "The notebook's inputs could not be staged"

    def __init__(self, reference_label: str, message: str):
        self.reference_label = reference_label
        self.message = message
        super().__init__(_one_line(f"{reference_label}: {message}"))


def policy_from_settings() -> FetchPolicy:
    """The FetchPolicy configured in settings (STAGING_*), with the dataclass defaults for what is unset."""
    defaults = FetchPolicy()
    return FetchPolicy(
        max_bytes=getattr(settings, "STAGING_MAX_BYTES", defaults.max_bytes),
        timeout_seconds=getattr(settings, "STAGING_TIMEOUT_SECONDS", defaults.timeout_seconds),
        total_seconds=getattr(settings, "STAGING_TOTAL_SECONDS", defaults.total_seconds),
        max_redirects=getattr(settings, "STAGING_MAX_REDIRECTS", defaults.max_redirects),
        allowed_networks=tuple(getattr(settings, "STAGING_ALLOWED_NETWORKS", defaults.allowed_networks)),
        ca_bundle=getattr(settings, "STAGING_CA_BUNDLE", None) or None,
        doi_resolver=getattr(settings, "STAGING_DOI_RESOLVER", defaults.doi_resolver),
    )


def cache_dir_from_settings() -> Path:
    return Path(getattr(settings, "STAGING_CACHE_DIR", None) or Path(settings.VAR_DIR) / "staging-cache")


def stage_inputs(
    *, workdir: Path, files: list[FileSpec], references: list[ReferenceSpec], cache_dir: Path, policy: FetchPolicy
) -> list[dict]:
    """Place files and references under workdir at their relative paths, verify every sha256, make them read-only.

    Returns one dict per reference: {label, target_path, sha256, size, source_url, from_cache}; `source_url` is
    the final URL fetched, None when nothing was fetched (cache hit, repository file).
    Raises StagingError naming the reference on any failure; leaves no partial file at a target path.
    """
    workdir = Path(workdir).resolve(strict=True)
    cache_dir = Path(cache_dir)
    created_folders: list[Path] = []
    for spec in files:
        with _disk_errors(_file_label(spec)):
            _stage_version_file(spec, workdir=workdir, created_folders=created_folders)
    results = []
    for reference in references:
        with _disk_errors(reference.label):
            results.append(
                _stage_reference(
                    reference, workdir=workdir, cache_dir=cache_dir, policy=policy, created_folders=created_folders
                )
            )
    # Only now: a read-only folder would refuse the files still to come (for a non-root worker).
    for folder in reversed(created_folders):
        os.chmod(folder, 0o555)
    return results


# --- version files ------------------------------------------------------------------------------------------------


@contextmanager
def _disk_errors(label: str) -> Iterator[None]:
    # Network and storage errors are translated where they happen; what is left is our own disk.
    try:
        yield
    except OSError as exc:
        raise StagingError(label, f"could not be placed on disk ({_clip(exc)}); tell the administrators.") from exc


def _file_label(spec: FileSpec) -> str:
    return f"file {spec.path!r} of the version"


def _stage_version_file(spec: FileSpec, *, workdir: Path, created_folders: list[Path]) -> None:
    label = _file_label(spec)
    target = _prepare_target(workdir, spec.path, label, created_folders)
    with _verified_write(target.parent, label, limit=None) as writer:
        for chunk in _blob_chunks(spec.blob_key, label):
            writer.write(chunk)
        if writer.sha256 != spec.sha256:
            raise StagingError(
                label,
                f"the stored copy has sha256 {writer.sha256} but the version records {spec.sha256}; our storage is "
                "damaged. Nothing in the notebook can fix this: tell the archive's administrators.",
            )
        writer.commit(target)


def _blob_chunks(blob_key: str, label: str) -> Iterator[bytes]:
    # Only reading is guarded here: an error writing the chunks is the caller's disk, not our storage.
    try:
        blob = open_blob(blob_key)
    except STORAGE_ERRORS as exc:
        raise _storage_error(label, exc) from exc
    with blob:
        while True:
            try:
                chunk = blob.read(CHUNK_SIZE)
            except STORAGE_ERRORS as exc:
                raise _storage_error(label, exc) from exc
            if not chunk:
                return
            yield chunk


def _storage_error(label: str, exc: BaseException) -> StagingError:
    return StagingError(
        label, f"could not be read from our storage ({_clip(exc)}); try again later or tell the administrators."
    )


# --- references ---------------------------------------------------------------------------------------------------


def _stage_reference(
    reference: ReferenceSpec, *, workdir: Path, cache_dir: Path, policy: FetchPolicy, created_folders: list[Path]
) -> dict:
    label = reference.label
    _check_declaration(reference, policy)
    # Checked before fetching (a bad path costs no download) and again when placing; folders are only created
    # then, so a reference that fails leaves no empty folders behind.
    _prepare_target(workdir, reference.target_path, label, created_folders, create=False)
    entry = cache_dir / reference.sha256[:2] / reference.sha256
    source_url = None
    from_cache = _usable_cache_entry(entry, reference.size)
    if not from_cache:
        source_url = _fill_cache(reference, entry, policy)
    target = _prepare_target(workdir, reference.target_path, label, created_folders)
    _link_or_copy(entry, target, label)
    return {
        "label": label,
        "target_path": reference.target_path,
        "sha256": reference.sha256,
        "size": reference.size,
        "source_url": source_url,
        "from_cache": from_cache,
    }


def _check_declaration(reference: ReferenceSpec, policy: FetchPolicy) -> None:
    label = reference.label
    if reference.kind not in _SOURCES:
        raise StagingError(label, f"its kind {reference.kind!r} is not one staging knows; correct the reference.")
    if len(reference.sha256) != 64 or any(char not in "0123456789abcdef" for char in reference.sha256):
        raise StagingError(label, "its sha256 is not 64 lowercase hexadecimal digits; correct the reference.")
    if reference.size < 0:
        raise StagingError(label, "its declared size is negative; correct the reference.")
    if reference.size > policy.max_bytes:
        raise StagingError(
            label,
            f"it declares {reference.size} bytes, more than the limit of {policy.max_bytes} bytes for staged data; "
            "use a smaller extract or ask the administrators.",
        )


def _usable_cache_entry(entry: Path, declared_size: int) -> bool:
    # Entries are verified when written and kept read-only; the cheap checks below only catch an entry that was
    # tampered with or truncated by hand (it is then fetched again and replaced, never trusted).
    try:
        info = os.lstat(entry)
    except FileNotFoundError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == declared_size and not info.st_mode & 0o222


def _fill_cache(reference: ReferenceSpec, entry: Path, policy: FetchPolicy) -> str | None:
    """Obtain the bytes into a verified cache entry; return the final URL fetched (None for our own blobs)."""
    label = reference.label
    entry.parent.mkdir(parents=True, exist_ok=True)
    with _verified_write(entry.parent, label, limit=reference.size) as writer:
        source_url = _SOURCES[reference.kind](reference, writer, policy)
        _check_content(reference, writer)
        writer.commit(entry)
    return source_url


def _check_content(reference: ReferenceSpec, writer: _VerifiedWriter) -> None:
    if writer.sha256 != reference.sha256:
        if reference.kind == "repository_file":
            cause = "the reference's checksum is wrong, or our storage is damaged"
        else:
            cause = "the file changed at the source or the checksum is wrong"
        sizes = f" ({writer.size} bytes, declared {reference.size})" if writer.size != reference.size else ""
        raise StagingError(
            reference.label, f"sha256 is {writer.sha256}{sizes} but the reference says {reference.sha256}; {cause}."
        )
    if writer.size != reference.size:
        raise StagingError(
            reference.label,
            f"the file has the right sha256 but is {writer.size} bytes, not the declared {reference.size}; "
            "correct the declared size.",
        )


def _from_repository_file(reference: ReferenceSpec, writer: _VerifiedWriter, policy: FetchPolicy) -> None:
    if not reference.blob_key:
        raise StagingError(reference.label, "the repository file it names has no stored blob; correct the reference.")
    for chunk in _blob_chunks(reference.blob_key, reference.label):
        writer.write(chunk)


def _from_url(reference: ReferenceSpec, writer: _VerifiedWriter, policy: FetchPolicy) -> str:
    return _fetch(reference, reference.identifier.strip(), writer, policy, accept="*/*")


def _from_archive_query(reference: ReferenceSpec, writer: _VerifiedWriter, policy: FetchPolicy) -> str:
    if reference.query is None:
        raise StagingError(reference.label, "it has no query document to send; correct the reference.")
    # Compact and key-sorted: the same query is the same request, whoever stored it.
    body = json.dumps(reference.query, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return _fetch(reference, reference.identifier.strip(), writer, policy, accept="application/json", body=body)


def _from_doi(reference: ReferenceSpec, writer: _VerifiedWriter, policy: FetchPolicy) -> str:
    doi = _bare_doi(reference.identifier)
    if not doi.startswith("10.") or "/" not in doi:
        raise StagingError(reference.label, f"{_clip(reference.identifier)!r} is not a DOI (10.<prefix>/<suffix>).")
    url = policy.doi_resolver + quote(doi, safe="/")
    # "*/*" on purpose: doi.org answers metadata instead of redirecting when asked for citation formats.
    return _fetch(reference, url, writer, policy, accept="*/*", refuse_landing_page=True)


def _bare_doi(identifier: str) -> str:
    value = identifier.strip()
    for prefix in ("doi:", "https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "http://dx.doi.org/"):
        if value.lower().startswith(prefix):
            return value[len(prefix) :]
    return value


_SOURCES: dict[str, Callable[[ReferenceSpec, _VerifiedWriter, FetchPolicy], str | None]] = {
    "url": _from_url,
    "doi": _from_doi,
    "archive_query": _from_archive_query,
    "repository_file": _from_repository_file,
}


# --- HTTPS fetching -----------------------------------------------------------------------------------------------
#
# urllib3 (already a dependency through botocore and requests, and the engine under requests) is used directly:
# an HTTPSConnectionPool opened on the checked IP address with server_hostname/assert_hostname set to the host
# name gives SNI and certificate checking for the name while never resolving it again. requests would add
# nothing but proxy settings from the environment, which must not apply here (a proxy would connect wherever it
# likes after our checks).


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


def _fetch(
    reference: ReferenceSpec,
    url: str,
    writer: _VerifiedWriter,
    policy: FetchPolicy,
    *,
    accept: str,
    body: bytes | None = None,
    refuse_landing_page: bool = False,
) -> str:
    """Send the request, following redirects by hand; stream the final 200 body into `writer`; return its URL."""
    label = reference.label
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
            _check_announced_length(response, reference, label)
            _stream_body(response, writer, policy, deadline, label, url)
            return url
    raise StagingError(label, f"more than {policy.max_redirects} redirects; name the file's final https URL instead.")


def _endpoint(url: str, policy: FetchPolicy, label: str, came_from: str | None) -> _Endpoint:
    via = f" (redirected from {_clip(came_from)})" if came_from else ""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https":
        raise StagingError(label, f"{_clip(url)}{via} is not an https URL; only https is fetched.")
    if parts.username is not None or parts.password is not None:
        raise StagingError(label, f"{_clip(url)}{via} carries a user name or password; use a public URL.")
    try:
        port = parts.port or 443
        host = (parts.hostname or "").encode("idna").decode("ascii")
    except (ValueError, UnicodeError) as exc:
        raise StagingError(label, f"{_clip(url)}{via} is not a valid URL ({_clip(exc)}).") from exc
    if not host:
        raise StagingError(label, f"{_clip(url)}{via} has no host name.")
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    query = quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    request_target = f"{path}?{query}" if query else path
    addresses = _checked_addresses(host, port, policy, label, via)
    return _Endpoint(url=url, host=host, port=port, request_target=request_target, addresses=addresses)


def _checked_addresses(host: str, port: int, policy: FetchPolicy, label: str, via: str) -> tuple[str, ...]:
    """Resolve once and refuse if ANY address is not public: an attacker controls which one a client would pick."""
    try:
        literal = ipaddress.ip_address(host)
        candidates = [literal]  # an IP literal needs no lookup
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as exc:
            raise StagingError(label, f"the host name {host!r}{via} does not resolve; check the URL.") from exc
        candidates = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    addresses = list(dict.fromkeys(candidates))  # unique, resolver order kept
    if not addresses:
        raise StagingError(label, f"the host name {host!r}{via} does not resolve; check the URL.")
    for address in addresses:
        reason = _refusal_reason(address, policy._networks)
        if reason:
            raise StagingError(
                label,
                f"{host!r}{via} resolves to {address}, a {reason} address; data is only fetched from public "
                "internet addresses.",
            )
    return tuple(str(address) for address in addresses)


def _refusal_reason(address, allowed_networks) -> str | None:
    """Why `address` must not be contacted, or None when it is a public address (or explicitly allowed)."""
    if any(address.version == network.version and address in network for network in allowed_networks):
        return None
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        # ::ffff:127.0.0.1 and friends reach the IPv4 address on many stacks: judge that address.
        inner = _refusal_reason(embedded, allowed_networks)
        return f"{inner} (IPv4 inside IPv6)" if inner else None
    if address == CLOUD_METADATA:
        return "cloud metadata"
    for attribute, name in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_private", "private"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return name
    if address.version == 4 and address in SHARED_ADDRESS_SPACE:
        return "shared (carrier-grade NAT)"
    if not address.is_global:
        return "non-public"
    return None


def _embedded_ipv4(address):
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


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
        label, f"could not connect to {endpoint.host} ({_clip(last_error)}); check the URL or try again later."
    )


def _transfer_error(exc: Exception, endpoint: _Endpoint, policy, deadline, label) -> StagingError:
    if isinstance(exc, SSLError):
        return StagingError(
            label, f"the TLS certificate of {endpoint.host} could not be verified ({_clip(exc)}); refusing to fetch."
        )
    if time.monotonic() >= deadline:
        return _too_slow(label, endpoint.url, policy)
    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return StagingError(
            label,
            f"{endpoint.host} did not answer within {policy.timeout_seconds:g} seconds; try again later.",
        )
    if isinstance(exc, ProtocolError):
        return StagingError(label, f"the connection to {endpoint.host} broke off ({_clip(exc)}); try again later.")
    return StagingError(label, f"fetching from {endpoint.host} failed ({_clip(exc)}); try again later.")


def _remaining(deadline: float, policy: FetchPolicy, label: str, url: str) -> float:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _too_slow(label, url, policy)
    return remaining


def _too_slow(label: str, url: str, policy: FetchPolicy) -> StagingError:
    return StagingError(
        label,
        f"fetching {_clip(url)} took longer than {policy.total_seconds:g} seconds; try again later or use a "
        "smaller file.",
    )


def _redirect_target(response, url: str, label: str) -> str:
    location = response.headers.get("Location")
    if not location:
        raise StagingError(label, f"{_clip(url)} answered HTTP {response.status} without saying where to.")
    return urljoin(url, location.strip())


def _check_status(response, url: str, label: str) -> None:
    if response.status == 200:
        return
    if response.status >= 500:
        advice = "the server had an error; try again later"
    else:
        advice = "check that the URL still serves the file"
    raise StagingError(label, f"{_clip(url)} answered HTTP {response.status}; {advice}.")


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
            f"the DOI resolves to a landing page ({_clip(url)}, an HTML page), not to the data file; make the "
            "reference a url reference to the file's https download URL instead.",
        )


def _check_announced_length(response, reference: ReferenceSpec, label: str) -> None:
    # Stop before reading a byte when the server already says the body is too big.
    try:
        announced = int(response.headers.get("Content-Length", ""))
    except ValueError:
        return
    if announced > reference.size:
        raise StagingError(
            label,
            f"the server announces {announced} bytes, larger than the declared {reference.size} bytes; the file "
            "changed at the source or the declared size is wrong.",
        )


def _stream_body(response, writer: _VerifiedWriter, policy: FetchPolicy, deadline: float, label: str, url: str):
    # read1 returns after a single socket read: a server trickling bytes cannot keep one call busy past the
    # deadline (read() would block until a whole chunk arrived). A read waits at most the per-read timeout, so
    # the total can overrun by that much at worst.
    while chunk := response.read1(CHUNK_SIZE, decode_content=False):
        writer.write(chunk)
        if time.monotonic() >= deadline:
            raise _too_slow(label, url, policy)


# --- files on disk ------------------------------------------------------------------------------------------------


class _VerifiedWriter:
    """Writes to a temporary file, hashing and counting; `commit()` renames it into place, read-only."""

    def __init__(self, handle, temp_path: Path, label: str, limit: int | None):
        self._handle = handle
        self._temp_path = temp_path
        self._label = label
        self._limit = limit
        self._hash = hashlib.sha256()
        self.size = 0
        self.committed = False

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self._limit is not None and self.size > self._limit:
            raise StagingError(
                self._label,
                f"the file is larger than the declared {self._limit} bytes; the file changed at the source or the "
                "declared size is wrong.",
            )
        self._hash.update(chunk)
        self._handle.write(chunk)

    def commit(self, final_path: Path) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())  # the entry must be whole on disk before its name says it is verified
        self._handle.close()
        os.chmod(self._temp_path, 0o444)
        # Atomic on one filesystem: readers see the old entry, or the new one whole. Two runs filling the same
        # cache entry both write verified identical bytes, so the later rename is harmless.
        os.replace(self._temp_path, final_path)
        self.committed = True


@contextmanager
def _verified_write(directory: Path, label: str, *, limit: int | None) -> Iterator[_VerifiedWriter]:
    # The temporary file sits beside its final name, so the rename never crosses a filesystem.
    descriptor, temp_name = tempfile.mkstemp(dir=directory, prefix=".staging-", suffix=".part")
    temp_path = Path(temp_name)
    handle = os.fdopen(descriptor, "wb")
    writer = _VerifiedWriter(handle, temp_path, label, limit)
    try:
        yield writer
    finally:
        if not writer.committed:
            handle.close()
            temp_path.unlink(missing_ok=True)


def _prepare_target(
    workdir: Path, relative: str, label: str, created_folders: list[Path], *, create: bool = True
) -> Path:
    """Return workdir/relative after creating its folders; refuse anything that could end outside workdir.

    With create=False only check: nothing below a missing folder can be in the way.
    """
    parts = _path_parts(relative, label)
    current = workdir
    for part in parts[:-1]:
        current = current / part
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if not create:
                return workdir.joinpath(*parts)
            os.mkdir(current, 0o755)
            created_folders.append(current)
            continue
        if stat.S_ISLNK(info.st_mode):
            raise StagingError(label, f"its path {relative!r} passes through a symbolic link; refusing to follow it.")
        if not stat.S_ISDIR(info.st_mode):
            raise StagingError(label, f"its path {relative!r} needs {part!r} to be a folder, but it is a file.")
    target = current / parts[-1]
    if os.path.lexists(target):
        raise StagingError(label, f"{relative!r} is already taken in the working folder; give each input its own path.")
    # Belt and braces: whatever the checks above missed, the real parent must still be inside workdir.
    if not Path(os.path.realpath(target.parent)).is_relative_to(workdir):
        raise StagingError(label, f"its path {relative!r} leads outside the working folder.")
    return target


def _path_parts(relative: str, label: str) -> list[str]:
    if not relative or "\x00" in relative or "\\" in relative:
        raise StagingError(label, f"its path {relative!r} is empty or has characters paths may not contain.")
    if relative.startswith("/"):
        raise StagingError(label, f"its path {relative!r} is absolute; give a path relative to the notebook.")
    parts = relative.split("/")
    if ".." in parts:
        raise StagingError(label, f"its path {relative!r} contains '..'; give a path inside the notebook's folder.")
    if any(part in ("", ".") for part in parts):
        raise StagingError(label, f"its path {relative!r} has empty or '.' parts; write it plainly (a/b.csv).")
    return parts


def _link_or_copy(entry: Path, target: Path, label: str) -> None:
    # A hard link shares the entry's inode, so it is read-only like the entry and costs no space. That is safe
    # because the kernel runs as another, unprivileged uid that cannot chmod the worker's files.
    try:
        os.link(entry, target)
        return
    except OSError:
        pass  # another filesystem, or links not supported: copy instead
    with _verified_write(target.parent, label, limit=None) as writer:
        with open(entry, "rb") as source:
            shutil.copyfileobj(source, writer, CHUNK_SIZE)
        writer.commit(target)


def _clip(value) -> str:
    """Text from servers and exceptions, made safe for a one-line message."""
    return _one_line(str(value))[:MAX_MESSAGE_TEXT]


def _one_line(text: str) -> str:
    return " ".join(text.split())
