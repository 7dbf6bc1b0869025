"""The daemon: assembles config, evidence store and transports, and owns
their lifecycle.

Start order: store, then transports; ``READY=1`` goes to the service
manager once every transport listens (:func:`serve`).

Reload (``SIGHUP`` or ``POST /api/alpha/config/reload``): every config file
is read again; an invalid set is refused and changes nothing; a valid one
is applied in place without dropping a connection (see :meth:`Daemon.reload`
and :mod:`futon.daemon.reload`).

Stop order (:meth:`Daemon.stop`), bounded by :data:`STOP_TIMEOUT_S`: stop
accepting (HTTP/WS listener, IRC listener — IRC clients get ``ERROR :Server
shutting down``), stop background work (Tickle, bot connections), stop
active peripherals with reason ``shutdown``, close WebSockets with 1001,
finish in-flight HTTP requests, then flush and close the evidence store —
so nothing is accepted that cannot be recorded, and everything acknowledged
is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from futon.config.loader import LoadedConfig, load_config
from futon.config.models import AgentSpec, TickleSection
from futon.daemon.exposure import check_exposure
from futon.daemon.metrics import DaemonMetrics, LiveSource, TimedPipeline
from futon.daemon.notify import Notifier
from futon.daemon.reload import ReloadPlan, plan_reload
from futon.daemon.tasks import BackgroundTasks
from futon.daemon.where import connect_lines
from futon.evidence.jsonl import open_store
from futon.evidence.postgres import PostgresStore, open_postgres
from futon.evidence.store import EvidenceStore
from futon.peripherals.domain.installer import install as install_domain
from futon.peripherals.runner import PeripheralRunner
from futon.peripherals.spec import load_peripherals
from futon.peripherals.tools.backend import RealBackend
from futon.protocol.errors import ConfigError, FutonError
from futon.protocol.irc_lines import irc_lower
from futon.social import approvals as approvals_mod
from futon.social.chat import Chat
from futon.social.history import ChannelHistory
from futon.social.messenger import DaemonMessenger
from futon.social.pipeline import Pipeline
from futon.social.registry import AgentRegistry
from futon.social.relay import IrcRelay
from futon.social.team import TeamBus
from futon.social.team_sessions import TeamSessions
from futon.social.tickle import Tickle
from futon.transports.http import HttpRunner, Services, build_app
from futon.transports.irc import IrcHome, IrcServer
from futon.transports.irc.embedded import EmbeddedSide
from futon.transports.ws import CLOSE_UNKNOWN_AGENT, WsHub

GIL_SWITCH_S = 0.001
log = logging.getLogger("futon.daemon")

STOP_TIMEOUT_S = 10.0  # the whole shutdown; systemd's TimeoutStopSec leaves room above it
HTTP_DRAIN_S = 3.0  # in-flight HTTP requests get this long once the listener is closed


class Daemon:
    def __init__(self, config: LoadedConfig, *, notifier: Notifier | None = None) -> None:
        check_exposure(config)
        self.config = config  # in force: the last config applied
        self.started_config = config  # what restart-only settings still come from
        self.notifier = notifier or Notifier()
        self.metrics = DaemonMetrics(_Gauges(self))
        self.services: Services | None = None
        self.store: EvidenceStore | None = None  # JSONL or PostgreSQL (evidence.backend)
        self.runner: PeripheralRunner | None = None
        self.registry = AgentRegistry(config.agents, replay_window=config.daemon.ws.replay_window)
        self.pipeline: Pipeline | None = None
        self.ws: WsHub | None = None
        self.tickle: Tickle | None = None
        self.chat: Chat | None = None  # the one chat path: WS, HTTP, IRC, messenger, Tickle
        self.relay: IrcRelay | None = None
        self.team: TeamBus | None = None  # with the PostgreSQL store: the other daemons
        self.team_sessions: TeamSessions | None = None  # and the team's sessions
        self.approvals: approvals_mod.Approvals | None = None  # humans in the loop (issue 17)
        self.irc_server: IrcServer | None = None
        self.bots: list[Any] = []  # IrcBot, one per configured network
        # Every loop the daemon runs in the background (tasks.py): Tickle's
        # watch here, the watchdog and the SIGHUP loop in serve().
        self.tasks = BackgroundTasks()
        self.ports: dict[str, int] = {}
        self._ports_file = Path(config.data_dir) / "ports.json"
        self._web: web.AppRunner | None = None
        self._reload_lock = asyncio.Lock()
        self._unsubscribe_metrics: Callable[[], None] | None = None

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
            # "degraded": the index lost a write (a full disk); acknowledged
            # entries are served from memory until it catches up.
            "index": self.store.index_state if self.store else "ok",
        }

    async def start(self) -> None:
        settings = self.config.daemon
        # Tool threads (grep over a huge file, reads, hashing) are CPU-bound
        # Python between their C calls: a shorter GIL switch interval than
        # CPython's 5 ms hands the event loop the GIL sooner, so /health and
        # every other connection stay answered while they run.
        sys.setswitchinterval(GIL_SWITCH_S)
        self._load_replay()
        if settings.evidence.backend == "postgres" and settings.evidence.postgres is not None:
            pg = settings.evidence.postgres
            self.store = open_postgres(pg.dsn, password_env=pg.password_env, daemon_id=settings.daemon_id)
            log.info("evidence store in PostgreSQL (%d entries, daemon_id=%s)", self.store.last_seq, self.store.daemon_id)
        else:
            jsonl = open_store(
                self.config.data_dir,
                fsync=settings.evidence.fsync,
                fsync_interval_ms=settings.evidence.fsync_interval_ms,
                shard_max_bytes=settings.evidence.shard_max_bytes,
                rollover=settings.evidence.shard_rollover,
            )
            self.store = jsonl
            log.info("evidence store at %s (%d entries, fsync=%s)", jsonl.directory, jsonl.last_seq, jsonl.fsync)
        self._unsubscribe_metrics = self.store.subscribe(self.metrics.on_entry)
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
            hidden=(self.config.data_dir, *self.config.files),
        )
        self.runner.fruits.update(domain.fruits)
        log.info("%d peripherals; workspace %s", len(self.runner.peripherals), self.config.workspace)
        self.runner.specs_author = settings.irc.nick  # it records the specs before the first session (audit)
        pipeline = TimedPipeline(self.registry, self.runner, self.store, reply_timeout_s=settings.dispatch.reply_timeout_s)
        pipeline.metrics = self.metrics
        self.pipeline = pipeline
        self.chat = Chat(self.registry, self.pipeline, self.store, daemon_nick=settings.irc.nick)
        self.relay = IrcRelay(
            self.registry, self.pipeline, self.store, self.runner, daemon_nick=settings.irc.nick, chat=self.chat
        )
        self.runner.messenger = DaemonMessenger(self.chat, self.pipeline)
        self.approvals = approvals_mod.wire(
            self.store, self.chat, self.registry, self.pipeline, approvers=self.config.agents.approvers,
            timeout_s=self.config.agents.approval_timeout_s, daemon_nick=settings.irc.nick,
        )  # fmt: skip
        self.runner.approver = self.approvals  # humans in the loop (issue 17)
        self.relay.approvals = self.approvals
        self.tickle = Tickle(self.registry, self.store, self.runner, self.chat, settings.tickle)
        self.relay.tickle = self.tickle  # standup asks it for a review while it is enabled
        self._watch_tickle(settings.tickle)
        self.ws = WsHub(
            self.registry, self.runner, self.pipeline, self.store, settings.ws, chat=self.chat
        )
        await self._start_team()
        self.services = Services(
            health=self,
            registry=self.registry,
            runner=self.runner,
            store=self.store,
            pipeline=self.pipeline,
            ws_handler=self.ws.handle,
            chat=self.chat,
            admin_token_sha256=settings.http.admin_token_sha256,
            max_body_bytes=settings.http.max_body_bytes,
            body_timeout_s=settings.http.body_timeout_s,
            reload=self.reload,
            metrics=self.metrics.render,
            approvals=self.approvals,
            team_agents=self.team_sessions.agents if self.team_sessions is not None else None,
            team_sessions=self.team_sessions,
            team_state=self.team.state if self.team is not None else None,
        )
        self.ws.approvals = self.approvals  # operator clients decide over WS (issue 17)
        services = self.services
        self.ws.admin_token_sha256 = lambda: services.admin_token_sha256  # live: reloads update it
        app = build_app(self.services)
        app.on_response_prepare.append(self._count_response)
        # HttpRunner: header/keep-alive timeouts and the per-address cap (transports/http.py).
        self._web = HttpRunner(
            app, settings.http, handle_signals=False, access_log=None, shutdown_timeout=HTTP_DRAIN_S
        )
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
        # Typed AbstractServer, which has no `sockets`; it is an asyncio.Server.
        sockets = server.sockets if isinstance(server, asyncio.Server) else ()
        port = sockets[0].getsockname()[1] if sockets else settings.http.port
        self.ports["http"] = port
        await self._start_irc()
        log.info("http listening on http://%s:%d", settings.http.host, port)
        for line in connect_lines(self.config, self.ports):  # where each kind of client goes
            log.info("%s", line)
        self._write_ports()

    async def _start_team(self) -> None:
        """With the PostgreSQL store this daemon is one of a team: presence
        and routing to agents on the other daemons (social/team.py)."""
        pg = self.config.daemon.evidence.postgres
        if not isinstance(self.store, PostgresStore) or pg is None or self.pipeline is None or self.ws is None:
            return
        password = os.environ.get(pg.password_env) if pg.password_env else None
        self.team = TeamBus(
            pg.dsn, daemon_id=self.store.daemon_id, registry=self.registry, pipeline=self.pipeline, password=password
        )
        self.team.bot_nicks = self._bot_nicks
        await self.team.start()
        self.pipeline.team = self.team
        self.ws.team = self.team
        if self.approvals is not None:  # decisions reach the daemon holding the approval
            self.approvals.team = self.team
            self.team.approvals = self.approvals
        if self.relay is not None:  # one record per human IRC line for the team
            self.relay.records_line = self.team.records_line
            self.relay.team_bot = self.team.is_team_bot
        if self.runner is not None:  # sessions: listed, stopped and ended team-wide (team_sessions.py)
            self.team_sessions = TeamSessions(
                self.team, self.runner, self.store, self.registry, self.pipeline, self.approvals
            )
            self.team.sessions = self.team_sessions
            await self.team_sessions.start()
            if self.relay is not None:
                self.relay.team_sessions = self.team_sessions

    def _bot_nicks(self) -> list[str]:
        """This daemon's IRC bots' nicks: configured and current (the team
        tells its bots' lines from humans' by them)."""
        nicks = {network.nick for network in self.config.daemon.irc.networks}
        nicks.update(bot.nick for bot in self.bots)
        return sorted(nicks)
        log.info("one of a team: daemon_id=%s (presence and routing in PostgreSQL)", self.team.daemon_id)

    async def _start_irc(self) -> None:
        settings = self.config.daemon.irc
        assert self.relay is not None  # start() builds it before the transports
        if settings.server.enabled:
            side = EmbeddedSide(self.relay)
            home = IrcHome(settings.nick, tuple(settings.channels))  # MOTD hints, channel topics
            assert self.store is not None  # opened by start() before the transports
            history = ChannelHistory(self.store, self.registry, settings.nick)  # join playback, CHATHISTORY
            self.irc_server = IrcServer(settings.server, side, home=home, history=history)
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
        for irc_side in self.relay.sides:
            await irc_side.ensure_agent(settings.nick, list(settings.channels))

    def _beside_config(self, value: str) -> Path:
        """Relative paths in futon.yaml are relative to its folder."""
        return (self.config.base_dir / value).resolve()

    async def _count_response(self, _: web.Request, response: web.StreamResponse) -> None:
        self.metrics.http_status(response.status)

    def status_line(self) -> str:
        """One line for ``systemctl status`` (sd_notify ``STATUS=``)."""
        listening = [f"http :{self.ports['http']}"] if "http" in self.ports else []
        if "irc" in self.ports:
            listening.append(f"irc :{self.ports['irc']}")
        health = self.health()
        return (
            f"listening on {', '.join(listening) or 'nothing'}; {health['agents']} agents, "
            f"{health['connections']['ws']} ws and {health['connections']['irc']} irc connections"
        )

    def _write_ports(self) -> None:
        path = self._ports_file
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.ports) + "\n")
        os.replace(tmp, path)

    # ------------------------------------------------------------- reload

    async def reload(self) -> dict[str, Any]:
        """Re-read every config file and apply what changed (the module doc).

        Raises ``ConfigError`` (HTTP 400 ``invalid-config`` with the problem
        lines) when the files are invalid or would expose an open daemon;
        then nothing changed. Returns the plan: what was applied and what
        needs a restart. The service manager sees ``RELOADING=1`` and then
        ``READY=1`` either way."""
        if self.store is None or self.runner is None or self.services is None:
            raise FutonError("the daemon is not running", code="internal-error")
        async with self._reload_lock:
            self.notifier.reloading()
            status = "reload failed"
            try:
                try:
                    new = await asyncio.to_thread(load_config, self.config.path)
                    check_exposure(new)
                except ConfigError as exc:
                    self.metrics.reloads.inc(result="refused")
                    status = f"reload refused ({len(exc.problems)} problem(s)); the old config stays in force"
                    log.error("config reload refused; the old config stays in force: %s\n%s", exc.message, "\n".join(exc.problems))
                    raise
                plan = plan_reload(
                    started=self.started_config,
                    running=self.config,
                    new=new,
                    agents_in_force={r.id: r.spec for r in self.registry.all() if r.source == "config"},
                    peripherals_in_force={pid: p.spec for pid, p in self.runner.peripherals.items()},
                )
                await self._apply(plan)
                self.config = new
                self.metrics.reloads.inc(result="applied")
                log.info("config reloaded: %s", plan.summary())
                status = "reloaded: " + plan.summary()
                return plan.to_dict()
            finally:
                self.notifier.ready(f"{self.status_line()}; {status}")

    async def _apply(self, plan: ReloadPlan) -> None:
        """Apply a valid config in place: each part takes its new settings
        through its one ``apply_settings``. Connections stay; a running
        session keeps the peripheral object it started with (its envelope
        does not move under it); the next handshake, dispatch or
        peripheral_start sees the new config."""
        assert self.runner is not None and self.services is not None and self.pipeline is not None
        new = plan.new
        settings = new.daemon
        peripherals = load_peripherals(new.peripherals)  # build first: a failure changes nothing
        before = {r.id: r.spec for r in self.registry.all()}
        gone = [record for agent_id in plan.agents.removed if (record := self.registry.find(agent_id)) is not None]
        self.registry.apply_settings(new.agents, settings.ws.replay_window)  # records keep their links
        specs_before = self.runner.spec_sha256
        self.runner.apply_settings(settings.tools, peripherals)
        if self.runner.spec_sha256 != specs_before:
            await self.runner.record_specs()  # the version the next sessions run under (audit)
        if self.approvals is not None:
            self.approvals.apply_settings(new.agents.approvers, new.agents.approval_timeout_s)
        self.services.apply_settings(settings.http)
        self.pipeline.apply_settings(settings.dispatch)
        if self.ws is not None:
            self.ws.apply_settings(settings.ws)
        if "logging.level" in plan.settings:
            logging.getLogger().setLevel(settings.logging.level.upper())
        await self._apply_tickle(settings.tickle)
        for record in gone:  # an agent removed from agents.yaml is gone, like DELETE /api/alpha/agents/{id}
            if record.link is not None:
                await record.link.close(CLOSE_UNKNOWN_AGENT, "removed from agents.yaml")
        await self._sync_irc(before)

    def _watch_tickle(self, settings: TickleSection) -> None:
        """Tickle's watch runs as a background task while it is enabled."""
        if self.tickle is not None and settings.enabled and "tickle" not in self.tasks:
            self.tasks.start("tickle", self.tickle.run)
            log.info("tickle watching every %gs (stale after %gs)", settings.interval_s, settings.stale_after_s)

    async def _apply_tickle(self, settings: TickleSection) -> None:
        if self.tickle is None:
            return
        self.tickle.apply_settings(settings)
        if settings.enabled:
            self._watch_tickle(settings)
        else:
            await self.tasks.cancel("tickle")

    async def _sync_irc(self, before: dict[str, AgentSpec]) -> None:
        """Agents' IRC presence after a reload: a removed or renamed agent's
        virtual user quits, channels it left are parted, then every agent is
        shown in its channels (new agents, new channels)."""
        if self.relay is None:
            return
        server = self.irc_server
        if server is not None:
            for agent_id, spec in before.items():
                old_nick = spec.nick or spec.id
                record = self.registry.find(agent_id)
                with contextlib.suppress(FutonError):
                    if record is None or record.nick != old_nick:
                        await server.remove_virtual(old_nick, "removed by a config reload" if record is None else "renamed")
                        continue
                    kept = {irc_lower(c) for c in record.spec.channels}
                    for channel in spec.channels:
                        if irc_lower(channel) not in kept:
                            await server.virtual_part(old_nick, channel, "left by a config reload")
        await self.relay.show_agents()

    # ------------------------------------------------------------- replay windows

    @property
    def _replay_file(self) -> Path:
        return Path(self.config.data_dir) / "replay.json"

    def _save_replay(self) -> None:
        """Per-agent push seqs and replay windows survive a graceful restart
        (a crash loses only these windows, never evidence)."""
        try:
            tmp = self._replay_file.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(self.registry.snapshot(), ensure_ascii=False, default=str))
            os.replace(tmp, self._replay_file)
        except OSError as exc:
            log.warning("could not save the replay windows: %s", exc)

    def _load_replay(self) -> None:
        try:
            saved = json.loads(self._replay_file.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", self._replay_file.name, exc)
            return
        if isinstance(saved, dict):
            log.info("replay windows restored for %d agent(s)", self.registry.restore(saved))

    # ------------------------------------------------------------- stop

    async def stop(self) -> None:
        """Graceful shutdown in the order of the module doc, within
        :data:`STOP_TIMEOUT_S`: a step that overruns its share is abandoned
        (logged) and the next runs; the evidence store is always flushed and
        closed last. Safe to call twice and after a failed start."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT_S

        async def step(what: str, work: Awaitable[Any], cap: float = STOP_TIMEOUT_S) -> None:
            left = max(0.05, min(cap, deadline - loop.time()))
            try:
                await asyncio.wait_for(work, left)
            except TimeoutError:
                log.warning("shutdown: %s took longer than %.1fs; going on", what, left)
            except Exception:
                log.exception("shutdown: %s failed; going on", what)

        if self._web is not None:  # 1. stop accepting
            for site in list(self._web.sites):
                await step("closing the HTTP listener", site.stop(), 1)
        if self.irc_server is not None:
            await step("stopping the IRC server", self.irc_server.stop(), 2)
            self.irc_server = None
        await step("stopping background tasks", self.tasks.stop(1), 1.5)  # 2. background work
        for bot in self.bots:
            await step(f"disconnecting from {bot.network}", bot.stop(), 2)
        self.bots = []
        if self.runner is not None:  # 3. sessions end as "shutdown", not "connection-closed"
            await step("stopping peripherals", self.runner.stop_all("shutdown"), 4)
        if self.ws is not None:  # 4. agents: 1001 going away
            await step("closing WebSockets", self.ws.close_all(), 2)
        if self.team is not None:  # its agents may connect to another daemon at once
            await step("leaving the team", self.team.close(), 2)
            self.team = None
            self.team_sessions = None
        if self._web is not None:  # 5. in-flight HTTP, SSE streams end
            await step("finishing HTTP requests", self._web.cleanup(), HTTP_DRAIN_S + 1)
            self._web = None
        if self.runner is not None:  # sessions a late request may have started
            await step("stopping peripherals", self.runner.stop_all("shutdown"), 2)
            self.runner = None
        self._save_replay()  # agents resume across the restart
        if self.store is not None:  # 6. everything acknowledged is on disk
            if self._unsubscribe_metrics is not None:
                self._unsubscribe_metrics()
            await self.store.aclose()
            self.store = None
        if self.ports:  # only the daemon that wrote ports.json removes it
            self._ports_file.unlink(missing_ok=True)
            self.ports = {}
        log.info("stopped")


class _Gauges(LiveSource):
    """What /metrics reads from the daemon at scrape time."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def connections(self) -> dict[str, int]:
        return dict(self.daemon.health()["connections"])

    def ws_frames(self) -> dict[str, int]:
        hub = self.daemon.ws
        return {"in": hub.frames_in, "out": hub.frames_out} if hub else super().ws_frames()

    def agents(self) -> dict[str, int]:
        records = self.daemon.registry.all()
        return {"registered": len(records), "connected": sum(1 for r in records if r.connected)}

    def active_sessions(self) -> int:
        runner = self.daemon.runner
        return sum(1 for s in runner.sessions() if s.active) if runner else 0

    def evidence_entries(self) -> int:
        return self.daemon.store.last_seq if self.daemon.store else 0


async def serve(config: LoadedConfig) -> int:
    """Run until SIGINT or SIGTERM; reload on SIGHUP; return the exit code.

    The service manager (``$NOTIFY_SOCKET``) hears READY=1 once every
    transport listens, RELOADING=1 … READY=1 around each reload, WATCHDOG=1
    pings when it asked for them, and STOPPING=1 when shutdown begins."""
    notifier = Notifier.from_environment()
    daemon = Daemon(config, notifier=notifier)
    stop = asyncio.Event()
    hup = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, hup.set)  # before start: a HUP while starting is kept, not fatal
    try:
        await daemon.start()
        notifier.ready(daemon.status_line())
        daemon.tasks.start("watchdog", notifier.run_watchdog)
        daemon.tasks.start("reload-on-hup", lambda: _reload_on_hup(daemon, hup))
        await stop.wait()
        log.info("signal received; shutting down")
    finally:
        loop.add_signal_handler(signal.SIGHUP, lambda: log.info("SIGHUP ignored: shutting down"))
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        # Every background loop ends first, in one place: an interrupted
        # reload must not say READY after STOPPING.
        await daemon.tasks.stop()
        notifier.stopping()
        await daemon.stop()
        notifier.close()
        loop.remove_signal_handler(signal.SIGHUP)
    return 0


async def _reload_on_hup(daemon: Daemon, hup: asyncio.Event) -> None:
    """One reload per burst of SIGHUPs."""
    while True:
        await hup.wait()
        hup.clear()
        log.info("SIGHUP: reloading the configuration")
        try:
            await daemon.reload()
        except ConfigError:
            pass  # logged with its problem lines; the old config stays
        except Exception:
            log.exception("config reload failed")
