"""Where a webhook may be sent: no server-side request forgery.

A target's host is resolved, and every address it resolves to must be a public one (not
loopback, private, link-local, unique-local, shared, reserved, multicast, nor a cloud metadata
address), unless it lies in a network an operator allowed (``KONFIG_WEBHOOK_ALLOWED_NETWORKS``).
The check runs when an endpoint is saved and again before each attempt, and the attempt connects
to the very address that was checked (``Target.pinned_url``): a name that resolves elsewhere a
moment later (DNS rebinding) changes nothing. Redirects are never followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Refused even where ``is_global`` would say otherwise (cloud metadata services).
_METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)


class TargetRefused(ValueError):
    """The URL may not be used as a webhook target; the message says why (no secret in it)."""


@dataclass(frozen=True, slots=True)
class Policy:
    allow_http: bool
    allowed: tuple[Network, ...]

    @classmethod
    def of(cls, allow_http: bool, networks: Sequence[str]) -> Policy:
        return cls(allow_http, tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def admits(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed):
            return True
        if any(address in network for network in _METADATA):
            return False
        return address.is_global and not address.is_multicast


@dataclass(frozen=True, slots=True)
class Target:
    url: httpx.URL
    address: IPAddress

    @property
    def pinned_url(self) -> str:
        """The URL with its host replaced by the checked address (the Host header and TLS
        server name keep the name)."""
        return _pinned(self.url, self.address)


@lru_cache(maxsize=4096)  # httpx builds a URL in about 0.1 ms: once per target, not per attempt
def _pinned(url: httpx.URL, address: IPAddress) -> str:
    return str(url.copy_with(host=str(address)))


@lru_cache(maxsize=4096)  # every attempt checks its URL again: parsed once
def check_url(url: str, policy: Policy) -> httpx.URL:
    """The URL, parsed, if its form is one a webhook may have (its address is checked apart)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise TargetRefused("not a URL") from exc
    schemes = ("https", "http") if policy.allow_http else ("https",)
    if parsed.scheme not in schemes:
        raise TargetRefused(
            "the URL must use https" if not policy.allow_http else "the URL must use http(s)"
        )
    if not parsed.host:
        raise TargetRefused("the URL has no host")
    if parsed.userinfo:
        raise TargetRefused("the URL may not carry a user name or password")
    if parsed.fragment:
        raise TargetRefused("the URL may not have a fragment")
    return parsed


async def resolve(url: str, policy: Policy) -> Target:
    """Check ``url``, resolve its host and check every address; the first one is the target."""
    parsed = check_url(url, policy)
    host = parsed.host
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host,
                parsed.port or (443 if parsed.scheme == "https" else 80),
                type=socket.SOCK_STREAM,
            )
        except (OSError, UnicodeError) as exc:
            raise TargetRefused(f"the host {host} does not resolve") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
        if not addresses:
            raise TargetRefused(f"the host {host} does not resolve")
    refused = [address for address in addresses if not policy.admits(address)]
    if refused:
        raise TargetRefused(
            f"the host {host} resolves to {refused[0]}, a loopback, private, link-local or "
            "metadata address: set KONFIG_WEBHOOK_ALLOWED_NETWORKS to allow its network"
        )
    return Target(parsed, addresses[0])


@lru_cache(maxsize=4096)
def _literal(host: str) -> IPAddress | None:
    """The address a host names literally, or None for a name (resolved at each attempt)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def shown_url(url: str) -> str:
    """A URL as logs and the audit log show it: scheme and host only (a path or a query may
    carry a receiver's own secret)."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0].split('?', 1)[0]}/…"
