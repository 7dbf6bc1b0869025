"""The SQL of the team bus (:mod:`futon.social.team`), in one place.

Two tables beside the evidence store's, in the same database:

- ``futon_team_presence``: which daemon each connected agent is on. A row is
  written when the agent connects (taking it over from any other daemon),
  deleted when it leaves, and its ``heartbeat_at`` refreshed by its daemon
  every heartbeat. A row whose heartbeat is older than the window belongs
  to a dead daemon: it counts as absent.
- ``futon_team_mail``: frames for another daemon (a dispatch to run, a push
  to deliver, the answer to one). A sender inserts a row and NOTIFYs the
  receiver's channel in the same statement; the receiver deletes what is
  addressed to it (so a row is handled once) and sweeps again every
  heartbeat, so a notification lost with a dropped connection is only late.
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
"""

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

LIVE = """
SELECT agent_id, daemon_id, connected_at, heartbeat_at FROM futon_team_presence
WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY agent_id
"""

SEND = """
WITH m AS (
    INSERT INTO futon_team_mail (to_daemon, from_daemon, body) VALUES ($1, $2, $3::jsonb)
    RETURNING id
)
SELECT pg_notify($4, (SELECT id::text FROM m))
"""

TAKE = """
DELETE FROM futon_team_mail WHERE id IN (
    SELECT id FROM futon_team_mail WHERE to_daemon = $1 ORDER BY id LIMIT $2
)
RETURNING id, from_daemon, body::text
"""

# At start: what a previous life of this daemon left (its presence rows are
# stale: its sockets died with it; its mail was for callers long gone).
RESET = [
    "DELETE FROM futon_team_presence WHERE daemon_id = $1",
    "DELETE FROM futon_team_mail WHERE to_daemon = $1",
]

# Mail nobody took (sent to a daemon that died): dropped after a while.
EXPIRE = "DELETE FROM futon_team_mail WHERE created_at < now() - make_interval(secs => $1)"


def channel(daemon_id: str) -> str:
    """The NOTIFY channel of one daemon: an identifier (≤ 63 bytes) made
    from any daemon id, so ids need no quoting rules."""
    return "futon_team_" + hashlib.sha1(daemon_id.encode("utf-8")).hexdigest()[:32]
