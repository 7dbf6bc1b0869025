"""``GET /metrics``: Prometheus text exposition format 0.0.4, by hand.

Two layers. :class:`MetricsRegistry` holds counters, gauges and histograms
and renders them (``# HELP``, ``# TYPE``, one sample a line, labels
escaped); it knows nothing of futon. :class:`DaemonMetrics` defines futon's
metrics — every name starts with ``futon_`` — and is fed by the daemon:

- read at scrape time from what the daemon already keeps: connections, WS
  frames (the hub's counters), agents, sessions, evidence size;
- counted as things happen: dispatch latency (the daemon wraps
  ``Pipeline.dispatch``), HTTP error responses, tool calls and evidence
  appends (a listener on the evidence store: session ``step`` entries carry
  ``body.tool`` / ``body.ok`` and the tags ``[peripheral, <id>]``; a refused
  action is a ``tension`` entry with ``body.tool``), config reloads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from futon import __version__
from futon.protocol.errors import FutonError
from futon.social.pipeline import Inbound, Pipeline, Receipt, classify

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

Kind = Literal["counter", "gauge"]
LabelValues = tuple[str, ...]
Reader = Callable[[], Mapping[LabelValues, float]]


# ------------------------------------------------------------------ format


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _labels(
    names: tuple[str, ...], values: LabelValues, extra: tuple[tuple[str, str], ...] = ()
) -> str:
    pairs = [*zip(names, values, strict=True), *extra]
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{escape_label(value)}"' for name, value in pairs) + "}"


# ------------------------------------------------------------------ metrics


@dataclass
class Metric:
    """A counter or a gauge with fixed label names. ``read`` (optional)
    supplies the values at scrape time instead of ``inc``/``set``."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    read: Reader | None = None
    values: dict[LabelValues, float] = field(default_factory=dict)

    def _key(self, labels: Mapping[str, str]) -> LabelValues:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {tuple(labels)}")
        return tuple(str(labels[name]) for name in self.labels)

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0) + amount

    def set(self, value: float, **labels: str) -> None:
        self.values[self._key(labels)] = value

    def render(self) -> list[str]:
        values = dict(self.read()) if self.read is not None else self.values
        if not values and not self.labels:
            values = {(): 0}
        return [
            f"{self.name}{_labels(self.labels, key)} {format_value(v)}"
            for key, v in sorted(values.items())
        ]


@dataclass
class _Series:
    buckets: list[int]
    total: float = 0
    count: int = 0


@dataclass
class Histogram:
    name: str
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[LabelValues, _Series] = field(default_factory=dict)
    kind: str = "histogram"

    def observe(self, value: float, **labels: str) -> None:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {tuple(labels)}")
        key = tuple(str(labels[name]) for name in self.labels)
        series = self.series.setdefault(key, _Series([0] * len(self.buckets)))
        for index, bound in enumerate(self.buckets):
            if value <= bound:
                series.buckets[index] += 1
        series.total += value
        series.count += 1

    def render(self) -> list[str]:
        lines = []
        for key, series in sorted(self.series.items()):
            for bound, cumulative in zip(self.buckets, series.buckets, strict=True):
                lines.append(
                    f"{self.name}_bucket{_labels(self.labels, key, (('le', format_value(bound)),))} {cumulative}"
                )
            lines.append(
                f"{self.name}_bucket{_labels(self.labels, key, (('le', '+Inf'),))} {series.count}"
            )
            lines.append(f"{self.name}_sum{_labels(self.labels, key)} {format_value(series.total)}")
            lines.append(f"{self.name}_count{_labels(self.labels, key)} {series.count}")
        return lines


class MetricsRegistry:
    """Metrics in registration order; :meth:`render` is the whole page."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric | Histogram] = {}

    def _add(self, metric: Metric | Histogram) -> Any:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} is registered twice")
        self._metrics[metric.name] = metric
        return metric

    def counter(
        self, name: str, help: str, labels: Iterable[str] = (), read: Reader | None = None
    ) -> Metric:
        return self._add(Metric(name, "counter", help, tuple(labels), read))

    def gauge(
        self, name: str, help: str, labels: Iterable[str] = (), read: Reader | None = None
    ) -> Metric:
        return self._add(Metric(name, "gauge", help, tuple(labels), read))

    def histogram(
        self,
        name: str,
        help: str,
        labels: Iterable[str] = (),
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> Histogram:
        return self._add(Histogram(name, help, tuple(labels), tuple(sorted(buckets))))

    def render(self) -> str:
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.append(f"# HELP {metric.name} {escape_help(metric.help)}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ futon's metrics


class LiveSource:
    """What the daemon reads at scrape time; every method may be called
    before start or after stop and then returns zeros."""

    def connections(self) -> dict[str, int]:
        return {"ws": 0, "irc": 0}

    def ws_frames(self) -> dict[str, int]:
        return {"in": 0, "out": 0}

    def agents(self) -> dict[str, int]:
        return {"registered": 0, "connected": 0}

    def active_sessions(self) -> int:
        return 0

    def evidence_entries(self) -> int:
        return 0


class DaemonMetrics:
    def __init__(self, live: LiveSource) -> None:
        self.registry = r = MetricsRegistry()
        r.gauge(
            "futon_build_info",
            "futon's version (always 1)",
            ["version"],
            read=lambda: {(__version__,): 1},
        )
        r.gauge("futon_connections", "Open client connections by transport", ["transport"],
                read=lambda: {(k,): v for k, v in live.connections().items()})  # fmt: skip
        r.counter("futon_frames_total", "Frames by transport and direction (in: from clients, out: to clients)",
                  ["transport", "direction"], read=lambda: {("ws", k): v for k, v in live.ws_frames().items()})  # fmt: skip
        r.gauge("futon_agents", "Agents in the registry, and how many are connected", ["state"],
                read=lambda: {(k,): v for k, v in live.agents().items()})  # fmt: skip
        r.gauge(
            "futon_sessions_active",
            "Active peripheral sessions",
            read=lambda: {(): live.active_sessions()},
        )
        r.gauge(
            "futon_evidence_entries",
            "Entries in the evidence store (its last seq)",
            read=lambda: {(): live.evidence_entries()},
        )
        self.dispatch_seconds = r.histogram(
            "futon_dispatch_duration_seconds",
            "Time through the dispatch pipeline, by transport and mode",
            ["transport", "mode"],
        )
        self.tool_calls = r.counter(
            "futon_tool_calls_total",
            "Tool actions by peripheral and outcome (ok, failed, refused)",
            ["peripheral", "outcome"],
        )
        self.evidence_appends = r.counter(
            "futon_evidence_appends_total", "Evidence entries appended, by type", ["type"]
        )
        self.errors = r.counter(
            "futon_errors_total",
            "Errors by where they surfaced (http: status >= 400; dispatch: wire code)",
            ["source", "code"],
        )
        self.reloads = r.counter(
            "futon_config_reloads_total",
            "Configuration reloads by result (applied, refused)",
            ["result"],
        )

    def render(self) -> str:
        return self.registry.render()

    # ------------------------------------------------------------- feeds

    def on_entry(self, entry: Mapping[str, Any]) -> None:
        """Evidence listener (see the module doc)."""
        self.evidence_appends.inc(type=str(entry.get("evidence/type")))
        body = entry.get("evidence/body")
        tags = entry.get("evidence/tags") or []
        if (
            not isinstance(body, dict)
            or "tool" not in body
            or len(tags) < 2
            or tags[0] != "peripheral"
        ):
            return
        claim = entry.get("evidence/claim-type")
        if claim == "step":
            self.tool_calls.inc(
                peripheral=str(tags[1]), outcome="ok" if body.get("ok") else "failed"
            )
        elif claim == "tension" and body.get("code"):
            self.tool_calls.inc(peripheral=str(tags[1]), outcome="refused")

    def http_status(self, status: int) -> None:
        if status >= 400:
            self.errors.inc(source="http", code=str(status))


class TimedPipeline(Pipeline):
    """The pipeline, with each dispatch timed into ``futon_dispatch_duration_seconds``
    and each failure counted in ``futon_errors_total{source="dispatch"}``."""

    metrics: DaemonMetrics | None = None

    async def dispatch(self, inbound: Inbound, *, reply_timeout_s: float | None = None) -> Receipt:
        started = time.perf_counter()
        mode = classify(inbound.payload)
        try:
            return await super().dispatch(inbound, reply_timeout_s=reply_timeout_s)
        except FutonError as exc:
            if self.metrics is not None:
                self.metrics.errors.inc(source="dispatch", code=exc.code)
            raise
        finally:
            if self.metrics is not None:
                self.metrics.dispatch_seconds.observe(
                    time.perf_counter() - started, transport=inbound.transport, mode=mode
                )


__all__ = [
    "CONTENT_TYPE",
    "DaemonMetrics",
    "LiveSource",
    "MetricsRegistry",
    "TimedPipeline",
    "format_value",
]
