"""``GET /metrics``: the Prometheus text format 0.0.4 renderer, and futon's
metrics fed by a daemon doing real work over real sockets."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import aiohttp

from futon.daemon.metrics import MetricsRegistry, format_value
from tests.transports.kit import base_url, connected, running_daemon

SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$'
)


def parse(text: str) -> dict[str, float]:
    """Samples by their full name with labels; checks the format as it goes:
    every family has HELP then TYPE before its samples, every sample parses."""
    samples: dict[str, float] = {}
    typed: dict[str, str] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram")
            typed[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        family = (
            re.sub(r"_(bucket|sum|count)$", "", match.group(1))
            if match.group(1) not in typed
            else match.group(1)
        )
        assert family in typed, f"sample before its TYPE: {line!r}"
        name, _, value = line.rpartition(" ")
        samples[name] = float(value)
    return samples


def test_the_renderer_writes_help_type_escaped_labels_and_cumulative_buckets() -> None:
    registry = MetricsRegistry()
    counter = registry.counter("x_total", "Things\nseen", ["who"])
    counter.inc(who='a "quoted"\\one\n')
    counter.inc(2, who="b")
    histogram = registry.histogram("x_seconds", "Durations", ["op"], buckets=(0.1, 1))
    for value in (0.05, 0.5, 5):
        histogram.observe(value, op="run")
    registry.gauge("x_up", "Up")
    text = registry.render()
    assert "# HELP x_total Things\\nseen\n# TYPE x_total counter\n" in text
    assert 'x_total{who="a \\"quoted\\"\\\\one\\n"} 1\n' in text
    assert (
        'x_seconds_bucket{op="run",le="0.1"} 1\nx_seconds_bucket{op="run",le="1"} 2\nx_seconds_bucket{op="run",le="+Inf"} 3\n'
        in text
    )
    assert 'x_seconds_sum{op="run"} 5.55\nx_seconds_count{op="run"} 3\n' in text
    assert "x_up 0\n" in text  # a label-less metric always has its sample
    parse(text)
    assert (format_value(3.0), format_value(0.25), format_value(float("inf"))) == (
        "3",
        "0.25",
        "+Inf",
    )


async def test_metrics_count_connections_frames_dispatch_tools_evidence_and_errors(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    digest = hashlib.sha256(b"admin").hexdigest()
    async with (
        running_daemon(tmp_path, http__admin_token_sha256=digest) as daemon,
        connected(http, daemon, "claude-1") as agent,
    ):
        base = base_url(daemon)
        admin = {"Authorization": "Bearer admin"}
        await agent.ask({"type": "peripheral_start", "peripheral_id": "explore"})
        assert (await agent.ask({"type": "tool_action", "tool": "read", "args": ["README.md"]}))[
            "ok"
        ] is True
        assert (await agent.ask({"type": "tool_action", "tool": "read", "args": ["nope.md"]}))[
            "ok"
        ] is False
        assert (await agent.ask({"type": "tool_action", "tool": "write", "args": ["x", "y"]}))[
            "code"
        ] == "tool-not-allowed"
        dispatch = {
            "msg_id": "m-1",
            "from": "joe",
            "to": "claude-1",
            "payload": {"actions": [{"tool": "read", "args": ["README.md"]}]},
        }
        async with http.post(base + "/dispatch", json=dispatch, headers=admin) as response:
            assert response.status == 200
        async with http.post(
            base + "/dispatch", json={**dispatch, "msg_id": "m-2", "to": "ghost"}, headers=admin
        ) as response:
            assert response.status == 404
        async with http.get(base + "/api/alpha/agents") as response:
            assert response.status == 401

        async with http.get(base + "/metrics") as response:  # open, like /health
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            samples = parse(await response.text())

    assert samples['futon_connections{transport="ws"}'] == 1
    assert samples['futon_connections{transport="irc"}'] == 0
    assert samples['futon_frames_total{transport="ws",direction="in"}'] >= 5
    assert samples['futon_frames_total{transport="ws",direction="out"}'] >= 5
    assert (
        samples['futon_agents{state="connected"}'] == 1
        and samples['futon_agents{state="registered"}'] == 3
    )
    assert samples["futon_sessions_active"] == 1
    assert (
        samples['futon_tool_calls_total{peripheral="explore",outcome="ok"}'] == 2
    )  # WS + dispatch
    assert samples['futon_tool_calls_total{peripheral="explore",outcome="failed"}'] == 1
    assert samples['futon_tool_calls_total{peripheral="explore",outcome="refused"}'] == 1
    assert samples['futon_dispatch_duration_seconds_count{transport="http",mode="action"}'] == 2
    assert (
        samples['futon_dispatch_duration_seconds_bucket{transport="http",mode="action",le="+Inf"}']
        == 2
    )
    assert samples['futon_errors_total{source="dispatch",code="agent-not-found"}'] == 1
    assert samples['futon_errors_total{source="http",code="404"}'] == 1
    assert samples['futon_errors_total{source="http",code="401"}'] == 1
    assert samples['futon_evidence_appends_total{type="coordination"}'] >= 6
    assert samples["futon_evidence_entries"] == sum(
        v for k, v in samples.items() if k.startswith("futon_evidence_appends_total")
    )
