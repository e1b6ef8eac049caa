"""Grouping checked rows into batches, and running the caller's writer over them.

A batch is `batch_rows` consecutive rows of the file. A batch with any bad row is not handed on
at all (its lines and errors go to the result); the others are, in file order, to a function of
the caller's that writes and commits each (the caller owns the transactions).
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from loyalty.domain.imports.parse import ROW_ERROR, Row, RowError, RowParser
from loyalty.domain.imports.write import Written

BATCH_ROWS = 50_000  # rows per transaction: 20k -> 50k made a 1M time-ordered import 6 % faster
MAX_REPORTED_ERRORS = 100
# Rows between the reader's offers of the GIL to a writer thread (`time.sleep(0)`, 50-75 µs
# here, the kernel's timer slack, all of it the writer's): see `write_batches`. Every 64 rows is
# every ~0.3 ms of parsing. 1M rows in time order took 17.0 s so, 20.1 s without the offers,
# 22.1 s without a thread (medians of 4, interleaved, 2026-11-29).
YIELD_EVERY = 64


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    duplicates: int = 0
    members_created: int = 0
    points_earned: int = 0
    batches: int = 0
    failed_batches: list[tuple[int, int]] = field(default_factory=list)  # (first, last line)
    errors: list[RowError] = field(default_factory=list)  # the first MAX_REPORTED_ERRORS
    error_count: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    delimiter: str = ","
    delimiter_detected: bool = True  # from the header, not given
    row_triggers_skipped: bool = False
    direct_batches: int = 0  # written by the direct path (PostgreSQL, nothing of them there yet)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def add(self, written: Written) -> None:
        """Counts a batch the caller has committed."""
        self.batches += 1
        self.imported += written.imported
        self.duplicates += written.duplicates
        self.members_created += written.members_created
        self.points_earned += written.points_earned
        self.direct_batches += written.direct
        self.row_triggers_skipped = self.row_triggers_skipped or written.row_triggers_skipped


class _RowChecker:
    """One row: parsed, and its external_id not seen before in the file; errors recorded."""

    def __init__(self, parser: RowParser, result: ImportResult) -> None:
        self.parser, self.result = parser, result
        self.seen: dict[str, int] = {}  # external_id → its first line, over the whole file

    def __call__(self, line: int, values: dict[str, str]) -> Row | None:
        if ROW_ERROR in values:
            row, errors = None, [RowError(line, "row", values[ROW_ERROR])]
        else:
            row, errors = self.parser.parse(line, values)
        if row is not None:
            earlier = self.seen.setdefault(row[2], line)
            if earlier != line:
                row, errors = None, [RowError(line, "external_id", f"repeats line {earlier}")]
        if errors:
            result = self.result
            result.error_count += len(errors)
            room = MAX_REPORTED_ERRORS - len(result.errors)
            result.errors.extend(errors[: max(0, room)])
        return row


def batches(
    records: Iterable[tuple[int, dict[str, str]]],
    parser: RowParser,
    result: ImportResult,
    batch_rows: int = BATCH_ROWS,
    *,
    offer_gil: bool = False,
) -> Iterator[list[Row]]:
    """The good batches of `records` ((line, values), as `CsvRows` gives them), in file order.
    A batch with a bad row is not yielded: its (first, last line) goes to
    `result.failed_batches`, its errors to `result.errors`. Counts `result.rows`. `offer_gil`:
    for a writer thread (`write_batches`), the GIL is offered every YIELD_EVERY rows."""
    check = _RowChecker(parser, result)
    rows: list[Row] = []
    failed = False
    first = last = 0
    offer_every = YIELD_EVERY if offer_gil else 0
    for line, values in records:
        if result.rows % batch_rows == 0:
            first = line
        last = line
        result.rows += 1
        row = check(line, values)
        if row is None:
            failed = True
        elif not failed:
            rows.append(row)
        if offer_every and result.rows % offer_every == 0:
            time.sleep(0)  # the GIL to the writer thread, if it waits for it
        if result.rows % batch_rows == 0:
            yield from _finished(result, rows, failed, (first, last))
            rows, failed = [], False
    if result.rows % batch_rows:
        yield from _finished(result, rows, failed, (first, last))


def _finished(
    result: ImportResult, rows: list[Row], failed: bool, lines: tuple[int, int]
) -> Iterator[list[Row]]:
    if failed:
        result.failed_batches.append(lines)
    elif rows:
        yield rows


def write_batches(
    source: Iterable[list[Row]], write: Callable[[list[Row]], None], *, threaded: bool
) -> None:
    """Calls `write` (the caller's: it writes one batch and commits it) for each batch of
    `source`: inline, or on a thread of its own that writes batch N while this one reads and
    checks N + 1 (the database works while Python parses; at most two batches wait). The thread
    runs in a copy of this context (e.g. the app context the session belongs to).

    Threaded, the batches should come from `batches(..., offer_gil=True)`: the reader then
    offers the GIL every YIELD_EVERY rows, so the writer, back from a round trip or a COPY
    chunk, waits for it a fraction of a millisecond rather than up to the interpreter's 5 ms
    switch interval (which stays as it is). The first error of `write` stops the writing and
    is raised here; so is an error of `source`, once the thread has stopped."""
    if not threaded:
        for rows in source:
            write(rows)
        return
    worker = _Worker(write)
    try:
        for rows in source:
            worker.submit(rows)
    finally:
        worker.close()


class _Worker:
    """A thread calling `write` for each batch put in its queue; its first error is kept, raised
    to the reader at its next submit or at close, and ends the writing."""

    def __init__(self, write: Callable[[list[Row]], None]) -> None:
        self.write = write
        self.error: BaseException | None = None
        self.queue: queue.Queue[list[Row] | None] = queue.Queue(maxsize=2)
        context = contextvars.copy_context()
        self.thread = threading.Thread(target=context.run, args=(self._run,), daemon=True)
        self.thread.start()

    def submit(self, rows: list[Row]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(rows)

    def _run(self) -> None:
        while (rows := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.write(rows)
                except BaseException as exc:
                    self.error = exc

    def close(self) -> None:
        """Waits for the thread to write what is queued. Raises the writer's error, if any."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
