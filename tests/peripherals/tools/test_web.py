"""web-fetch against a real local HTTP server, and the address vetting
that keeps it off private networks."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from futon.peripherals.args import parse_args
from futon.peripherals.tools.backend import RealBackend
from futon.peripherals.tools.web import IPAddress, VettingResolver, WebFetcher, address_refusal
from futon.protocol.errors import ProtocolError, ToolError

from .conftest import Call, make_ctx


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """http://127.0.0.1:<port> serving a few behaviours."""

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="héllo", headers={"X-Custom": "yes"})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"z" * 50_000)

    stop = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        # Until the fixture ends (not a fixed sleep, so teardown is quick).
        await stop.wait()
        return web.Response(text="late")

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        raise web.HTTPFound(f"/loop/{n + 1}")

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop/{n}", loop)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await runner.cleanup()


def private_ok(ws: Path, **web_fetch: object) -> object:
    return make_ctx(ws, web_fetch={"allow_private": True, **web_fetch})


async def test_loopback_is_refused_by_default(call: Call, server: str, ws: Path) -> None:
    ctx = make_ctx(ws)
    with pytest.raises(ToolError, match="loopback"):
        await call("web-fetch", [f"{server}/ok"], ctx)
    port = server.rsplit(":", 1)[1]
    for url in (
        f"http://localhost:{port}/ok",
        f"http://[::1]:{port}/ok",
        f"http://[::ffff:127.0.0.1]:{port}/ok",
    ):
        with pytest.raises(ToolError, match="refusing"):
            await call("web-fetch", [url], ctx)


async def test_legacy_numeric_hosts_do_not_slip_through(call: Call, server: str, ws: Path) -> None:
    port = server.rsplit(":", 1)[1]
    for host in ("2130706433", "127.1", "0x7f000001"):
        with pytest.raises(ToolError):
            await call("web-fetch", [f"http://{host}:{port}/ok"], make_ctx(ws))


async def test_allowed_private_fetch_returns_status_headers_and_body(
    call: Call, server: str, ws: Path
) -> None:
    result = await call("web-fetch", [f"{server}/ok"], private_ok(ws))
    assert result["status"] == 200
    assert result["body"] == "héllo"
    assert result["truncated"] is False
    assert result["headers"]["x-custom"] == "yes"
    assert all(name == name.lower() for name in result["headers"])


async def test_a_name_is_resolved_by_the_vetting_resolver_when_allowed(
    call: Call, server: str, ws: Path
) -> None:
    port = server.rsplit(":", 1)[1]
    result = await call("web-fetch", [f"http://localhost:{port}/ok"], private_ok(ws))
    assert result["status"] == 200


async def test_the_body_is_capped(call: Call, server: str, ws: Path) -> None:
    result = await call("web-fetch", [f"{server}/big"], private_ok(ws, max_bytes=1000))
    assert result["truncated"] is True
    assert result["body"] == "z" * 1000


async def test_the_whole_fetch_is_time_capped(call: Call, server: str, ws: Path) -> None:
    with pytest.raises(ToolError, match="longer than"):
        await call("web-fetch", [f"{server}/slow"], private_ok(ws, timeout_s=0.3))


async def test_redirects_are_followed(call: Call, server: str, ws: Path) -> None:
    result = await call("web-fetch", [f"{server}/redirect?to=/ok"], private_ok(ws))
    assert (result["status"], result["body"]) == (200, "héllo")


async def test_more_than_five_redirects_is_an_error(call: Call, server: str, ws: Path) -> None:
    with pytest.raises(ToolError, match="redirects"):
        await call("web-fetch", [f"{server}/loop/0"], private_ok(ws))


async def test_a_redirect_to_another_scheme_is_refused(call: Call, server: str, ws: Path) -> None:
    with pytest.raises(ToolError, match="only http"):
        await call("web-fetch", [f"{server}/redirect?to=file:///etc/passwd"], private_ok(ws))


async def test_each_redirect_target_is_vetted_again(call: Call, server: str, ws: Path) -> None:
    """The first hop is allowed by the policy, the redirect target is not:
    the redirect is refused before any request is sent to it."""

    def only_127_0_0_1(address: IPAddress) -> str | None:
        return None if str(address) == "127.0.0.1" else f"{address} is not the test server"

    backend = RealBackend(fetcher=WebFetcher(policy=only_127_0_0_1))
    ctx = make_ctx(ws)
    port = server.rsplit(":", 1)[1]
    assert (await call("web-fetch", [f"{server}/ok"], ctx, using=backend))["status"] == 200
    with pytest.raises(ToolError, match=r"127\.0\.0\.2 is not the test server"):
        await call(
            "web-fetch", [f"{server}/redirect?to=http://127.0.0.2:{port}/ok"], ctx, using=backend
        )


async def test_the_resolver_refuses_a_name_with_any_refused_address() -> None:
    with pytest.raises(ToolError, match="loopback"):
        await VettingResolver(address_refusal).resolve("localhost", 80, 0)
    results = await VettingResolver(None).resolve("localhost", 80, 0)
    assert "127.0.0.1" in {r["host"] for r in results}


def test_non_http_urls_are_refused_when_parsed() -> None:
    for url in ("ftp://example.org/", "file:///etc/passwd", "gopher://x", "example.org"):
        with pytest.raises(ProtocolError):
            parse_args("web-fetch", [url])


async def test_non_http_urls_are_refused_by_the_fetcher_too(ws: Path) -> None:
    with pytest.raises(ToolError, match="only http"):
        await WebFetcher().fetch("file:///etc/passwd", make_ctx(ws).settings.web_fetch)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
        "0.0.0.0", "100.64.0.1", "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1",
        "::1", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.1.1", "fe80::1",
        "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1", "2002:7f00:1::", "2002:a00:1::",
        "64:ff9b::a00:1", "2001:db8::1",
    ],
)  # fmt: skip
def test_vetting_refuses_non_public_addresses(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_vetting_allows_public_addresses(address: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) is None
