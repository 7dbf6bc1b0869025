"""The relay between humans in IRC and agents (docs/irc.md, "The relay").

Both IRC transports (the embedded server, bot mode) report what humans say
through :class:`RelayHooks`; the relay records it in the channel's thread,
answers the daemon's own commands, applies the access rules and pushes
``irc_message`` frames to the agents that should hear it — through the same
per-agent pushes (seq, replay window) as everything else. What agents (and
the daemon) say goes out through the one chat path,
:class:`futon.social.chat.Chat`, which the relay shares: the IRC sides, the
thread rule and the push shape live there.

Identity: an agent's id and nick (and the daemon's nick) are reserved on the
embedded server (:meth:`IrcRelay.nick_reserved`); when an agent appears at
run time its virtual user takes the nick at once, renaming a human who held
it. What a transport reports through the hooks is always a human's line, so
it is never recorded with an agent as its author: a human whose nick is an
agent's (bot-mode networks, or the moment before the rename) is recorded as
``irc:<nick>`` (a colon no agent id may contain).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from futon import __version__
from futon.config.models import IrcAccess
from futon.evidence.store import EvidenceStore
from futon.peripherals.runner import PeripheralRunner
from futon.protocol import frames as f
from futon.protocol.errors import FutonError
from futon.protocol.irc_lines import irc_lower
from futon.social.approvals import Approvals
from futon.social.chat import Chat, mentions
from futon.social.irc_api import IrcSide, PresenceSide
from futon.social.pipeline import Inbound, Pipeline
from futon.social.registry import AgentRecord, AgentRegistry
from futon.social.team_sessions import TeamSessions

log = logging.getLogger("futon.relay")

COMMANDS = ("agents", "status", "standup", "help", "approve", "deny", "stop")
__all__ = ["COMMANDS", "IrcRelay", "allowed", "mentions"]
OFFLINE_AWAY = "not connected: messages wait for it"
MAX_TOLD_OFFLINE = 1000  # (sender, agent) pairs told an agent is offline, until it connects


def allowed(access: IrcAccess, sender: str, agent_id: str, account: str | None = None) -> bool:
    """First matching rule decides; else the default. ``*`` matches all."""
    who = {irc_lower(sender)} | ({irc_lower(account)} if account else set())
    for rule in access.rules:
        nicks = {irc_lower(n) for n in rule.nicks}
        if ("*" in nicks or who & nicks) and ("*" in rule.agents or agent_id in rule.agents):
            return rule.allow
    return access.default == "allow"


class IrcRelay:
    def __init__(
        self,
        registry: AgentRegistry,
        pipeline: Pipeline,
        store: EvidenceStore,
        runner: PeripheralRunner,
        *,
        daemon_nick: str = "futon",
        standup_timeout_s: float = 10,
        chat: Chat | None = None,
    ) -> None:
        self.registry = registry
        self.pipeline = pipeline
        self.store = store
        self.runner = runner
        self.daemon_nick = daemon_nick
        self.standup_timeout_s = standup_timeout_s
        # The daemon passes the Chat every caller shares; a relay built alone gets its own.
        self.chat = chat or Chat(registry, pipeline, store, daemon_nick=daemon_nick)
        self.tickle: Any = None  # set by the daemon: while Tickle is enabled, standup adds its review
        self.approvals: Approvals | None = None  # set by the daemon: approve/deny/stop (issue 17)
        # Set by the daemon when it is one of a team (issue 20, TeamBus.records_line):
        # (network, sender, channel, text, agents named) → whether this daemon records the line.
        self.records_line: Callable[[str, str, str, str, list[str]], Awaitable[bool]] | None = None
        # ... and whether a nick is another daemon's bot: its lines are agents' lines, recorded
        # and pushed by that daemon, never a human's.
        self.team_bot: Callable[[str], bool] | None = None
        # ... and the team's sessions: `stop AGENT` reaches a session on another daemon.
        self.team_sessions: TeamSessions | None = None
        self._told: set[tuple[str, str]] = set()  # (sender, agent) told once about access
        # (sender, agent) told the agent is offline: once per absence (cleared when it connects)
        self._told_offline: set[tuple[str, str]] = set()
        self._showing: set[asyncio.Task[None]] = set()  # one per agent added at run time
        registry.on_added(self._agent_added)
        registry.on_presence(self._presence)

    @property
    def sides(self) -> list[IrcSide]:
        """The IRC sides (they live in the chat service, which speaks on them)."""
        return self.chat.sides

    def attach(self, side: IrcSide) -> None:
        self.chat.attach(side)

    def nick_reserved(self, nick: str) -> bool:
        """``nick`` is an agent's id or nick, or the daemon's: no human may hold it."""
        lowered = irc_lower(nick)
        if lowered == irc_lower(self.daemon_nick):
            return True
        return self.registry.owner_of_nick(nick) is not None

    def _human_author(self, nick: str) -> str:
        """The evidence author of a human's line: the nick, unless it is
        reserved — then a name no agent can have."""
        return f"irc:{nick}" if self.nick_reserved(nick) else nick

    def _agent_added(self, record: AgentRecord) -> None:
        """Registry callback (an agent registered at run time): show it now,
        which also takes its nick from a human who holds it. Agents a reload
        adds are shown by the reload (``show_agents``), which does the same."""
        if not self.sides:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._show(record))
        except RuntimeError:  # no loop (a registry used outside the daemon): show_agents will
            return
        self._showing.add(task)
        task.add_done_callback(self._showing.discard)

    async def _show(self, record: AgentRecord) -> None:
        for side in self.sides:
            await side.ensure_agent(record.nick, list(record.spec.channels))
            self._show_presence(side, record)

    async def show_agents(self) -> None:
        """Make every agent visible in its channels on every side (away
        while it is not connected)."""
        for side in self.sides:
            for record in self.registry.all():
                await side.ensure_agent(record.nick, list(record.spec.channels))
                self._show_presence(side, record)

    def _presence(self, record: AgentRecord) -> None:
        """Registry callback: an agent connected or went; IRC shows it."""
        if record.connected:
            self._told_offline = {t for t in self._told_offline if t[1] != record.id}
        for side in self.sides:
            self._show_presence(side, record)

    @staticmethod
    def _show_presence(side: IrcSide, record: AgentRecord) -> None:
        if isinstance(side, PresenceSide):
            side.set_away(record.nick, None if record.connected else OFFLINE_AWAY)

    # ------------------------------------------------------------- from IRC

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
        if self.team_bot is not None and side.network != "embedded" and self.team_bot(sender):
            return  # another daemon's bot speaking for its agents: that daemon recorded and pushed it
        author = self._human_author(sender)  # a transport reports humans only
        entry_id: str | None = None
        recorded = await self._records(side, sender, target, text, private=private)
        if recorded:
            entry_id = await self.chat.record(
                author, target, text, transport="irc", network=side.network,
                private_with=sender if private else None, notice=notice,
            )  # fmt: skip
        if notice:
            return  # IRC convention: nobody answers a NOTICE automatically
        if private:
            agent = self.registry.by_nick(target)
            if agent is not None:
                await self._deliver(side, sender, agent, None, text, account, entry_id)
            return
        if self._addressed_to_daemon(text):
            if recorded:  # a team's bots all hear it: the daemon that records it answers, once
                await self._command(side, sender, target, text, account)
            return
        for agent in self.registry.in_channel(target):
            if irc_lower(agent.nick) == irc_lower(sender):
                continue
            if agent.spec.relay == "mentions" and not mentions(text, agent.nick):
                continue
            await self._deliver(side, sender, agent, target, text, account, entry_id)

    async def _records(self, side: IrcSide, sender: str, target: str, text: str, *, private: bool) -> bool:
        """Whether this daemon records a human's line: always, but for a
        channel line a team's bots all hear (bot mode, ``records_line``):
        then one daemon of the team does."""
        if self.records_line is None or private or side.network == "embedded":
            return True
        named = [a.id for a in self.registry.in_channel(target) if mentions(text, a.nick)]
        return await self.records_line(side.network, sender, target, text, named)

    async def on_event(self, side: IrcSide, kind: str, detail: str) -> None:
        log.info("irc %s: %s %s", side.network, kind, detail)
        await self._append(
            {
                "subject": {"ref/type": "component", "ref/id": f"irc/{side.network}"},
                "type": "presence-event",
                "claim-type": "observation",
                "author": self.daemon_nick,
                "tags": ["irc", kind],
                "body": {"network": side.network, "event": kind, "detail": detail},
            }
        )

    async def _deliver(
        self, side: IrcSide, sender: str, agent: AgentRecord, channel: str | None, text: str, account: str | None,
        entry_id: str | None = None,
    ) -> None:
        if not allowed(self.registry.access, sender, agent.id, account):
            if (irc_lower(sender), agent.id) not in self._told:
                self._told.add((irc_lower(sender), agent.id))
                await side.say(self.daemon_nick, sender, f"{sender}: messages from you are not relayed to {agent.nick} (irc_access)", notice=True)
            return
        private = True if channel is None else None  # the key is absent on channel lines
        frame = f.IrcMessage.model_validate(
            {"channel": channel, "from": sender, "text": text, "private": private, "evidence_id": entry_id, "seq": 0}
        )
        sent = await self.chat.push(agent, frame)  # seq=0: the registry stamps the agent's next one
        addressed = channel is None or mentions(text, agent.nick)  # not a relay: all line
        if not sent and not agent.connected and addressed:
            await self._tell_offline(side, sender, agent)

    async def _tell_offline(self, side: IrcSide, sender: str, agent: AgentRecord) -> None:
        """A NOTICE from the daemon to a human whose line waits for an
        offline agent: once per sender and absence, recorded like every
        line the daemon says."""
        key = (irc_lower(sender), agent.id)
        if key in self._told_offline:
            return
        if len(self._told_offline) >= MAX_TOLD_OFFLINE:
            self._told_offline.clear()  # bounded: at worst someone is told twice
        self._told_offline.add(key)
        text = f"{agent.nick} is offline; it will get your message when it connects."
        try:
            await self.chat.say(self.daemon_nick, sender, text, transport="daemon", via=side, notice=True)
        except FutonError as exc:
            log.info("could not tell %s that %s is offline: %s", sender, agent.id, exc)

    # ------------------------------------------------------------- commands

    def _addressed_to_daemon(self, text: str) -> bool:
        nick = re.escape(irc_lower(self.daemon_nick))  # rfc1459: FUTON[1] is futon{1}
        return bool(re.match(rf"^\s*{nick}\s*[:,]", irc_lower(text)))

    async def _command(self, side: IrcSide, sender: str, channel: str, text: str, account: str | None = None) -> None:
        words = text.split(None, 2)
        command = words[1].lower() if len(words) > 1 else "help"
        if command in ("approve", "deny", "stop"):
            rest = words[2] if len(words) > 2 else ""
            await self._answer(side, channel, await self._human_in_the_loop(command, sender, rest, account))
            return
        if command == "agents":
            parts = []
            for agent in await self._agents():
                state = "online" if agent.get("connected") else "offline"
                daemon = agent.get("daemon")
                on = f" on {daemon}" if daemon and self.team_sessions is not None else ""
                where = f", in {agent['peripheral_id']}" if agent.get("peripheral_id") else ""
                parts.append(f"{agent.get('nick') or agent['agent_id']} ({state}{on}{where})")
            answer = "agents: " + ("; ".join(parts) or "none")
        elif command == "status":
            agents = await self._agents()
            online = sum(1 for a in agents if a.get("connected"))
            active = sum(1 for s in self.runner.sessions() if s.active)
            here = " here" if self.team_sessions is not None else ""
            answer = f"futon {__version__}: {online}/{len(agents)} agents online, {active} active sessions{here}, evidence seq {self.store.last_seq}"
        elif command == "standup":
            await self._standup(side, sender, channel)
            return
        else:
            answer = f"commands: {', '.join(COMMANDS)} — e.g. '{self.daemon_nick}: agents'"
        await self._answer(side, channel, answer)

    async def _agents(self) -> list[dict[str, Any]]:
        """Every agent as ``GET /api/alpha/agents`` lists it (with ``nick``):
        in a team, the team's, each with the daemon it is connected to."""
        listed = [{**r.describe(), "nick": r.nick} for r in self.registry.all()]
        if self.team_sessions is None:
            return listed
        return await self.team_sessions.agents(listed)

    async def _human_in_the_loop(self, command: str, sender: str, rest: str, account: str | None) -> str:
        """``approve ID``, ``deny ID [reason]``, ``stop AGENT`` (issue 17):
        the answer to post; every refusal is a plain sentence with its code."""
        approvals = self.approvals
        if approvals is None:
            return f"{sender}: approvals are not enabled here"
        target, _, reason = rest.strip().partition(" ")
        if not target:
            usage = "stop AGENT" if command == "stop" else f"{command} ID" + (" [reason]" if command == "deny" else "")
            return f"{sender}: usage: {self.daemon_nick}: {usage}"
        try:
            if command == "stop":
                return await self._stop_agent(approvals, sender, target, account)
            decided = await approvals.decide(
                target, command, self._human_author(sender), reason.strip(), account=account
            )
        except FutonError as exc:
            return f"{sender}: {exc.message} ({exc.code})"
        return f"approval {decided['approval_id']} {decided['outcome']} by {sender}: {decided['what']}"

    async def _stop_agent(self, approvals: Approvals, sender: str, name: str, account: str | None) -> str:
        agent = self.registry.find(name) or self.registry.owner_of_nick(name)
        running = [s for s in self.runner.sessions(agent.id) if s.active] if agent is not None else []
        if not running and self.team_sessions is not None:  # on another daemon: every check made there
            elsewhere = await self.team_sessions.stop_agent(agent.id if agent else name, sender, account)
            if elsewhere is not None:
                if not elsewhere.session_ids:
                    return f"{sender}: {elsewhere.nick} has no running session"
                return f"{elsewhere.nick} interrupted by {sender} ({', '.join(elsewhere.session_ids)})"
        if not approvals.is_approver(sender, account):
            return f"{sender}: only approvers may stop an agent (not-an-approver)"
        if agent is None:
            return f"{sender}: no agent {name!r} (agent-not-found)"
        if not running:
            return f"{sender}: {agent.nick} has no running session"
        for session in running:
            await self.runner.interrupt(session.id)
            await self._notify_interrupted(agent, session.id, sender)
        return f"{agent.nick} interrupted by {sender} ({', '.join(s.id for s in running)})"

    async def _notify_interrupted(self, agent: AgentRecord, session_id: str, by: str) -> None:
        """Tell the agent its session was interrupted (it ends its turn)."""
        try:
            await self.pipeline.push(agent, f.Interrupted(session_id=session_id, by=by))
        except (FutonError, ConnectionError) as exc:
            log.info("could not tell %s it was interrupted: %s", agent.id, exc)

    async def _answer(self, side: IrcSide, channel: str, text: str) -> None:
        """The daemon's own line, in its own nick, where the question was
        asked (``side``), and into the channel's thread. Meant for the human
        who asked: no agent is pushed it."""
        try:
            await self.chat.say(
                self.daemon_nick, channel, text, transport="daemon", via=side, reach="nobody"
            )
        except FutonError as exc:
            log.warning("could not answer in %s on %s: %s", channel, side.network, exc)

    async def _standup(self, side: IrcSide, sender: str, channel: str) -> None:
        """Ring the standup bell: every connected agent in the channel is
        asked for a status line; answers are posted as they come, each in
        its agent's nick. An agent that does not answer is reported by the
        daemon in its own nick — the daemon never speaks as an agent."""
        agents = [a for a in self.registry.in_channel(channel) if a.connected]
        asking = f": {', '.join(a.nick for a in agents)}" if agents else ""
        await self._answer(side, channel, f"standup: asking {len(agents)} agent(s){asking}")

        async def ask(agent: AgentRecord) -> None:
            try:
                receipt = await self.pipeline.dispatch(
                    Inbound(msg_id=f"standup-{agent.id}-{id(self)}-{asyncio.get_running_loop().time()}", sender=self._human_author(sender),
                            to=agent.id, payload={"type": "standup", "channel": channel}, transport="irc", sender_type="human"),
                    reply_timeout_s=self.standup_timeout_s,
                )  # fmt: skip
            except FutonError as exc:
                await self._answer(side, channel, f"{agent.nick}: could not ask ({exc.code})")
                return
            reply = receipt.reply
            line = reply if isinstance(reply, str) else (reply.get("text") if isinstance(reply, dict) else None)
            if not isinstance(line, str) or not line.strip():
                await self._answer(side, channel, f"(no answer from {agent.nick})")
                return
            try:  # the agent's own words: from its nick, recorded as its line
                await self.chat.say(
                    agent.id, channel, line, transport="standup", via=side, reach="nobody"
                )
            except FutonError as exc:
                log.warning("could not post %s's standup in %s: %s", agent.id, channel, exc)

        await asyncio.gather(*(ask(agent) for agent in agents))
        if self.tickle is not None and self.tickle.enabled:
            try:
                await self.tickle.standup(channel)
            except FutonError as exc:
                failed = f"standup review failed ({exc.code}: {exc.message})"
                await self._answer(side, channel, failed)

    # ------------------------------------------------------------- evidence

    async def _append(self, entry: dict[str, Any]) -> None:
        try:
            await self.store.append(entry)
        except FutonError as exc:
            log.error("could not record IRC line: %s", exc)
