#!/usr/bin/env python3
"""A stand-in for ``codex`` in the bad-input tests of the codex-app-server
driver (tests only): a real process speaking the App Server's JSON-RPC on
stdio, misbehaving as the file ``$CODEX_HOME/mode`` says (read at each turn;
``mixed`` when there is none). ``codex --version`` prints
``FAKE_APP_VERSION`` (default: the pinned version). Every line it reads is
appended to ``$CODEX_HOME/received.jsonl``. (The driver runs it inside
futon's sandbox with an environment of its own making: CODEX_HOME is the one
writable folder it shares with the test.)

Modes (what happens after it answers ``turn/start``):

- ``mixed``: asks an unknown method (id 100) and a file-change approval
  for an item it never announced (id 101), writes three lines that are not
  JSON-RPC, and once both are answered completes the turn with the agent
  message ``still here``;
- ``flood``: writes lines of garbage until it is killed;
- ``die``: exits with status 3 mid-turn;
- ``hang``: does nothing more until ``turn/interrupt``, then ends the turn
  ``interrupted``;
- ``network``: announces a command item (``cmd-1``) and asks to approve it
  with a ``networkApprovalContext`` (id 102); once answered, completes the
  turn with ``still here``;
- ``probe``: from inside the sandbox, tries a TCP connection to each port
  of ``$CODEX_HOME/probe.json`` (``{"ports": {name: port}}``) on 127.0.0.1
  and an HTTP GET of ``/ping`` at the model provider's base URL (from its
  ``-c`` arguments: through the egress); completes the turn with the
  results as JSON;
- ``killtunnel``: kills its parent (the egress forwarder inside the
  sandbox) mid-turn.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from urllib.parse import urlsplit

PINNED = "0.169.0"


def send(message: object) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def raw(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def finish(thread: str, turn: str, text: str) -> None:
    item = {"type": "agentMessage", "id": "msg-1", "text": text}
    send({"method": "item/completed", "params": {
        "threadId": thread, "turnId": turn, "item": item, "completedAtMs": 0,
    }})  # fmt: skip
    send({"method": "turn/completed", "params": {
        "threadId": thread, "turn": {"id": turn, "items": [], "status": "completed"},
    }})  # fmt: skip


def base_url() -> str:
    """The model provider's base URL the driver gave (``-c …base_url=``)."""
    for arg in sys.argv:
        if arg.startswith("model_providers.") and ".base_url=" in arg:
            return str(json.loads(arg.split("=", 1)[1]))
    return ""


def probe(home: str) -> dict[str, str]:
    """What this process can reach (see the ``probe`` mode)."""
    with open(os.path.join(home, "probe.json")) as given:
        ports = json.load(given)["ports"]
    found: dict[str, str] = {}
    for name, port in ports.items():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10):
                found[name] = "connected"
        except OSError as exc:
            found[name] = type(exc).__name__
    url = urlsplit(base_url())
    try:
        address = socket.getaddrinfo(url.hostname, url.port, type=socket.SOCK_STREAM)[0][4][0]
        with socket.create_connection((url.hostname, url.port), timeout=10) as model:
            model.sendall(f"GET {url.path}/ping HTTP/1.0\r\nHost: {url.netloc}\r\n\r\n".encode())
            answer = b""
            while chunk := model.recv(65536):
                answer += chunk
        found["model"] = f"{address} {answer.decode('utf-8', 'replace')}"
    except OSError as exc:
        found["model"] = type(exc).__name__
    found["url"] = url.geturl()
    return found


def serve(home: str) -> None:
    log = open(os.path.join(home, "received.jsonl"), "a")  # noqa: SIM115 - lives as long as the process
    mode_file = os.path.join(home, "mode")
    mode = "mixed"
    waiting: set[int] = set()
    turns = 0
    cwd = "/"
    for line in sys.stdin:
        log.write(line)
        log.flush()
        message = json.loads(line)
        method, ident = message.get("method"), message.get("id")
        if method is None:  # an answer to one of our requests
            waiting.discard(ident)
            if not waiting and turns:
                finish("th-1", f"tu-{turns}", "still here")
            continue
        if method == "initialize":
            send({"id": ident, "result": {
                "userAgent": "fake", "codexHome": "/nowhere", "platformFamily": "unix",
                "platformOs": "linux",
            }})  # fmt: skip
        elif method == "thread/start":
            cwd = message["params"].get("cwd") or "/"
            send({"id": ident, "result": {"thread": {"id": "th-1"}, "model": "fake", "cwd": cwd}})
        elif method == "turn/start":
            if os.path.exists(mode_file):
                with open(mode_file) as given:
                    mode = given.read().strip()
            turns += 1
            turn = f"tu-{turns}"
            send(
                {"id": ident, "result": {"turn": {"id": turn, "items": [], "status": "inProgress"}}}
            )
            if mode == "die":
                sys.exit(3)
            if mode == "hang":
                continue
            if mode == "probe":
                finish("th-1", turn, json.dumps(probe(home)))
                continue
            if mode == "killtunnel":
                os.kill(os.getppid(), signal.SIGKILL)
                continue
            if mode == "network":
                item = {"type": "commandExecution", "id": "cmd-1", "status": "inProgress",
                        "command": "/bin/bash -lc 'ls'", "cwd": cwd}  # fmt: skip
                send({"method": "item/started", "params": {
                    "threadId": "th-1", "turnId": turn, "item": item, "startedAtMs": 0,
                }})  # fmt: skip
                send({"id": 102, "method": "item/commandExecution/requestApproval", "params": {
                    "threadId": "th-1", "turnId": turn, "itemId": "cmd-1", "startedAtMs": 0,
                    "command": "/bin/bash -lc 'ls'", "cwd": cwd, "reason": "needs the network",
                    "networkApprovalContext": {"host": "127.0.0.1", "protocol": "http"},
                }})  # fmt: skip
                waiting = {102}
                continue
            if mode == "flood":
                while True:
                    raw("garbage, not JSON")
            send({"id": 100, "method": "item/frobnicate", "params": {}})
            send({"id": 101, "method": "item/fileChange/requestApproval", "params": {
                "threadId": "th-1", "turnId": turn, "itemId": "ghost", "startedAtMs": 0,
            }})  # fmt: skip
            waiting = {100, 101}
            raw("this is not json")
            raw("[1, 2, 3]")
            raw('{"neither": "request nor answer"}')
        elif method == "turn/interrupt":
            send({"id": ident, "result": {}})
            turn = message["params"]["turnId"]
            send({"method": "turn/completed", "params": {
                "threadId": "th-1", "turn": {"id": turn, "items": [], "status": "interrupted"},
            }})  # fmt: skip
        elif ident is not None:
            send({"id": ident, "error": {"code": -32601, "message": f"no {method}"}})


def main() -> int:
    if "--version" in sys.argv[1:]:
        print(f"codex-cli {os.environ.get('FAKE_APP_VERSION', PINNED)}")
        return 0
    serve(os.environ["CODEX_HOME"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
