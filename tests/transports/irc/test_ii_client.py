"""ii, the suckless filesystem IRC client from Debian, against the embedded
server: a human's terminal client and a raw client talk, and each side's
view is checked line by line (ii's view is its ``out`` files).

ii is installed by ``make irc-clients`` (root + apt-get). Without it this
test fails and says so: a skipped test would hide that no real terminal
client was ever tried.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from futon.transports.irc import IrcServer
from tests.transports.irc.kit import RawClient, irc_server

PASSWORD = "hunter2"
II_USER = "iiuser!~iiuser@127.0.0.1"


class IiClient:
    """One ``ii`` process and its directory tree (``<root>/127.0.0.1/``)."""

    def __init__(self, process: asyncio.subprocess.Process, root: Path) -> None:
        self.process = process
        self.server_dir = root / "127.0.0.1"

    async def write(self, text: str, where: str = "") -> None:
        """Write one line into ``<where>/in`` (the server FIFO when empty)."""
        fifo = self.server_dir / where / "in" if where else self.server_dir / "in"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        while True:
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:  # not created yet, or ii is reopening it
                if exc.errno not in (errno.ENOENT, errno.ENXIO) or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.02)
        try:
            os.write(fd, (text + "\n").encode())
        finally:
            os.close(fd)

    async def sees(self, text: str, where: str = "", timeout: float = 5) -> str:
        """Wait until ``<where>/out`` has a line ending with ``text``
        (after ii's timestamp); return that line."""
        out = self.server_dir / where / "out" if where else self.server_dir / "out"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            lines = out.read_text(errors="replace").splitlines() if out.exists() else []
            for line in lines:
                if line.split(" ", 1)[-1] == text:
                    return line
            if loop.time() > deadline:
                raise AssertionError(f"ii never showed {text!r} in {out}; it has: {lines}")
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_ii(server: IrcServer, root: Path, nick: str) -> AsyncIterator[IiClient]:
    binary = shutil.which("ii")
    if binary is None:
        pytest.fail(
            "the Debian IRC client `ii` is not installed, so no real terminal client was tested; "
            "run `make irc-clients` as root (apt-get install -y ii)",
            pytrace=False,
        )
    process = await asyncio.create_subprocess_exec(
        binary,
        "-s",
        "127.0.0.1",
        "-p",
        str(server.bound_port),
        "-n",
        nick,
        "-i",
        str(root),
        "-f",
        "ii user",
        "-k",
        "IIPASS",
        env={**os.environ, "IIPASS": PASSWORD},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield IiClient(process, root)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_ii_joins_talks_changes_nick_parts_and_quits(tmp_path: Path) -> None:
    async with irc_server(password=PASSWORD) as server:
        bob = await RawClient.connect(server)
        await bob.send(f"PASS {PASSWORD}")
        await bob.register("bob")
        await bob.join("#room")

        async with running_ii(server, tmp_path, "iiuser") as ii:
            # registration with PASS, as ii sees it
            await ii.sees(f"Welcome to the TestNet IRC Network {II_USER}")

            await ii.write("/j #room")
            join = await bob.expect("JOIN")
            assert (join.source, join.params) == (II_USER, ["#room"])
            await ii.sees("-!- iiuser(~iiuser@127.0.0.1) has joined #room", "#room")
            await ii.sees("= #room @bob iiuser")

            await bob.send("PRIVMSG #room :hi ii")
            await ii.sees("<bob> hi ii", "#room")
            await ii.write("hello bob", "#room")
            said = await bob.expect("PRIVMSG")
            assert (said.source, said.params) == (II_USER, ["#room", "hello bob"])

            await bob.send("PRIVMSG iiuser :psst")
            await ii.sees("<bob> psst", "bob")

            await ii.write("/n iinew")
            nick = await bob.expect("NICK")
            assert (nick.source, nick.params) == (II_USER, ["iinew"])
            await bob.send("NICK bobby")
            await ii.sees("-!- bob changed nick to bobby")
            await bob.send("PRIVMSG #room :still there, iinew?")
            await ii.sees("<bobby> still there, iinew?", "#room")

            await ii.write("/l bye all", "#room")
            part = await bob.expect("PART")
            assert (part.source, part.params) == ("iinew!~iiuser@127.0.0.1", ["#room", "bye all"])
            assert server.members("#room") == ["bobby"]

            await ii.write("/j #room")
            await bob.expect("JOIN")
            await ii.write("/q gone")
            quit_ = await bob.expect("QUIT")
            assert (quit_.source, quit_.params) == ("iinew!~iiuser@127.0.0.1", ["Quit: gone"])
            assert await asyncio.wait_for(ii.process.wait(), 5) == 0
            assert server.members("#room") == ["bobby"]
        await bob.close()
