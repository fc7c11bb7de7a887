"""Group commit: the write units of concurrent requests share one transaction, one commit, one flush.

Every accepted document and every audited refusal appends to the audit log, and the log's
sequencer row (``audit_head``) is locked from the append until the commit: with one transaction
per request, committers queue on that lock and each pays a durable flush alone (issue 12 measured
0.17 × the database's raw commit rate with 4 writers).  Here a thread that finds no commit in
progress becomes the leader: it takes every unit waiting at that moment, runs each in a savepoint
of one transaction, and commits once; units that arrive meanwhile form the next batch.  Alone, a
unit commits at once (no savepoint, no waiting), so an idle gateway answers as fast as before.

What each unit is promised is unchanged.  A unit that raises is rolled back to its savepoint,
sequencer increment included, so the indices the others take stay gap-free, and nothing of it is
stored; the others commit.  A unit's caller returns only after the commit that holds it succeeded
(a 2xx still means stored and audited); if that commit fails, every unit of the batch raises.
Units must use only the connection they are given and must not open another write transaction.

Parts of the storage that can do better with a whole batch than unit by unit join it through a
:data:`BatchHook`: the audit log takes one sequencer acquisition per batch and writes all of the
batch's entries in one statement per table just before the commit (gateway.audit.log).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Generic, Protocol, TypeVar

from sqlalchemy.engine import Connection

T = TypeVar("T")
WriteUnit = Callable[[Connection], T]


class BatchPart(Protocol):
    """One participant's share of one batch transaction."""

    def mark(self) -> object:
        """Where the participant stands before a unit runs."""

    def undo(self, mark: object) -> None:
        """The unit since ``mark`` was rolled back to its savepoint: forget what it did here."""

    def flush(self) -> None:
        """Write what was deferred, in the batch's transaction, before it commits."""

    def close(self) -> None:
        """The batch is over, committed or not."""


BatchHook = Callable[[Connection], BatchPart]


class _Waiting(Generic[T]):
    __slots__ = ("error", "finished", "result", "unit")

    def __init__(self, unit: WriteUnit[T]) -> None:
        self.unit = unit
        self.result: T | None = None
        self.error: BaseException | None = None
        self.finished = False

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit:
    """Runs write units from many threads, committing together those that arrive while one commits."""

    def __init__(self, write: Callable[[], AbstractContextManager[Connection]], *, max_batch: int = 64) -> None:
        self._write = write
        self._max_batch = max_batch
        self._changed = threading.Condition()
        self._queue: list[_Waiting[object]] = []
        self._leading = False
        self._hooks: list[BatchHook] = []
        self.batches = 0  # commits made and the units they held: units ÷ batches is the grouping achieved
        self.units = 0

    def add_hook(self, hook: BatchHook) -> None:
        self._hooks.append(hook)

    def run(self, unit: WriteUnit[T]) -> T:
        """Run ``unit`` in a committed transaction, perhaps with other threads' units; its result or its error."""
        waiting: _Waiting[T] = _Waiting(unit)
        with self._changed:
            self._queue.append(waiting)  # type: ignore[arg-type]
        while True:
            with self._changed:
                while self._leading and not waiting.finished:
                    self._changed.wait()
                if waiting.finished:
                    return waiting.outcome()
                self._leading = True
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            try:
                self._commit(batch)
            finally:
                with self._changed:
                    self._leading = False
                    self._changed.notify_all()

    def _commit(self, batch: list[_Waiting[object]]) -> None:
        parts: list[BatchPart] = []
        try:
            with self._write() as conn:
                parts = [hook(conn) for hook in self._hooks]  # alone too: every batch takes locks in one order
                if len(batch) == 1:  # alone: the transaction itself is the unit's boundary
                    batch[0].result = batch[0].unit(conn)
                else:
                    for waiting in batch:
                        _run_in_savepoint(conn, waiting, parts)
                for part in parts:
                    part.flush()
            self.batches += 1
            self.units += len(batch)
        except BaseException as exc:  # the commit (or a lone unit) failed: nothing of the batch is stored
            for waiting in batch:
                if waiting.error is None:
                    waiting.error, waiting.result = exc, None
            if not isinstance(exc, Exception):
                raise
        finally:
            for part in parts:
                part.close()
            for waiting in batch:
                waiting.finished = True


def _run_in_savepoint(conn: Connection, waiting: _Waiting[object], parts: list[BatchPart]) -> None:
    marks = [part.mark() for part in parts]
    try:
        with conn.begin_nested():
            waiting.result = waiting.unit(conn)
    except Exception as exc:  # this unit alone is undone; the batch goes on
        waiting.error = exc
        for part, mark in zip(parts, marks, strict=True):
            part.undo(mark)
