"""Live reload (``POST /api/alpha/config/reload``, the same path as SIGHUP)
in a daemon on real sockets: what is applied, what is refused, what waits
for a restart — and that no connection drops on the way."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from ruamel.yaml import YAML

from futon.daemon.app import Daemon
from tests.transports.irc.kit import RawClient
from tests.transports.kit import agent_socket, base_url, connected, running_daemon


def edit_yaml(path: Path, change: Callable[[Any], None]) -> None:
    yaml = YAML()
    doc = yaml.load(path)
    change(doc)
    yaml.dump(doc, path)


def cfg(daemon: Daemon, name: str) -> Path:
    return daemon.config.base_dir / name


async def reload(
    http: aiohttp.ClientSession, daemon: Daemon, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(
        base_url(daemon) + "/api/alpha/config/reload", headers=headers
    ) as response:
        return response.status, await response.json()


async def test_agents_are_added_changed_and_removed_while_other_connections_stay(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path, irc__server__enabled=True, irc__server__port=0) as daemon:
        alice = await RawClient.connect(daemon.ports["irc"])
        await alice.register("alice")
        await alice.join("#futon")
        async with (
            connected(http, daemon, "claude-1") as claude,
            connected(http, daemon, "codex-1") as codex,
        ):

            def change(doc: Any) -> None:
                doc["agents"] = [a for a in doc["agents"] if a["id"] != "codex-1"]
                doc["agents"][0]["channels"] = ["#futon", "#ops"]
                doc["agents"].append({"id": "newbie", "type": "mock", "channels": ["#futon"]})

            edit_yaml(cfg(daemon, "agents.yaml"), change)
            status, body = await reload(http, daemon)
            assert status == 200, body
            assert body["ok"] is True and body["changed"] is True
            assert body["agents"] == {
                "added": ["newbie"],
                "removed": ["codex-1"],
                "changed": ["claude-1"],
            }
            assert body["restart_required"] == []

            assert (await claude.ask({"type": "ping"}))["type"] == "pong"
            assert await codex.closed_with() == 4004  # gone from agents.yaml, like DELETE
            async with agent_socket(http, daemon) as raw:
                assert (await raw.ask({"type": "ready", "agent_id": "newbie"}))[
                    "type"
                ] == "ready_ack"
            async with agent_socket(http, daemon) as raw:
                refused = await raw.ask({"type": "ready", "agent_id": "codex-1"})
                assert refused["code"] == "agent-not-found"

            quit_line = await alice.expect(
                "QUIT", where=lambda m: (m.source or "").startswith("codex-1!")
            )
            assert "reload" in quit_line.text
            await alice.expect(
                "JOIN", "#futon", where=lambda m: (m.source or "").startswith("newbie!")
            )
            assert "claude-1" in daemon.irc_server.members("#ops")
            await alice.ping("still-here")
        await alice.close()


async def test_peripherals_are_swapped_but_a_running_session_keeps_its_envelope(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path) as daemon, connected(http, daemon, "claude-1") as agent:
        started = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        assert "grep" in started["tools"]

        def change(doc: Any) -> None:
            doc["peripherals"]["explore"]["tools"] = ["read"]
            doc["peripherals"]["skim"] = {
                "tools": ["read"],
                "scope": "full-codebase",
                "entry": ["default"],
                "exit": ["user-request"],
            }

        edit_yaml(cfg(daemon, "peripherals.yaml"), change)
        status, body = await reload(http, daemon)
        assert status == 200, body
        assert body["peripherals"] == {"added": ["skim"], "removed": [], "changed": ["explore"]}

        grep = await agent.ask({"type": "tool_action", "tool": "grep", "args": ["add", "src"]})
        assert grep["type"] == "tool_result" and grep["ok"] is True, (
            grep
        )  # the session's envelope did not move
        await agent.ask({"type": "peripheral_stop", "reason": "done"})
        again = await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        assert again["tools"] == ["read"]
        refused = await agent.ask({"type": "tool_action", "tool": "grep", "args": ["add", "src"]})
        assert refused["code"] == "tool-not-allowed"
        async with http.get(base_url(daemon) + "/api/alpha/peripherals") as response:
            assert "skim" in {p["id"] for p in (await response.json())["peripherals"]}


async def test_an_invalid_config_is_a_400_with_problem_lines_and_changes_nothing(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path) as daemon, connected(http, daemon, "claude-1") as agent:
        edit_yaml(
            cfg(daemon, "agents.yaml"),
            lambda doc: doc["agents"].append({"id": "newbie", "type": "mock"}),
        )
        futon_yaml = cfg(daemon, "futon.yaml")
        futon_yaml.write_text(
            futon_yaml.read_text().replace("max_body_bytes: 1048576", "max_body_bytes: lots")
        )
        status, body = await reload(http, daemon)
        assert status == 400
        assert body["code"] == "invalid-config" and body["error"] is True
        assert any(
            "futon.yaml:" in line and "http.max_body_bytes" in line
            for line in body["context"]["problems"]
        )
        assert daemon.registry.find("newbie") is None  # the valid half was not applied either
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"


async def test_a_reload_that_would_expose_an_open_daemon_is_refused(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path) as daemon:
        edit_yaml(cfg(daemon, "futon.yaml"), lambda doc: doc["http"].__setitem__("host", "0.0.0.0"))
        status, body = await reload(http, daemon)
        assert status == 400
        assert "refusing to bind beyond loopback" in body["message"]


async def test_settings_apply_live_and_restart_only_ones_are_reported(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path) as daemon:
        port = daemon.ports["http"]

        def change(doc: Any) -> None:
            doc["http"]["port"] = 1
            doc["data_dir"] = "elsewhere"
            doc["dispatch"]["reply_timeout_s"] = 2.5
            doc["tickle"]["enabled"] = True
            doc["tickle"]["interval_s"] = 3600
            doc["ws"]["max_frames_per_s"] = 7

        edit_yaml(cfg(daemon, "futon.yaml"), change)
        edit_yaml(
            cfg(daemon, "agents.yaml"), lambda doc: doc["irc_access"].__setitem__("default", "deny")
        )
        edit_yaml(
            cfg(daemon, "agents.yaml"), lambda doc: doc["routing"].__setitem__("mock", "edit")
        )
        status, body = await reload(http, daemon)
        assert status == 200, body
        assert body["restart_required"] == ["data_dir", "http.port"]
        assert body["settings"] == [
            "dispatch.reply_timeout_s",
            "tickle.enabled",
            "tickle.interval_s",
            "ws.max_frames_per_s",
        ]
        assert body["routing"] == {"added": ["mock"], "removed": [], "changed": []}
        assert body["irc_access"] is True
        assert daemon.ports["http"] == port and daemon.pipeline.reply_timeout_s == 2.5
        assert daemon.ws.settings.max_frames_per_s == 7 and daemon.registry.access.default == "deny"
        assert daemon.tickle.settings.enabled and daemon.relay.tickle is daemon.tickle
        async with http.get(base_url(daemon) + "/health") as response:
            assert response.status == 200  # still on the old port

        status, body = await reload(http, daemon)  # nothing new, but the restart is still owed
        assert body["settings"] == [] and body["restart_required"] == ["data_dir", "http.port"]
        assert "tickle" in daemon.tasks.names  # the watch runs among the daemon's background tasks

        edit_yaml(cfg(daemon, "futon.yaml"), lambda doc: doc["tickle"].__setitem__("enabled", False))
        status, body = await reload(http, daemon)
        assert status == 200 and body["settings"] == ["tickle.enabled"]
        assert "tickle" not in daemon.tasks.names and not daemon.tickle.enabled


async def test_a_new_admin_token_guards_the_very_next_request(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    async with running_daemon(tmp_path) as daemon, connected(http, daemon, "claude-1") as agent:
        digest = hashlib.sha256(b"s3cret").hexdigest()
        edit_yaml(
            cfg(daemon, "futon.yaml"),
            lambda doc: doc["http"].__setitem__("admin_token_sha256", digest),
        )
        status, body = await reload(http, daemon)
        assert status == 200 and body["settings"] == ["http.admin_token_sha256"]
        async with http.get(base_url(daemon) + "/api/alpha/agents") as response:
            assert response.status == 401
        status, _ = await reload(http, daemon, token="s3cret")
        assert status == 200
        assert (await agent.ask({"type": "ping"}))["type"] == "pong"
