"""docs/irc.md, "A team: two linked ngircd servers": the two configurations
printed there, started as they are (only addresses, ports and file paths
moved to this machine), link, and a human's line crosses the link."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tests.support import REPO
from tests.transports.irc_bot.kit import (
    RawClient,
    ServerProcess,
    free_port,
    require_binary,
    server_folder,
)

DOC = REPO / "docs" / "irc.md"
LINK_TIMEOUT_S = 90  # irc1 connects at start; ngircd may wait a few seconds first
ADDRESSES = {"irc1": "192.0.2.1", "irc2": "192.0.2.2"}


def documented_configs() -> dict[str, str]:
    """The ``# irc1: …`` and ``# irc2: …`` ini blocks of the section."""
    text = DOC.read_text()
    blocks = re.findall(r"```ini\n# (irc[12]): [^\n]*\n(.*?)```", text, flags=re.S)
    assert [name for name, _ in blocks] == ["irc1", "irc2"], "the section's two ini blocks"
    return dict(blocks)


@asynccontextmanager
async def documented_network() -> AsyncIterator[dict[str, int]]:
    """Both servers running; their client ports by name."""
    binary = require_binary("ngircd", "ngircd")
    ports = {"irc1": free_port(), "irc2": free_port()}
    servers: list[ServerProcess] = []
    # irc2 (passive) first: irc1 connects out at start, and a first attempt that finds
    # nobody listening waits ConnectRetry (60 s) before the next.
    for name, config in sorted(documented_configs().items(), reverse=True):
        folder = server_folder(f"futon-ngircd-{name}-")
        other = "irc2" if name == "irc1" else "irc1"
        config = config.replace(ADDRESSES[other], "127.0.0.1").replace("0.0.0.0", "127.0.0.1")
        config = config.replace("Ports = 6667", f"Ports = {ports[name]}")
        config = config.replace("Port = 6667", f"Port = {ports[other]}")
        (folder / "motd").write_text("team network\n")
        # Files of this test's own: the pid file and the MOTD (not the link's business).
        config = config.replace(
            "[Global]\n", f"[Global]\n  PidFile = {folder / 'ngircd.pid'}\n  MotdFile = {folder / 'motd'}\n", 1
        )
        conf = folder / "ngircd.conf"
        conf.write_text(config)
        conf.chmod(0o644)
        # No -p (passive) here, unlike the bot-mode tests: irc1 must connect out.
        server = ServerProcess([binary, "-n", "-f", str(conf)], ports[name], folder)
        servers.append(server)
        await server.start()
    try:
        yield ports
    finally:
        for server in servers:
            await server.stop()


@pytest.fixture
async def linked() -> AsyncIterator[dict[str, int]]:
    async with documented_network() as ports:
        yield ports


async def test_a_line_crosses_the_documented_link(linked: dict[str, int]) -> None:
    alice = await RawClient.connect(linked["irc1"])
    bob = await RawClient.connect(linked["irc2"])
    try:
        await alice.register("alice")
        await bob.register("bob")
        # The link: irc1 connects at start; bob sees both servers once it is up.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINK_TIMEOUT_S
        while loop.time() < deadline:
            await asyncio.sleep(0.2)  # a poll interval, not a wait for the link (the loop is)
            await bob.send("LINKS")
            names = set()
            while (line := await bob.read()).command != "365":
                if line.command == "364":
                    names.add(line.params[1])
            if names == {"irc1.example.net", "irc2.example.net"}:
                break
        else:
            raise AssertionError("the two servers never linked")
        await alice.send("JOIN #futon")
        await bob.send("JOIN #futon")
        await alice.expect(lambda line: line.command == "JOIN" and line.source.startswith("bob"))
        await alice.send("PRIVMSG #futon :hello across the link")
        said = await bob.expect(lambda line: line.command == "PRIVMSG")
        assert said.source.startswith("alice!") and said.params == ["#futon", "hello across the link"]
    finally:
        await alice.close()
        await bob.close()
