"""The shape of futon's three configuration files, as pydantic v2 models.

These models are the one definition of the configuration: validation, the
error messages of ``futon config validate`` and the defaults all come from
here. Every model forbids unknown keys, so a typo is an error that names the
key instead of a setting silently ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from futon.config.catalog import KNOWN_TOOLS, NAMED_SCOPES
from futon.config.command_patterns import parse_test_pattern
from futon.config.git_grammars import GRAMMARS as GIT_GRAMMARS


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Port = Annotated[int, Field(ge=0, le=65535)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
PositiveFloat = Annotated[float, Field(gt=0)]

# ---------------------------------------------------------------- futon.yaml


class FilesSection(Strict):
    """The other two files, relative to futon.yaml's folder."""

    peripherals: str = "peripherals.yaml"
    agents: str = "agents.yaml"


class HttpSection(Strict):
    host: str = "127.0.0.1"
    port: Port = 7070
    admin_token_sha256: Sha256Hex | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # A request's headers must be complete this long after its first byte
    # (or after the connection opened): slowloris cannot hold sockets.
    header_timeout_s: PositiveFloat = 10
    body_timeout_s: PositiveFloat = 30  # a request body must arrive within this (else 408)
    keepalive_timeout_s: PositiveFloat = 75  # an idle keep-alive connection is closed after this
    max_connections_per_ip: int = Field(default=256, ge=1)  # HTTP and WebSocket together


class WsSection(Strict):
    max_frame_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_frames_per_s: PositiveFloat = 50
    burst: int = Field(default=100, ge=1)
    replay_window: int = Field(default=1000, ge=0)
    heartbeat_s: PositiveFloat = 20
    ready_timeout_s: PositiveFloat = 10  # a socket without `ready` this long after the upgrade is closed (4001)
    # Text waiting for a peer that does not read; past it the peer is dropped
    # (it can reconnect and `resume`). One frame always fits, however large.
    max_outbound_bytes: int = Field(default=16 * 1024 * 1024, ge=64 * 1024)


class IrcServerSection(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 6667
    name: str = "futon.local"
    network: str = "futon"
    password: str | None = None
    motd: str | None = "Welcome to futon: humans and agents, one room."
    # The topic the daemon's channels (irc.channels) start with on the embedded server;
    # "{nick}" becomes the daemon's nick (irc.nick). null or "" = no topic.
    topic: str | None = "futon — humans and agents; say '{nick}: help'"
    ping_interval_s: PositiveFloat = 60
    ping_timeout_s: PositiveFloat = 180
    registration_timeout_s: PositiveFloat = 30  # NICK+USER (and PASS) must be done this long after connecting
    max_clients: int = Field(default=500, ge=1)
    max_clients_per_ip: int = Field(default=200, ge=1)
    # Lines of a channel's recent conversation (from its evidence thread) a client gets
    # when it joins; 0 = none. CHATHISTORY answers at most chathistory_max lines a request.
    history_lines: int = Field(default=20, ge=0, le=500)
    chathistory_max: int = Field(default=100, ge=1, le=1000)
    # Flood control, a token bucket per connection: flood_burst lines at once, then
    # flood_rate lines/s (the excess waits); more than flood_max_pending lines waiting
    # is ERROR :Excess Flood. Raise them for bots or benchmarks that talk fast.
    flood_burst: int = Field(default=20, ge=1)
    flood_rate: PositiveFloat = 2.0
    flood_max_pending: int = Field(default=100, ge=1)


class SaslSection(Strict):
    account: str
    password_env: str


class IrcNetwork(Strict):
    name: str
    host: str
    port: Port = 6667
    tls: bool = False
    tls_verify: bool = True
    nick: str = "futon"
    password: str | None = None
    sasl: SaslSection | None = None
    channels: list[str] = Field(default_factory=list)

    @field_validator("channels")
    @classmethod
    def _channels_start_with_hash(cls, value: list[str]) -> list[str]:
        for channel in value:
            if not channel.startswith("#"):
                raise ValueError(f"channel {channel!r} must start with '#'")
        return value


class IrcSection(Strict):
    nick: str = "futon"
    channels: list[str] = Field(default_factory=lambda: ["#futon"])
    server: IrcServerSection = Field(default_factory=IrcServerSection)
    networks: list[IrcNetwork] = Field(default_factory=list)


class EvidencePostgresSection(Strict):
    """Where the PostgreSQL evidence store lives (``evidence.backend: postgres``)."""

    # postgresql://user@host:port/database — no password here: see password_env.
    dsn: str = Field(min_length=1)
    # The environment variable holding the password (none: the DSN's own
    # authentication, e.g. peer, trust or ~/.pgpass).
    password_env: str | None = Field(default=None, min_length=1)


class EvidenceSection(Strict):
    # jsonl: shards in data_dir, one daemon; postgres: one store for a team of daemons.
    backend: Literal["jsonl", "postgres"] = "jsonl"
    postgres: EvidencePostgresSection | None = None
    fsync: Literal["always", "interval", "never"] = "interval"
    fsync_interval_ms: int = Field(default=100, ge=1)
    shard_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    shard_rollover: Literal["daily", "size"] = "daily"

    @model_validator(mode="after")
    def _postgres_needs_its_section(self) -> EvidenceSection:
        if self.backend == "postgres" and self.postgres is None:
            raise ValueError("evidence.backend is postgres but evidence.postgres (dsn) is not set")
        return self


class DispatchSection(Strict):
    reply_timeout_s: PositiveFloat = 30


class WebFetchSection(Strict):
    allow_private: bool = False
    max_bytes: int = Field(default=2 * 1024 * 1024, ge=1)
    timeout_s: PositiveFloat = 20


# Test-command patterns (see tools.test_commands in config/futon.yaml):
# whole-argv matches, never prefixes; {paths} = relative in-workspace paths.
DEFAULT_TEST_COMMANDS = [
    "pytest {paths}",
    "pytest -q {paths}",
    "python -m pytest {paths}",
    "python -m pytest -q {paths}",
    "python3 -m pytest {paths}",
    "python3 -m pytest -q {paths}",
    "make test",
    "npm test",
    "cargo test",
    "go test",
    "go test ./...",
    "clojure -X:test",
]
DEFAULT_GIT_SUBCOMMANDS = ["status", "diff", "log", "add", "commit", "push", "tag", "show"]


class ToolsSection(Strict):
    timeout_s: PositiveFloat = 30
    max_timeout_s: PositiveFloat = 600
    output_cap_bytes: int = Field(default=1024 * 1024, ge=1024)
    read_max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # Memory of all the processes of one tool call together (memory cgroup;
    # else RLIMIT_AS per process); also the size of the sandbox's private /tmp.
    memory_max_bytes: int = Field(default=2 * 1024**3, ge=64 * 1024 * 1024)
    test_commands: list[str] = Field(default_factory=lambda: list(DEFAULT_TEST_COMMANDS))
    git_subcommands: list[str] = Field(default_factory=lambda: list(DEFAULT_GIT_SUBCOMMANDS))

    @field_validator("test_commands")
    @classmethod
    def _test_commands_are_patterns(cls, value: list[str]) -> list[str]:
        for entry in value:
            parse_test_pattern(entry)  # ValueError names the entry
        return value

    @field_validator("git_subcommands")
    @classmethod
    def _git_subcommands_have_grammars(cls, value: list[str]) -> list[str]:
        # Each allowed subcommand needs an option table; without one its
        # options could not be checked.
        unknown = [sub for sub in value if sub not in GIT_GRAMMARS]
        if unknown:
            raise ValueError(
                f"no option table for git {', '.join(unknown)}; known: {', '.join(GIT_GRAMMARS)}"
            )
        return value

    deploy_commands: list[str] = Field(default_factory=list)
    web_fetch: WebFetchSection = Field(default_factory=WebFetchSection)


class TickleSection(Strict):
    enabled: bool = False
    interval_s: PositiveFloat = 60
    stale_after_s: PositiveFloat = 300
    escalate_to: list[str] = Field(default_factory=list)
    # Audit the sessions concluded since the last audit this often (issue 21);
    # 0 turns it off. Checked on each watch round (interval_s).
    audit_every_s: float = Field(default=3600, ge=0)


class DisciplineSection(Strict):
    patterns_dir: str = "patterns"


class MissionControlSection(Strict):
    repos: list[str] = Field(default_factory=list)


class LoggingSection(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


class DaemonConfig(Strict):
    """futon.yaml."""

    # null: $XDG_STATE_HOME/futon, else ~/.local/state/futon: outside any
    # workspace, so the file tools never reach evidence or state.
    data_dir: str | None = None
    workspace: str | None = None
    # This daemon's name in a team sharing one PostgreSQL evidence store
    # (recorded with each entry it appends); null: the host name.
    daemon_id: str | None = Field(default=None, min_length=1, max_length=256)
    files: FilesSection = Field(default_factory=FilesSection)
    http: HttpSection = Field(default_factory=HttpSection)
    ws: WsSection = Field(default_factory=WsSection)
    irc: IrcSection = Field(default_factory=IrcSection)
    evidence: EvidenceSection = Field(default_factory=EvidenceSection)
    dispatch: DispatchSection = Field(default_factory=DispatchSection)
    tools: ToolsSection = Field(default_factory=ToolsSection)
    tickle: TickleSection = Field(default_factory=TickleSection)
    discipline: DisciplineSection = Field(default_factory=DisciplineSection)
    mission_control: MissionControlSection = Field(default_factory=MissionControlSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)


# ----------------------------------------------------------- peripherals.yaml

_CONDITION = re.compile(r"^[a-z][a-z0-9-]*$")


class PathsScope(Strict):
    """A scope limited to path prefixes inside the workspace."""

    paths: list[str] = Field(min_length=1)

    @field_validator("paths")
    @classmethod
    def _relative_prefixes(cls, value: list[str]) -> list[str]:
        for prefix in value:
            if prefix.startswith("/") or ".." in prefix.split("/"):
                raise ValueError(f"path prefix {prefix!r} must be relative and stay inside the workspace")
        return value


class SandboxSpec(Strict):
    """What the sandbox of a peripheral's processes may see beyond the
    scope. Every process a tool starts runs with an empty environment, no
    network and only the system directories and the workspace visible;
    these keys widen that, per peripheral, on purpose."""

    network: bool = False  # true = the processes share the host network (deploy's push)
    read_only: list[str] = Field(default_factory=list)  # extra folders visible read-only (a toolchain, a venv)
    env: dict[str, str] = Field(default_factory=dict)  # variables the processes get (besides PATH, HOME, LANG)

    @field_validator("read_only")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        # Relative to what? A folder the sandbox shows must be named exactly.
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"sandbox.read_only entry {path!r} must be an absolute path")
        return value

    @field_validator("env")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or "=" in name or "\0" in name or "\0" in text:
                raise ValueError(f"sandbox.env name {name!r} is not a valid environment variable")
        return value


class PeripheralSpec(Strict):
    """One capability envelope. ``tools`` and named scopes are checked
    against the tool catalog, so a typo cannot silently widen or empty an
    envelope."""

    description: str | None = None
    tools: list[str] = Field(default_factory=list)
    scope: str | PathsScope
    read_only: bool = False
    entry: list[str] = Field(min_length=1)
    exit: list[str] = Field(min_length=1)
    context: list[str] = Field(default_factory=lambda: ["session-id"])
    config: dict[str, Any] = Field(default_factory=dict)
    sandbox: SandboxSpec = Field(default_factory=SandboxSpec)
    # Humans in the loop (issue 17): entering this peripheral (start or hop)
    # waits for an approver's decision; each call of a tool in ``ask`` does.
    approval: Literal["none", "human"] = "none"
    ask: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ask_names_own_tools(self) -> PeripheralSpec:
        stray = [t for t in self.ask if t not in self.tools]
        if stray:
            raise ValueError(f"ask lists {', '.join(stray)}, which this peripheral's tools do not include")
        return self

    @field_validator("tools")
    @classmethod
    def _known_tools(cls, value: list[str]) -> list[str]:
        unknown = [t for t in value if t not in KNOWN_TOOLS]
        if unknown:
            raise ValueError(f"unknown tool(s) {', '.join(unknown)}; known tools: {', '.join(sorted(KNOWN_TOOLS))}")
        if len(set(value)) != len(value):
            raise ValueError("a tool is listed twice")
        return value

    @field_validator("scope")
    @classmethod
    def _known_scope(cls, value: str | PathsScope) -> str | PathsScope:
        if isinstance(value, str) and value not in NAMED_SCOPES:
            raise ValueError(
                f"unknown scope {value!r}; expected one of {', '.join(sorted(NAMED_SCOPES))} or {{paths: [...]}}"
            )
        return value

    @model_validator(mode="after")
    def _read_only_cannot_write(self) -> PeripheralSpec:
        writers = sorted({"edit", "write"} & set(self.tools))
        if self.read_only and writers:
            raise ValueError(f"read_only is true, so {' and '.join(writers)} could never run here: remove it")
        return self

    @field_validator("entry", "exit", "context")
    @classmethod
    def _kebab_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _CONDITION.match(name):
                raise ValueError(f"{name!r} is not a kebab-case condition name")
        return value


class PeripheralsFile(Strict):
    """peripherals.yaml."""

    peripherals: dict[str, PeripheralSpec]

    @field_validator("peripherals")
    @classmethod
    def _ids(cls, value: dict[str, PeripheralSpec]) -> dict[str, PeripheralSpec]:
        for pid in value:
            if not _CONDITION.match(pid):
                raise ValueError(f"peripheral id {pid!r} must be kebab-case")
        return value


# ---------------------------------------------------------------- agents.yaml

_AGENT_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_\-\[\]\\`^{}|]{0,29}$")


class AgentSpec(Strict):
    id: str
    type: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    token_sha256: Sha256Hex | None = None
    nick: str | None = None
    channels: list[str] = Field(default_factory=lambda: ["#futon"])
    relay: Literal["mentions", "all"] = "mentions"
    workspace: str | None = None
    peripherals: list[str] | None = None
    # notice: the agent runtime posts one short NOTICE line per step while it works
    progress: Literal["off", "notice"] = "off"

    @field_validator("id", "nick")
    @classmethod
    def _irc_safe(cls, value: str | None) -> str | None:
        if value is not None and not _AGENT_ID.match(value):
            raise ValueError(
                f"{value!r} must be usable as an IRC nick: a letter, then letters, digits or -_[]\\`^{{}}|, at most 30"
            )
        return value

    @field_validator("channels")
    @classmethod
    def _channels_start_with_hash(cls, value: list[str]) -> list[str]:
        for channel in value:
            if not channel.startswith("#"):
                raise ValueError(f"channel {channel!r} must start with '#'")
        return value


class AccessRule(Strict):
    nicks: list[str] = Field(min_length=1)
    agents: list[str] = Field(min_length=1)
    allow: bool


class IrcAccess(Strict):
    default: Literal["allow", "deny"] = "allow"
    rules: list[AccessRule] = Field(default_factory=list)


class AgentsFile(Strict):
    """agents.yaml."""

    agents: list[AgentSpec] = Field(default_factory=list)
    routing: dict[str, str] = Field(default_factory=lambda: {"default": "explore"})
    irc_access: IrcAccess = Field(default_factory=IrcAccess)
    # Who may approve or deny (issue 17): IRC nicks, or services accounts in
    # bot mode; the HTTP admin token always may.
    approvers: list[str] = Field(default_factory=list)
    approval_timeout_s: float = Field(default=300, gt=0, le=86_400)

    @model_validator(mode="after")
    def _unique_ids(self) -> AgentsFile:
        seen: set[str] = set()
        for agent in self.agents:
            if agent.id in seen:
                raise ValueError(f"agent id {agent.id!r} appears twice")
            seen.add(agent.id)
        if "default" not in self.routing:
            raise ValueError("routing needs a 'default' entry")
        return self
