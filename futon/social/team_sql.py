"""The SQL of the team bus (:mod:`futon.social.team`), in one place.

Two tables beside the evidence store's, in the same database:

- ``futon_team_presence``: which daemon each connected agent is on. A row is
  written when the agent connects (taking it over from any other daemon),
  deleted when it leaves, and its ``heartbeat_at`` refreshed by its daemon
  every heartbeat. A row whose heartbeat is older than the window belongs
  to a dead daemon: it counts as absent.
- ``futon_team_daemons``: each live daemon and its last heartbeat (a
  daemon with no agent connected is still one of the team).
- ``futon_team_approvals``: every approval a daemon of the team opened, so
  a decision sent to any daemon reaches the one whose session waits, and
  ``GET /api/alpha/approvals`` lists the team's. Its ``outcome`` is set when
  it is decided (a late second decision is still routed to its daemon,
  which answers why); rows go after :data:`KEEP_APPROVALS_S`.
- ``futon_team_irc_lines``: one row per human IRC line heard by the
  team's bots, claimed by the first daemon to record it (the others see
  the conflict and do not record it again).
- ``futon_team_mail``: frames for another daemon (a dispatch to run, a push
  to deliver, the answer to one). A sender inserts a row and NOTIFYs the
  receiver's channel in the same statement; the receiver deletes what is
  addressed to it (so a row is handled once) and sweeps again every
  heartbeat, so a notification lost with a dropped connection is only late.
  A dispatch or an answer that fits a NOTIFY payload skips the table: the
  notification carries it (team.py says what that trades).

Mail is not evidence: the statements that write it commit asynchronously
(``set_config('synchronous_commit', 'off', true)``, for that statement's
transaction only), so a frame for another daemon costs no WAL flush. What a
database crash can do to that: lose mail committed in its last moments (its
caller ends ``agent-unreachable`` at its timeout) or bring back a row taken
just before (handled again at the next sweep: a push seen twice, a decision
refused as already made).
"""

from __future__ import annotations

import hashlib

# Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog:
# daemons starting together take this lock first (a number of our own).
SCHEMA_LOCK = 0x7E4D_0020

LOCK_SCHEMA = "SELECT pg_advisory_xact_lock($1)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS futon_team_presence (
    agent_id     text PRIMARY KEY,
    daemon_id    text NOT NULL,
    connected_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS futon_team_presence_daemon ON futon_team_presence (daemon_id);
CREATE TABLE IF NOT EXISTS futon_team_mail (
    id          bigserial PRIMARY KEY,
    to_daemon   text NOT NULL,
    from_daemon text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    body        jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS futon_team_mail_to ON futon_team_mail (to_daemon, id);
CREATE TABLE IF NOT EXISTS futon_team_daemons (
    daemon_id    text PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    bot_nicks    text[] NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS futon_team_approvals (
    approval_id text PRIMARY KEY,
    daemon_id   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    outcome     text,
    shape       jsonb NOT NULL
);
CREATE TABLE IF NOT EXISTS futon_team_irc_lines (
    key        text PRIMARY KEY,
    daemon_id  text NOT NULL,
    heard_at   timestamptz NOT NULL DEFAULT now()
);
"""

KEEP_APPROVALS_S = 86400.0  # a decided (or dead daemon's) approval row is kept this long

# This daemon is alive (at start and every heartbeat); $2: its IRC bots' nicks.
ALIVE = """
INSERT INTO futon_team_daemons (daemon_id, heartbeat_at, bot_nicks) VALUES ($1, now(), $2::text[])
ON CONFLICT (daemon_id) DO UPDATE SET heartbeat_at = now(), bot_nicks = $2::text[]
"""

# The bot nicks of the other live daemons ($1 this daemon, $2 the window).
TEAM_BOTS = """
SELECT DISTINCT unnest(bot_nicks) FROM futon_team_daemons
WHERE daemon_id <> $1 AND heartbeat_at > now() - make_interval(secs => $2)
"""

GONE = "DELETE FROM futon_team_daemons WHERE daemon_id = $1"

# ($1 approval id, $2 daemon, $3 public shape, $4 seconds to expiry) → a row
# when the id was free in the team; none when another approval holds it.
OPEN_APPROVAL = """
INSERT INTO futon_team_approvals (approval_id, daemon_id, expires_at, shape)
VALUES ($1, $2, now() + make_interval(secs => $4), $3::jsonb)
ON CONFLICT (approval_id) DO NOTHING
RETURNING approval_id
"""

DESCRIBE_APPROVAL = """
UPDATE futon_team_approvals SET shape = $3::jsonb WHERE approval_id = $1 AND daemon_id = $2
"""

CLOSE_APPROVAL = """
UPDATE futon_team_approvals SET outcome = $3 WHERE approval_id = $1 AND daemon_id = $2
"""

# The live daemon that opened approval $1 ($2: the heartbeat window).
APPROVAL_DAEMON = """
SELECT a.daemon_id FROM futon_team_approvals a JOIN futon_team_daemons d USING (daemon_id)
WHERE a.approval_id = $1 AND d.heartbeat_at > now() - make_interval(secs => $2)
"""

# Pending approvals of the other live daemons ($1 this daemon, $2 the window).
APPROVALS_ELSEWHERE = """
SELECT a.daemon_id, a.shape::text AS shape,
       greatest(0, extract(epoch FROM a.expires_at - now()))::float8 AS expires_in_s
FROM futon_team_approvals a JOIN futon_team_daemons d USING (daemon_id)
WHERE a.outcome IS NULL AND a.daemon_id <> $1 AND a.expires_at > now()
    AND d.heartbeat_at > now() - make_interval(secs => $2)
ORDER BY a.created_at
"""

# ($1 key, $2 daemon, $3 window s) → a row when this daemon is the first to
# claim the line in the window (it records it); none when another did.
CLAIM_LINE = """
INSERT INTO futon_team_irc_lines AS l (key, daemon_id, heard_at) VALUES ($1, $2, now())
ON CONFLICT (key) DO UPDATE SET daemon_id = $2, heard_at = now()
    WHERE l.heard_at < now() - make_interval(secs => $3)
RETURNING key
"""

# Old rows ($1: keep this long; $2: the window of a live daemon).
EXPIRE_APPROVALS = """
DELETE FROM futon_team_approvals a WHERE a.created_at < now() - make_interval(secs => $1)
    AND (a.outcome IS NOT NULL OR NOT EXISTS (
        SELECT 1 FROM futon_team_daemons d
        WHERE d.daemon_id = a.daemon_id AND d.heartbeat_at > now() - make_interval(secs => $2)))
"""
EXPIRE_LINES = "DELETE FROM futon_team_irc_lines WHERE heard_at < now() - make_interval(secs => $1)"

# (agent_id, daemon_id) → the daemon that held the agent before (NULL: none).
# The subquery in RETURNING reads the statement's snapshot: the row as it was.
CONNECT = """
INSERT INTO futon_team_presence AS p (agent_id, daemon_id, connected_at, heartbeat_at)
VALUES ($1, $2, now(), now())
ON CONFLICT (agent_id) DO UPDATE
    SET daemon_id = excluded.daemon_id, connected_at = now(), heartbeat_at = now()
RETURNING (SELECT o.daemon_id FROM futon_team_presence o WHERE o.agent_id = $1)
"""

DISCONNECT = "DELETE FROM futon_team_presence WHERE agent_id = $1 AND daemon_id = $2"

# Refresh this daemon's rows; write the rows of its connected agents that
# are missing or a dead daemon's ($3: the window), without taking an agent
# another live daemon holds now.
HEARTBEAT = """
INSERT INTO futon_team_presence AS p (agent_id, daemon_id, connected_at, heartbeat_at)
SELECT a, $1, now(), now() FROM unnest($2::text[]) AS a
ON CONFLICT (agent_id) DO UPDATE SET daemon_id = $1, heartbeat_at = now()
    WHERE p.daemon_id = $1 OR p.heartbeat_at <= now() - make_interval(secs => $3)
"""

# Rows of this daemon for agents it no longer holds (a lost DISCONNECT).
FORGET = """
DELETE FROM futon_team_presence WHERE daemon_id = $1 AND NOT (agent_id = ANY($2::text[]))
"""

# Agents connected here whose row names another daemon: taken over there
# (a supersede mail lost, or two connections at the same instant).
TAKEN = """
SELECT agent_id, daemon_id FROM futon_team_presence
WHERE agent_id = ANY($2::text[]) AND daemon_id <> $1
    AND heartbeat_at > now() - make_interval(secs => $3)
"""

OWNER = """
SELECT daemon_id FROM futon_team_presence
WHERE agent_id = $1 AND heartbeat_at > now() - make_interval(secs => $2)
"""

# The live daemons of agents $1 ($2: the window) that have IRC bots (and so
# hear the line: a daemon without one must not be left to record it).
OWNERS = """
SELECT p.daemon_id FROM futon_team_presence p JOIN futon_team_daemons d USING (daemon_id)
WHERE p.agent_id = ANY($1::text[]) AND p.heartbeat_at > now() - make_interval(secs => $2)
    AND cardinality(d.bot_nicks) > 0
"""

LIVE = """
SELECT agent_id, daemon_id, connected_at, heartbeat_at FROM futon_team_presence
WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY agent_id
"""

SEND = """
WITH m AS (
    INSERT INTO futon_team_mail (to_daemon, from_daemon, body) VALUES ($1, $2, $3::jsonb)
    RETURNING id
)
SELECT pg_notify($4, (SELECT id::text FROM m)), set_config('synchronous_commit', 'off', true)
"""

# A small dispatch or answer, carried by the notification itself (no row).
NOTIFY = "SELECT pg_notify($1, $2), set_config('synchronous_commit', 'off', true)"

# set_config in RETURNING: evaluated when rows go, i.e. when there is a commit to make.
TAKE = """
DELETE FROM futon_team_mail WHERE id IN (
    SELECT id FROM futon_team_mail WHERE to_daemon = $1 ORDER BY id LIMIT $2
)
RETURNING id, from_daemon, body::text, set_config('synchronous_commit', 'off', true)
"""

# At start: what a previous life of this daemon left (its presence rows are
# stale: its sockets died with it; its mail was for callers long gone).
RESET = [
    "DELETE FROM futon_team_presence WHERE daemon_id = $1",
    "DELETE FROM futon_team_mail WHERE to_daemon = $1",
    "DELETE FROM futon_team_approvals WHERE daemon_id = $1",  # its sessions died with it
]

# Mail nobody took (sent to a daemon that died): dropped after a while.
EXPIRE = "DELETE FROM futon_team_mail WHERE created_at < now() - make_interval(secs => $1)"


def channel(daemon_id: str) -> str:
    """The NOTIFY channel of one daemon: an identifier (≤ 63 bytes) made
    from any daemon id, so ids need no quoting rules."""
    return "futon_team_" + hashlib.sha1(daemon_id.encode("utf-8")).hexdigest()[:32]
