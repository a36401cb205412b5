"""Whether a development server may listen on an address: with DEBUG on, loopback only.

DEBUG pages show tracebacks with paths and settings to whoever asks, so `manage.py serve` refuses to listen
where others can reach it (0.0.0.0, a public address, a host name other than localhost) while DEBUG is on.
"""

import ipaddress
import re

from django.core.management.base import CommandError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def listen_host(address: str) -> str:
    """The host part of runserver's ADDRESS ("8000", "host:8000", "[::1]:8000"); runserver's default for "8000"."""
    match = re.fullmatch(r"\[(?P<ipv6>[^\]]+)\](?::\d+)?|(?P<host>[^:]+):\d+|(?P<port>\d+)|(?P<bare_ipv6>.*:.*)",
                         address)
    if match is None:
        return address
    if match["port"]:
        return "127.0.0.1"
    return match["ipv6"] or match["host"] or match["bare_ipv6"]


def is_loopback_host(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def refuse_public_address_in_debug(address: str, *, debug: bool) -> None:
    if debug and not is_loopback_host(listen_host(address)):
        raise CommandError(
            f"Refusing to listen on {address} with DEBUG on: debug pages show tracebacks, paths and settings to "
            "anyone who can reach the server. Listen on 127.0.0.1 (reach it from elsewhere through an SSH "
            "tunnel: ssh -L 8000:127.0.0.1:8000 <host>), or run it as in deploy/ with DJANGO_DEBUG=0."
        )
