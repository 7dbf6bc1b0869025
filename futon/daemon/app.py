"""The daemon: assembles config, evidence store and transports, and owns
their lifecycle. Start order: store, then transports; stop order: the
reverse, so nothing is accepted that cannot be recorded."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from futon.agents.registry import AgentRecord, AgentRegistry
from futon.agents.tickle import Tickle
from futon.config.loader import LoadedConfig
from futon.daemon.exposure import check_exposure
from futon.errors import FutonError, NotFound
from futon.evidence.jsonl import JsonlStore, open_store
from futon.peripherals.domain import install as install_domain
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.spec import load_peripherals
from futon.peripherals.tools.backend import RealBackend
from futon.social.messenger import DaemonMessenger
from futon.social.pipeline import Pipeline
from futon.social.relay import IrcRelay
from futon.transports.http import Services, build_app
from futon.transports.irc_embedded import EmbeddedSide
from futon.transports.irc_server import IrcServer
from futon.transports.ws import WsHub

log = logging.getLogger("futon.daemon")


class Daemon:
    def __init__(self, config: LoadedConfig) -> None:
        check_exposure(config)
        self.config = config
        self.store: JsonlStore | None = None
        self.runner: PeripheralRunner | None = None
        self.registry = AgentRegistry(config.agents, replay_window=config.daemon.ws.replay_window)
        self.pipeline: Pipeline | None = None
        self.ws: WsHub | None = None
        self.tickle: Tickle | None = None
        self.relay: IrcRelay | None = None
        self.irc_server: IrcServer | None = None
        self.bots: list[Any] = []  # IrcBot, one per configured network
        self.ports: dict[str, int] = {}
        self._web: web.AppRunner | None = None

    # What /health reports, read live.
    def health(self) -> dict[str, Any]:
        return {
            "agents": len(self.registry.all()),
            "sessions": sum(1 for s in self.runner.sessions() if s.active) if self.runner else 0,
            "connections": {
                "ws": self.ws.count if self.ws else 0,
                "irc": self.irc_server.clients_count if self.irc_server else 0,
            },
            "transports": {
                "http": {"listening": self._web is not None, "port": self.ports.get("http")},
                "ws": {"listening": self._web is not None, "paths": ["/agency/ws", "/ws"]},
                "irc": {"listening": self.irc_server is not None, "port": self.ports.get("irc"),
                        "networks": {bot.network: bot.connected for bot in self.bots}},
            },
            "evidence": {"entries": self.store.last_seq if self.store else 0},
        }

    async def start(self) -> None:
        settings = self.config.daemon
        self.store = open_store(
            self.config.data_dir,
            fsync=settings.evidence.fsync,
            fsync_interval_ms=settings.evidence.fsync_interval_ms,
            shard_max_bytes=settings.evidence.shard_max_bytes,
            rollover=settings.evidence.shard_rollover,
        )
        log.info("evidence store at %s (%d entries, fsync=%s)", self.store.directory, self.store.last_seq, self.store.fsync)
        backend = RealBackend()
        domain = install_domain(
            backend,
            patterns_dir=self._beside_config(settings.discipline.patterns_dir),
            repos=[self._beside_config(repo) for repo in settings.mission_control.repos] or None,
        )
        self.runner = PeripheralRunner(
            load_peripherals(self.config.peripherals),
            backend,
            self.store,
            settings.tools,
            self.config.workspace,
            phase_gate=domain.phase_gate,
            data_dir=self.config.data_dir,
        )
        self.runner.fruits.update(domain.fruits)
        log.info("%d peripherals; workspace %s", len(self.runner.peripherals), self.config.workspace)
        self.pipeline = Pipeline(self.registry, self.runner, self.store, reply_timeout_s=settings.dispatch.reply_timeout_s)
        self.relay = IrcRelay(self.registry, self.pipeline, self.store, self.runner, daemon_nick=settings.irc.nick)
        self.runner.messenger = DaemonMessenger(self.registry, self.pipeline, self.store, irc=self.relay)
        self.tickle = Tickle(self.registry, self.store, self.runner, self.pipeline, settings.tickle, speaker=self.relay)
        if settings.tickle.enabled:
            self.relay.tickle = self.tickle
        if settings.tickle.enabled:
            self.tickle.start()
            log.info("tickle watching every %gs (stale after %gs)", settings.tickle.interval_s, settings.tickle.stale_after_s)
        self.ws = WsHub(self.registry, self.runner, self.pipeline, self.store, settings.ws, chat_relay=self.relay)
        services = Services(
            health=self,
            registry=self.registry,
            runner=self.runner,
            store=self.store,
            pipeline=self.pipeline,
            ws_handler=self.ws.handle,
            chat=self,
            admin_token_sha256=settings.http.admin_token_sha256,
            max_body_bytes=settings.http.max_body_bytes,
        )
        self._web = web.AppRunner(build_app(services), handle_signals=False, access_log=None, shutdown_timeout=5)
        await self._web.setup()
        site = web.TCPSite(self._web, settings.http.host, settings.http.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise FutonError(
                f"cannot listen on {settings.http.host}:{settings.http.port}: {exc.strerror or exc}"
            ) from None
        server = site._server  # aiohttp exposes the bound sockets only here
        port = server.sockets[0].getsockname()[1] if server and server.sockets else settings.http.port
        self.ports["http"] = port
        await self._start_irc()
        log.info("http listening on http://%s:%d (agents: ws://%s:%d/agency/ws)", settings.http.host, port, settings.http.host, port)
        self._write_ports()

    async def _start_irc(self) -> None:
        settings = self.config.daemon.irc
        if settings.server.enabled:
            side = EmbeddedSide(self.relay)
            self.irc_server = IrcServer(settings.server, side)
            side.bind(self.irc_server)
            try:
                await self.irc_server.start()
            except OSError as exc:
                await self.stop()
                raise FutonError(f"cannot listen for IRC on {settings.server.host}:{settings.server.port}: {exc.strerror or exc}") from None
            self.ports["irc"] = self.irc_server.bound_port
            self.relay.attach(side)
            log.info("irc listening on %s:%d", settings.server.host, self.ports["irc"])
        if settings.networks:
            from futon.transports.irc_bot import IrcBot  # pydle loads only when bot mode is used
        for network in settings.networks:
            bot = IrcBot(network, self.relay)
            self.bots.append(bot)
            self.relay.attach(bot)
            await bot.start()
        await self.relay.show_agents()
        for side in self.relay.sides:
            await side.ensure_agent(settings.nick, list(settings.channels))

    def _beside_config(self, value: str) -> Path:
        """Relative paths in futon.yaml are relative to its folder."""
        return (self.config.base_dir / value).resolve()

    def _write_ports(self) -> None:
        path = Path(self.config.data_dir) / "ports.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.ports) + "\n")
        os.replace(tmp, path)

    async def chat(self, sender: str, to: str, text: str) -> None:
        """POST /api/alpha/chat: to an agent over WS, and into evidence (IRC
        joins when the IRC transport is running)."""
        if self.pipeline is None or self.store is None:
            raise FutonError("the daemon is not running", code="internal-error")
        target: AgentRecord | None = self.registry.find(to)
        if target is None and not to.startswith("#"):
            raise NotFound(f"no agent, channel or nick {to!r}", code="agent-not-found")
        if target is not None:
            await self.pipeline.push(target, {"type": "chat_message", "to": to, "from": sender, "text": text, "transport": "http"})
        await self.store.append(
            {
                "subject": {"ref/type": "thread", "ref/id": f"irc/{to}" if to.startswith("#") else f"irc/{'+'.join(sorted([sender, to]))}"},
                "type": "forum-post",
                "claim-type": "observation",
                "author": sender,
                "body": {"text": text, "channel": to if to.startswith("#") else None, "transport": "http", "network": None},
            }
        )

    async def stop(self) -> None:
        if self.tickle is not None:
            await self.tickle.stop()
        for bot in self.bots:
            await bot.stop()
        self.bots = []
        if self.irc_server is not None:
            await self.irc_server.stop()
            self.irc_server = None
        if self.ws is not None:
            await self.ws.close_all()
        if self._web is not None:
            await self._web.cleanup()
            self._web = None
        if self.runner is not None:
            await self.runner.stop_all("shutdown")
            self.runner = None
        if self.store is not None:
            await self.store.aclose()
            self.store = None
        if self.ports:  # only the daemon that wrote ports.json removes it
            (Path(self.config.data_dir) / "ports.json").unlink(missing_ok=True)
            self.ports = {}
        log.info("stopped")


async def serve(config: LoadedConfig) -> int:
    """Run until SIGINT or SIGTERM; return the exit code."""
    daemon = Daemon(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await daemon.start()
        await stop.wait()
        log.info("signal received; shutting down")
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await daemon.stop()
    return 0
