"""Which addresses a fetch may connect to: every address a host name resolves to must be public.

``checked_addresses(host, port, allowed_networks, label, via)`` resolves the name once (an IP literal needs no
lookup) and returns its addresses in resolver order, for the fetcher to connect to exactly these; it raises
``StagingError`` when the name does not resolve, or when ANY address is not public (an attacker controls which
one a client would pick): loopback, private, link-local, multicast, reserved, unspecified, cloud metadata, shared
(carrier-grade NAT) or otherwise non-global, also when hidden as IPv4 inside IPv6 (mapped, 6to4, NAT64). Only
``allowed_networks`` (``FetchPolicy.parsed_networks``: for tests and on-premise archives) lift the refusal.

``host_refusal`` judges a host as written, without resolving it: what a URL saved in a draft is checked with
(repository/validators.py), so that an address staging would refuse is refused when saved, in the same words.
"""

from __future__ import annotations

import ipaddress
import socket

from repository.runners.staging.errors import StagingError

# Addresses that `ipaddress` does not single out by name but that must never be fetched from.
CLOUD_METADATA = ipaddress.ip_address("169.254.169.254")
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, RFC 6598
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64: the last 32 bits are an IPv4 address


def checked_addresses(host: str, port: int, allowed_networks: tuple, label: str, via: str) -> tuple[str, ...]:
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
        reason = refusal_reason(address, allowed_networks)
        if reason:
            raise StagingError(label, refusal_message(host, address, reason, via))
    return tuple(str(address) for address in addresses)


def refusal_message(host: str, address, reason: str, via: str = "") -> str:
    return (f"{host!r}{via} resolves to {address}, a {reason} address; data is only fetched from public internet "
            "addresses.")


def host_refusal(host: str, allowed_networks: tuple = ()) -> str | None:
    """Why a URL naming `host` would be refused whatever DNS says (an IP literal in any spelling, or a name that
    is this machine by definition), or None when only resolving it can tell."""
    host = host.strip("[]").lower()
    if host in ("localhost", "localhost.") or host.endswith((".localhost", ".localhost.")):
        # RFC 6761: these names are this machine whatever a resolver answers.
        return refusal_message(host, ipaddress.ip_address("127.0.0.1"), "loopback")
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    reason = refusal_reason(address, allowed_networks)
    return refusal_message(host, address, reason) if reason else None


def refusal_reason(address, allowed_networks) -> str | None:
    """Why `address` must not be contacted, or None when it is a public address (or explicitly allowed)."""
    if any(address.version == network.version and address in network for network in allowed_networks):
        return None
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        # ::ffff:127.0.0.1 and friends reach the IPv4 address on many stacks: judge that address.
        inner = refusal_reason(embedded, allowed_networks)
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
