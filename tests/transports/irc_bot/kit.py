"""Test kit for bot mode: real IRC servers from Debian (ngircd, InspIRCd) on
a free loopback port, a raw-socket client for the human side, and hooks
that record what the bot reports — so each test reads like a conversation.

The servers run in the foreground (no daemon fork) with a configuration
written to a temporary folder: no PAM, no ident, no DNS."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from futon.config.models import IrcNetwork
from futon.protocol import irc_lines
from futon.social.irc_api import IrcSide
from futon.transports.irc_bot import IrcBot

TIMEOUT_S = 10.0


def free_port() -> int:
    """A port number for an external IRC server's config file.

    Bind-close-reuse (a small race: something else may take the number
    before the server binds it) is kept only here: ngircd and InspIRCd read
    their port from the config and cannot bind port 0 and report it. futon's
    own servers bind port 0 themselves; "nothing listens" uses
    :func:`tests.support.refused_port`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_binary(binary: str, package: str, *, optional: bool = False) -> str:
    """The path of ``binary``, installing ``package`` with apt-get when we
    are root and it is missing. When that is not possible the test fails —
    or, for an ``optional`` server (InspIRCd: "if it installs"), skips."""
    for folder in ("/usr/sbin", "/usr/bin", "/sbin"):
        if os.access(f"{folder}/{binary}", os.X_OK):
            return f"{folder}/{binary}"
    found = shutil.which(binary)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", package]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            subprocess.run(install, env=env, capture_output=True)
        # We start our own instances; the package's service would sit on 6667.
        if shutil.which("systemctl"):
            subprocess.run(["systemctl", "disable", "--now", package], capture_output=True)
        for folder in ("/usr/sbin", "/usr/bin"):
            if os.access(f"{folder}/{binary}", os.X_OK):
                return f"{folder}/{binary}"
    reason = f"{binary} (Debian package {package}) is not installed and cannot be installed here; run `make packages` as root"
    if optional:
        pytest.skip(reason)
    pytest.fail(reason)


async def wait_for_port(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"IRC server exited with {process.returncode}:\n{log.read_text()}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"IRC server never listened on {port}:\n{log.read_text()}"
                ) from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


@dataclass
class ServerProcess:
    """One IRC server in the foreground; ``kill`` and ``start`` again on
    the same port to simulate a crash and a restart."""

    argv: list[str]
    port: int
    folder: Path
    tls_port: int | None = None
    process: asyncio.subprocess.Process | None = None

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.folder,
                start_new_session=True,
            )
        await wait_for_port(self.port, self.process, self.log)
        if self.tls_port:
            await wait_for_port(self.tls_port, self.process, self.log)

    async def kill(self) -> None:
        """SIGKILL: no QUIT, no ERROR — the sockets just close."""
        if self.process and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                await self.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Ngircd(ServerProcess):
    """ngircd from Debian; ``rehash(password=…)`` rewrites the
    configuration and sends SIGHUP (clients stay connected)."""

    password: str | None = None
    cert: Path | None = None
    key: Path | None = None

    def write_config(self) -> None:
        motd = self.folder / "motd"
        motd.write_text("futon test network\n")
        lines = [
            "[Global]",
            "  Name = irc.futon.test",
            "  Info = futon bot-mode tests",
            "  Listen = 127.0.0.1",
            f"  Ports = {self.port}",
            f"  MotdFile = {motd}",
            f"  PidFile = {self.folder / 'ngircd.pid'}",
        ]
        if self.password:
            lines.append(f"  Password = {self.password}")
        lines += [
            "[Limits]",
            "  MaxConnectionsIP = 0",
            "  MaxNickLength = 30",
            "[Options]",
            "  PAM = no",
            "  Ident = no",
            "  DNS = no",
            "  ConnectIPv6 = no",
        ]
        if self.tls_port and self.cert and self.key:
            lines += [
                "[SSL]",
                f"  CertFile = {self.cert}",
                f"  KeyFile = {self.key}",
                f"  Ports = {self.tls_port}",
            ]
        conf = self.folder / "ngircd.conf"
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o644)

    def rehash(self, *, password: str | None) -> None:
        self.password = password
        self.write_config()
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)


def server_folder(prefix: str) -> Path:
    """A folder the server can still read after it drops root for
    ``nobody`` (ngircd always does) — pytest's tmp_path is private (0700)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return folder


def make_ngircd(*, password: str | None = None, tls: bool = False) -> Ngircd:
    binary = require_binary("ngircd", "ngircd")
    folder = server_folder("futon-ngircd-")
    conf = folder / "ngircd.conf"
    server = Ngircd([binary, "-n", "-p", "-f", str(conf)], free_port(), folder, password=password)
    if tls:
        server.cert, server.key = self_signed_cert(folder)
        server.tls_port = free_port()
    server.write_config()
    return server


@dataclass
class Inspircd(ServerProcess):
    """InspIRCd 3 from Debian with the IRCv3 modules, SASL and a server
    port where :class:`~tests.transports.irc_bot.services.FakeServices`
    links in."""

    server_port: int = 0
    link_password: str = "linkpw"

    def write_config(self) -> None:
        folder = self.folder
        (folder / "motd").write_text("futon test network\n")
        conf = f"""
<server name="irc.futon.test" description="futon bot-mode tests" network="FutonTest" id="1FT">
<admin name="futon" nick="futon" email="futon@localhost">
<bind address="127.0.0.1" port="{self.port}" type="clients">
<bind address="127.0.0.1" port="{self.server_port}" type="servers">
<connect allow="*" timeout="60" threshold="1000" pingfreq="120" hardsendq="262144" softsendq="8192"
         recvq="8192" localmax="1000" globalmax="1000" resolvehostnames="no" useident="no"
         commandrate="100000" fakelag="no">
<pid file="{folder / "inspircd.pid"}">
<options prefixquit="Quit: " syntaxhints="no">
<security hideserver="" flatlinks="no" hidesplits="no" hideulines="no" maxtargets="20">
<performance quietbursts="yes" softlimit="1024" somaxconn="128" netbuffersize="10240">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{folder / "ircd.log"}">
<files motd="{folder / "motd"}">
<module name="cap">
<module name="ircv3">
<module name="ircv3_accounttag">
<module name="ircv3_capnotify">
<module name="services_account">
<module name="sasl">
<module name="spanningtree">
<sasl target="services.futon.test" requiressl="no">
<link name="services.futon.test" ipaddr="127.0.0.1" port="{self.server_port}" allowmask="127.0.0.0/8"
      sendpass="{self.link_password}" recvpass="{self.link_password}">
<uline server="services.futon.test" silent="yes">
"""
        (folder / "inspircd.conf").write_text(conf)


def make_inspircd() -> Inspircd:
    binary = require_binary("inspircd", "inspircd", optional=True)
    folder = server_folder("futon-inspircd-")
    conf = folder / "inspircd.conf"
    argv = [binary, "--nofork", "--runasroot", f"--config={conf}"]
    server = Inspircd(argv, free_port(), folder, server_port=free_port())
    server.write_config()
    return server


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    if not shutil.which("openssl"):
        pytest.fail("openssl is not installed; run `make packages` as root")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    # ngircd drops root to the irc user when it can; keep the files readable.
    cert.chmod(0o644)
    key.chmod(0o644)
    return cert, key


# --- the human side -------------------------------------------------------


@dataclass
class Line:
    raw: str
    tags: dict[str, str]
    source: str
    command: str
    params: list[str]

    @property
    def nick(self) -> str:
        return self.source.split("!", 1)[0]

    @property
    def text(self) -> str:
        return self.params[-1] if self.params else ""


def parse_line(raw: str) -> Line:
    """The server's line as the tests read it, parsed by futon's own codec
    (one IRC parser in the project)."""
    message = irc_lines.parse_line(raw)
    return Line(raw, dict(message.tags), message.source or "", message.command.upper(), list(message.params))


class RawClient:
    """A human's IRC client on a raw socket: registers, answers PING, and
    waits for the line a test expects."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seen: list[Line] = []
        self.nick = ""

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()

    async def read(self, timeout: float = TIMEOUT_S) -> Line:
        raw = await asyncio.wait_for(self.reader.readline(), timeout)
        if not raw:
            raise ConnectionError("server closed the connection")
        line = parse_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
        if line.command == "PING":
            await self.send("PONG :" + line.text)
        self.seen.append(line)
        return line

    async def expect(self, match: Callable[[Line], bool], timeout: float = TIMEOUT_S) -> Line:
        async with asyncio.timeout(timeout):
            while True:
                line = await self.read(timeout)
                if match(line):
                    return line

    async def expect_command(self, command: str, timeout: float = TIMEOUT_S) -> Line:
        return await self.expect(lambda line: line.command == command, timeout)

    async def register(self, nick: str, password: str | None = None) -> None:
        if password:
            await self.send(f"PASS {password}")
        await self.send(f"NICK {nick}")
        await self.send(f"USER {nick} 0 * :{nick}")
        await self.expect(lambda line: line.command in ("376", "422"))
        self.nick = nick

    async def register_with_sasl(self, nick: str, account: str, password: str) -> None:
        """IRCv3 registration with SASL PLAIN (and account-tag, so this
        human sees accounts too)."""
        await self.send("CAP LS 302")
        await self.send(f"NICK {nick}")
        await self.send(f"USER {nick} 0 * :{nick}")
        await self.expect_command("CAP")
        await self.send("CAP REQ :sasl account-tag")
        await self.expect(lambda line: line.command == "CAP" and line.params[1] == "ACK")
        await self.send("AUTHENTICATE PLAIN")
        await self.expect_command("AUTHENTICATE")
        token = base64.b64encode(f"{account}\0{account}\0{password}".encode()).decode()
        await self.send(f"AUTHENTICATE {token}")
        result = await self.expect(lambda line: line.command in ("903", "904"))
        assert result.command == "903", result.raw
        await self.send("CAP END")
        await self.expect(lambda line: line.command in ("376", "422"))
        self.nick = nick

    async def join(self, channel: str) -> None:
        await self.send(f"JOIN {channel}")
        await self.expect(lambda line: line.command == "366")

    async def messages_from(self, nick: str, count: int, timeout: float = TIMEOUT_S) -> list[Line]:
        """The next ``count`` PRIVMSG/NOTICE lines sent by ``nick``."""
        out: list[Line] = []
        async with asyncio.timeout(timeout):
            while len(out) < count:
                line = await self.read(timeout)
                if line.command in ("PRIVMSG", "NOTICE") and line.nick == nick:
                    out.append(line)
        return out

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("QUIT :bye")
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def eventually(predicate: Callable[[], Any], timeout: float = TIMEOUT_S) -> Any:
    """Poll ``predicate`` (state that nothing announces, like ``bot.queued``)."""
    async with asyncio.timeout(timeout):
        while not (result := predicate()):
            await asyncio.sleep(0.02)
    return result


# --- the relay side -------------------------------------------------------


@dataclass
class Message:
    sender: str
    target: str
    text: str
    private: bool
    notice: bool
    account: str | None


@dataclass
class RecordingHooks:
    """A RelayHooks that remembers everything and lets a test wait for it."""

    messages: list[Message] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def on_message(
        self,
        side: IrcSide,
        sender: str,
        target: str,
        text: str,
        *,
        private: bool,
        notice: bool = False,
        account: str | None = None,
    ) -> None:
        self.messages.append(Message(sender, target, text, private, notice, account))
        async with self._changed:
            self._changed.notify_all()

    async def on_event(self, side: IrcSide, kind: str, detail: str) -> None:
        self.events.append((kind, detail))
        async with self._changed:
            self._changed.notify_all()

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    async def wait(self, predicate: Callable[[], Any], timeout: float = TIMEOUT_S) -> Any:
        """Until ``predicate()`` is truthy after something was recorded."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)
        return predicate()

    async def message(
        self, match: Callable[[Message], bool], timeout: float = TIMEOUT_S
    ) -> Message:
        def found() -> Message | None:
            return next((m for m in self.messages if match(m)), None)

        return await self.wait(found, timeout)

    async def event(self, kind: str, count: int = 1, timeout: float = TIMEOUT_S) -> list[str]:
        """Details of the first ``count`` events of ``kind``, once there are that many."""

        def found() -> list[str] | None:
            details = [detail for k, detail in self.events if k == kind]
            return details if len(details) >= count else None

        return await self.wait(found, timeout)


# --- putting it together ----------------------------------------------------

# Short backoffs so reconnect tests take a fraction of a second.
FAST = {"backoff_initial_s": 0.05, "backoff_max_s": 0.4, "connect_timeout_s": 1.0}

MakeBot = Callable[..., Awaitable[tuple[IrcBot, RecordingHooks]]]
Connect = Callable[..., Awaitable[RawClient]]


def network_for(port: int, **fields: Any) -> IrcNetwork:
    values: dict[str, Any] = {
        "name": "testnet",
        "host": "127.0.0.1",
        "port": port,
        "nick": "futonbot",
        "channels": ["#futon"],
    }
    values.update(fields)
    return IrcNetwork(**values)


async def bot_and_human(
    make_bot: MakeBot, connect: Connect, port: int, **fields: Any
) -> tuple[IrcBot, RecordingHooks, RawClient]:
    """A bot and a human ("alice"), both in #futon. They connect side by
    side: ngircd holds each new client's first command for a second."""
    (bot, hooks), human = await asyncio.gather(
        make_bot(port, **fields), connect(port, "alice", channel="#futon")
    )
    await hooks.event("joined")
    return bot, hooks, human
