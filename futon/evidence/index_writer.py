"""The index's writer thread: SQLite work off the event loop (issue 19).

Writing a batch of held-back rows into the index and committing it is
mostly SQLite's own work (B-trees, the full-text table), which runs with
the GIL released — so on a thread of its own it uses the second core while
the loop goes on serving requests. :class:`~futon.evidence.index.Index`
hands it jobs in order; it runs them in that order, one at a time.

Contract:
- ``submit`` blocks while ``depth`` jobs are waiting (bounded: a writer that
  falls behind slows the loop down instead of piling rows up in memory).
- After a job fails, the jobs behind it are not run (that would break seq
  order): the failure and every job not done are kept for :meth:`settle`.
- ``settle`` waits until the writer is idle and returns the failure (if
  any) and the jobs not done, in order; the caller owns them from then on.
- The connection is only ever used by one thread at a time: the writer
  while it runs a job, the caller only after ``settle`` (it submits nothing
  in between).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Job = TypeVar("Job")
WRITER_DEPTH = 4  # jobs that may wait for the writer before submit blocks


class IndexWriter(Generic[Job]):
    def __init__(
        self,
        run: Callable[[Job], None],
        *,
        name: str = "futon-index-writer",
        depth: int = WRITER_DEPTH,
    ) -> None:
        self._run_job = run
        self._jobs: queue.Queue[tuple[Job] | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._not_done: list[Job] = []
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        """Whether a job failed since the last :meth:`settle` (no waiting)."""
        return self._error is not None

    def submit(self, job: Job) -> None:
        """Queue ``job``; blocks while ``depth`` jobs wait."""
        self._jobs.put((job,))

    def settle(self) -> tuple[BaseException | None, list[Job]]:
        """Wait until every submitted job ran (or was skipped after a
        failure); return the failure and the jobs not done, and forget them."""
        self._jobs.join()
        error, self._error = self._error, None
        not_done, self._not_done = self._not_done, []
        return error, not_done

    def close(self) -> None:
        """Finish the queued jobs and stop the thread."""
        self._jobs.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            try:
                if item is None:
                    return
                (job,) = item
                if self._error is not None:
                    self._not_done.append(job)  # after a failure: kept, in order
                    continue
                try:
                    self._run_job(job)
                except BaseException as exc:  # handed to the loop's thread by settle()
                    self._not_done.append(job)
                    self._error = exc
            finally:
                self._jobs.task_done()
