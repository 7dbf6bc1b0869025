"""web-fetch: one bounded HTTP GET, never to a private address by accident.

Every hop (the URL and each redirect, at most :data:`MAX_REDIRECTS`) is
checked before anything is sent:

- the scheme must be http or https;
- an IP-literal host is vetted directly; a name is resolved by
  :class:`VettingResolver`, which refuses the host when *any* of its
  addresses is not public and otherwise hands aiohttp exactly the addresses
  it vetted — aiohttp connects to those and resolves nothing itself, so a
  DNS answer that changes between check and connect (rebinding) cannot
  sneak a private address in;
- "not public" is :func:`address_refusal`: private, loopback, link-local,
  multicast, reserved, unspecified, shared (CGNAT), and IPv6 forms that
  embed such an IPv4 address (mapped, 6to4, NAT64).

``tools.web_fetch.allow_private`` turns the address check off. The body is
capped at ``max_bytes`` (``truncated: true`` when cut) and the whole fetch,
redirects included, at ``timeout_s``. No proxy from the environment is used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from futon.config.models import WebFetchSection
from futon.peripherals.args import WebFetchArgs
from futon.peripherals.tools import ToolContext
from futon.protocol.errors import ToolError

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Says why an address may not be fetched, or None when it may.
AddressPolicy = Callable[[IPAddress], str | None]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def address_refusal(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address, or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # The socket connects to the IPv4 address itself.
            inner = address_refusal(address.ipv4_mapped)
            return f"{inner} (as {address})" if inner else None
        embedded: ipaddress.IPv4Address | None = address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_refusal(embedded)
            if inner:
                return f"{inner} (embedded in {address})"
        if address.teredo:
            return f"{address} is a Teredo tunnel address"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        (
            "shared (carrier-grade NAT)",
            isinstance(address, ipaddress.IPv4Address) and address in _SHARED,
        ),
        ("site-local", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("not globally routable", not address.is_global),
    )
    for name, hit in checks:
        if hit:
            return f"{address} is a {name} address"
    return None


def parse_ip(host: str) -> IPAddress | None:
    """The address an IP-literal host names (brackets and zone stripped),
    or None for a name."""
    text = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


class VettingResolver(AbstractResolver):
    """Resolves with the system resolver and returns only vetted addresses;
    refuses the whole host (``ToolError``) when any address is refused."""

    def __init__(self, policy: AddressPolicy | None) -> None:
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except socket.gaierror as exc:
            raise ToolError(f"cannot resolve {host!r}: {exc.strerror}") from None
        results: list[ResolveResult] = []
        seen: set[str] = set()
        for fam, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            parsed = parse_ip(address)
            if parsed is None:
                continue
            if self._policy is not None:
                refusal = self._policy(parsed)
                if refusal:
                    raise ToolError(
                        f"refusing to fetch {host!r}: {refusal}", context={"host": host}
                    )
            if address in seen:
                continue
            seen.add(address)
            results.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": port,
                    "family": fam,
                    "proto": proto,
                    "flags": socket.AI_NUMERICHOST,
                }
            )
        if not results:
            raise ToolError(f"cannot resolve {host!r}: no addresses")
        return results

    async def close(self) -> None:
        return None


def check_url(url: URL, policy: AddressPolicy | None) -> None:
    """Refuse a URL that is not http(s), has no host, or names a refused
    IP literal (names are vetted when resolved)."""
    if url.scheme not in ("http", "https"):
        raise ToolError(
            f"only http and https URLs may be fetched, not {url.scheme or 'a relative URL'!r}"
        )
    host = url.raw_host
    if not host:
        raise ToolError(f"URL {str(url)[:200]!r} has no host")
    literal = parse_ip(host)
    if literal is not None and policy is not None:
        refusal = policy(literal)
        if refusal:
            raise ToolError(f"refusing to fetch {host!r}: {refusal}", context={"host": host})


class WebFetcher:
    """Fetches under ``tools.web_fetch``. ``policy`` decides which
    addresses are refused when ``allow_private`` is off (default
    :func:`address_refusal`; a test server may pass a narrower one)."""

    def __init__(
        self, policy: AddressPolicy = address_refusal, user_agent: str = "futon-web-fetch"
    ) -> None:
        self.policy = policy
        self.user_agent = user_agent

    async def fetch(self, url: str, settings: WebFetchSection) -> dict[str, Any]:
        """``{status, headers, body, truncated}`` of the final response."""
        policy = None if settings.allow_private else self.policy
        try:
            target = URL(url)
        except ValueError as exc:
            raise ToolError(f"not a URL: {exc}") from None
        try:
            async with asyncio.timeout(settings.timeout_s):
                return await self._fetch(target, settings, policy)
        except TimeoutError:
            raise ToolError(
                f"fetching {url[:200]!r} took longer than {settings.timeout_s} s"
            ) from None

    async def _fetch(
        self, target: URL, settings: WebFetchSection, policy: AddressPolicy | None
    ) -> dict[str, Any]:
        connector = aiohttp.TCPConnector(
            resolver=VettingResolver(policy), use_dns_cache=False, force_close=True
        )
        async with aiohttp.ClientSession(
            connector=connector, trust_env=False, headers={"User-Agent": self.user_agent}
        ) as session:
            for _ in range(MAX_REDIRECTS + 1):
                check_url(target, policy)
                try:
                    async with session.get(target, allow_redirects=False) as response:
                        location = response.headers.get("Location")
                        if response.status in _REDIRECTS and location:
                            target = target.join(URL(location))
                            continue
                        body, truncated = await _read_capped(response, settings.max_bytes)
                        return {
                            "status": response.status,
                            "headers": _headers(response),
                            "body": body.decode("utf-8", errors="replace"),
                            "truncated": truncated,
                        }
                except aiohttp.ClientError as exc:
                    raise ToolError(f"fetching {str(target)[:200]!r} failed: {exc}") from None
                except ValueError as exc:  # bad redirect target
                    raise ToolError(f"fetching {str(target)[:200]!r} failed: {exc}") from None
        raise ToolError(f"more than {MAX_REDIRECTS} redirects")


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    kept = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        room = cap - kept
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True
        chunks.append(chunk)
        kept += len(chunk)
    return b"".join(chunks), False


async def web_fetch(fetcher: WebFetcher, args: WebFetchArgs, ctx: ToolContext) -> dict[str, Any]:
    return await fetcher.fetch(args.url, ctx.settings.web_fetch)
