"""The dependency DAG of ledger items / obligations.

A graph is ``{item_id: [ids it depends on]}``. Pure functions, no state:

- :func:`check` — ``{acyclic, cycle_nodes, dangling}``;
- :func:`closing_path` — the cycle an edit would close (upserts refuse it);
- :func:`impact` — items not yet proved ranked by how many others they
  unlock, transitively.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

Graph = Mapping[str, Iterable[str]]

# Statuses that no longer block anything (proved) or never will (false).
SETTLED = frozenset({"proved", "false"})


def cycle_nodes(graph: Graph) -> list[str]:
    """Every node lying on a cycle (strongly connected components of more
    than one node, and self-loops), sorted. Iterative Tarjan: deep ledgers
    cannot overflow the stack."""
    edges = {node: [d for d in deps if d in graph] for node, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: set[str] = set()
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = edges[node]
            if position < len(children):
                work.append((node, position + 1))
                child = children[position]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.update(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return sorted(found)


def dangling(graph: Graph) -> list[dict[str, Any]]:
    """``[{item_id, missing}]``: dependencies naming items that do not exist."""
    out = []
    for node in sorted(graph):
        missing = sorted({d for d in graph[node] if d not in graph})
        if missing:
            out.append({"item_id": node, "missing": missing})
    return out


def check(graph: Graph) -> dict[str, Any]:
    nodes = cycle_nodes(graph)
    return {"acyclic": not nodes, "cycle_nodes": nodes, "dangling": dangling(graph)}


def closing_path(graph: Graph, node: str) -> list[str] | None:
    """A path ``node → … → node`` following dependencies, or None when
    ``node`` lies on no cycle."""
    previous: dict[str, str] = {}
    queue = deque([node])
    seen = {node}
    while queue:
        current = queue.popleft()
        for dep in graph.get(current, ()):
            if dep == node:
                path = [current]
                while path[-1] != node:
                    path.append(previous[path[-1]])
                return [node, *reversed(path[:-1]), node]
            if dep not in seen and dep in graph:
                seen.add(dep)
                previous[dep] = current
                queue.append(dep)
    return None


def impact(graph: Graph, statuses: Mapping[str, str]) -> list[dict[str, Any]]:
    """``[{item_id, score, unlocks}]`` for every item that is neither proved
    nor false and that others depend on: ``unlocks`` are the items depending
    on it transitively that are not settled either, ``score`` their count.
    Highest score first, then by id."""
    dependents: dict[str, set[str]] = {node: set() for node in graph}
    for node, deps in graph.items():
        for dep in deps:
            if dep in dependents:
                dependents[dep].add(node)
    ranked: list[dict[str, Any]] = []
    for node in graph:
        if statuses.get(node) in SETTLED:
            continue
        reached: set[str] = set()
        queue = deque(dependents[node])
        while queue:
            current = queue.popleft()
            if current in reached or current == node:
                continue
            reached.add(current)
            queue.extend(dependents[current])
        unlocks = sorted(n for n in reached if statuses.get(n) not in SETTLED)
        if unlocks:
            ranked.append({"item_id": node, "score": len(unlocks), "unlocks": unlocks})
    ranked.sort(key=lambda row: (-row["score"], row["item_id"]))
    return ranked
