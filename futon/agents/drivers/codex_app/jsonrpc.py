"""A JSON-RPC client over a child process's stdin/stdout, one JSON object a
line (the Codex App Server's transport; it omits ``"jsonrpc": "2.0"``).

What a caller may rely on:

- :meth:`RpcProcess.request` sends a request and returns its ``result``;
  an ``error`` answer raises :class:`RpcError`; the process ending (or the
  client giving up on it) raises :class:`ServerGone` — in flight or later.
- Requests *from* the process go to the ``on_request`` handler, each in its
  own task (at most :data:`MAX_SERVER_REQUESTS` at once; more are answered
  with an error); its return value is the ``result``. A handler raising
  :class:`MethodNotFound` answers JSON-RPC error -32601; any other
  exception is logged and answered -32603. The process goes on either way.
- Each notification is first shown to ``on_notification`` (synchronously,
  in arrival order: before any later request reaches ``on_request`` — an
  approval may name an item announced just before it), then queues up for
  :meth:`next_notification` in a bounded
  buffer (the oldest is dropped, and logged, when a reader falls behind).
- A line that is not a JSON-RPC message is logged and skipped; after
  ``max_garbage`` of them since :meth:`reset_garbage` the client gives up on
  the process (kills it): a flood of garbage ends in :class:`ServerGone`,
  never a hang. A line longer than :data:`LINE_LIMIT` counts as garbage.
- :meth:`close` kills the process with its whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("futon.agent.codex_app")

LINE_LIMIT = 16 * 1024 * 1024
NOTIFICATION_BUFFER = 4096
MAX_SERVER_REQUESTS = 64
STDERR_TAIL = 4000
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603

RequestHandler = Callable[[str, Any], Awaitable[Any]]
NotificationHook = Callable[[str, Any], None]


class RpcError(Exception):
    """The process answered a request with a JSON-RPC error."""

    def __init__(self, method: str, code: int, message: str) -> None:
        super().__init__(f"{method}: error {code}: {message}")
        self.code = code
        self.message = message


class ServerGone(Exception):
    """The process ended, or the client gave up on it; the message says why."""


class MethodNotFound(Exception):
    """Raised by a request handler for a method it does not serve."""


class RpcProcess:
    """One child process spoken to in JSON-RPC (see the module docstring)."""

    def __init__(
        self,
        argv: list[str],
        on_request: RequestHandler,
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        max_garbage: int = 100,
        on_notification: NotificationHook | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.argv = list(argv)
        self.pass_fds = pass_fds  # inherited by the child (bwrap's --args memfd)
        self.on_request = on_request
        self.on_notification = on_notification
        self.env = env
        self.cwd = cwd
        self.max_garbage = max_garbage
        self.garbage = 0
        self.failure: str | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, asyncio.Future[Any]]] = {}
        self._notes: deque[tuple[str, Any]] = deque()
        self._noted = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._stderr: asyncio.Task[None] | None = None
        self._stderr_tail = b""
        self._write_lock = asyncio.Lock()

    @property
    def alive(self) -> bool:
        return (
            self._process is not None and self._process.returncode is None and self.failure is None
        )

    @property
    def stderr_tail(self) -> str:
        return self._stderr_tail.decode("utf-8", "replace").strip()[-300:]

    async def start(self) -> None:
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                limit=LINE_LIMIT,
                start_new_session=True,  # its own process group, killed as one
                pass_fds=self.pass_fds,
            )
        except OSError as exc:
            raise ServerGone(f"cannot run {self.argv[0]!r}: {exc.strerror or exc}") from None
        self._reader = asyncio.ensure_future(self._read())
        self._stderr = asyncio.ensure_future(self._drain_stderr())

    # ------------------------------------------------------------- sending

    async def request(self, method: str, params: Any, *, timeout: float | None = None) -> Any:
        """The ``result`` of ``method``; :class:`RpcError`, :class:`ServerGone`
        or ``TimeoutError`` otherwise."""
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (method, future)
        try:
            await self._write({"id": request_id, "method": method, "params": params})
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)

    async def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"method": method}
        if params is not None:
            message["params"] = params
        await self._write(message)

    async def _write(self, message: dict[str, Any]) -> None:
        if not self.alive or self._process is None or self._process.stdin is None:
            raise ServerGone(self._why())
        line = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8")
        async with self._write_lock:
            try:
                self._process.stdin.write(line)
                await self._process.stdin.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise ServerGone(f"cannot write to the process: {exc}") from None

    # ------------------------------------------------------------- receiving

    async def next_notification(self) -> tuple[str, Any]:
        """The next ``(method, params)`` notification; :class:`ServerGone`
        once the process is gone and nothing is left to read."""
        while not self._notes:
            if self._reader is None or self._reader.done():
                raise ServerGone(self._why())
            self._noted.clear()
            waiter = asyncio.ensure_future(self._noted.wait())
            try:
                await asyncio.wait({waiter, self._reader}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        return self._notes.popleft()

    def drain_notifications(self) -> int:
        """Drop the notifications queued so far (between turns); how many."""
        count = len(self._notes)
        self._notes.clear()
        return count

    def reset_garbage(self) -> None:
        self.garbage = 0

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        try:
            while self.failure is None:
                try:
                    line = await stdout.readline()
                except ValueError:  # longer than LINE_LIMIT: the buffer was cleared
                    self._bad(b"(a line over the size limit)")
                    continue
                if not line:
                    break
                if line.strip():
                    self._dispatch(line)
        except (ConnectionError, OSError) as exc:
            log.info("reading the process: %s", exc)
        finally:
            await self._ended()

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            self._bad(line)
            return
        if not isinstance(message, dict):
            self._bad(line)
            return
        method = message.get("method")
        has_id = "id" in message and isinstance(message["id"], (int, str))
        if isinstance(method, str) and has_id:
            self._serve(message["id"], method, message.get("params"))
        elif isinstance(method, str):
            if self.on_notification is not None:
                try:
                    self.on_notification(method, message.get("params"))
                except Exception:  # a bug in the hook must not stop the reader
                    log.exception("observing %s failed", method)
            if len(self._notes) >= NOTIFICATION_BUFFER:
                dropped, _ = self._notes.popleft()
                log.warning("dropping an unread %s notification (buffer full)", dropped)
            self._notes.append((method, message.get("params")))
            self._noted.set()
        elif has_id and ("result" in message or "error" in message):
            self._answer(message)
        else:
            self._bad(line)

    def _answer(self, message: dict[str, Any]) -> None:
        request_id = message["id"]
        pending = self._pending.get(request_id) if isinstance(request_id, int) else None
        if pending is None:
            log.warning("an answer to no request of ours (id %r); skipped", request_id)
            return
        method, future = pending
        if future.done():
            return
        error = message.get("error")
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            text = error.get("message") if isinstance(error, dict) else None
            future.set_exception(
                RpcError(
                    method, code if isinstance(code, int) else INTERNAL_ERROR, str(text or error)
                )
            )
        else:
            future.set_result(message.get("result"))

    def _bad(self, line: bytes) -> None:
        self.garbage += 1
        log.warning(
            "skipping a line that is not a JSON-RPC message (%d so far): %r",
            self.garbage,
            line[:200],
        )
        if self.garbage >= self.max_garbage and self.failure is None:
            self.failure = f"{self.garbage} lines from the App Server were not JSON-RPC messages"
            log.error("%s; giving up on it", self.failure)
            self._kill()

    def _serve(self, request_id: int | str, method: str, params: Any) -> None:
        if len(self._tasks) >= MAX_SERVER_REQUESTS:
            log.warning(
                "refusing %s: %d requests are already being answered", method, len(self._tasks)
            )
            task = asyncio.ensure_future(
                self._reply_error(request_id, INTERNAL_ERROR, "too many requests at once")
            )
        else:
            task = asyncio.ensure_future(self._handle(request_id, method, params))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, request_id: int | str, method: str, params: Any) -> None:
        try:
            result = await self.on_request(method, params)
        except MethodNotFound:
            log.warning("the App Server asked %s, which futon does not serve: error -32601", method)
            await self._reply_error(request_id, METHOD_NOT_FOUND, f"method not found: {method}")
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug answering: an error, never a dead reader
            log.exception("answering %s failed", method)
            await self._reply_error(request_id, INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            return
        with contextlib.suppress(ServerGone):
            await self._write({"id": request_id, "result": result})

    async def _reply_error(self, request_id: int | str, code: int, message: str) -> None:
        with contextlib.suppress(ServerGone):
            await self._write({"id": request_id, "error": {"code": code, "message": message}})

    async def _drain_stderr(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        with contextlib.suppress(ConnectionError, OSError, ValueError):
            while chunk := await self._process.stderr.read(65536):
                self._stderr_tail = (self._stderr_tail + chunk)[-STDERR_TAIL:]

    async def _ended(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._process.wait(), 5)
        gone = ServerGone(self._why())
        for _, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(gone)
        self._noted.set()

    def _why(self) -> str:
        if self.failure:
            return self.failure
        code = self._process.returncode if self._process is not None else None
        tail = self.stderr_tail
        where = (
            f"the App Server exited ({code})"
            if code is not None
            else "the App Server is not running"
        )
        return where + (f": {tail}" if tail else "")

    def _kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._process.pid, signal.SIGKILL)

    async def close(self) -> None:
        """Kill the process (and its group) and stop reading."""
        if self.failure is None:
            self.failure = "the App Server was closed"
        self._kill()
        for task in [self._reader, self._stderr, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._process is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._process.wait(), 5)
            if self._process.stdin is not None:
                self._process.stdin.close()
        gone = ServerGone(self._why())
        for _, future in list(self._pending.values()):
            if not future.done():
                future.set_exception(gone)
