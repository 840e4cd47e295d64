"""Runs split by visitor, across forked processes: ``beckon backtest`` and the preview.

A visitor's journey never looks at another visitor's, so a run over many visitors is
exactly the sum of runs over disjoint sets of them. This module owns the two halves of
that split, for both drivers:

- ``route``: each process's lines. One pass reads every line's visitor and event time
  (``visitor_and_time``) and gives each process the keys of its visitors' lines: the
  time and the line index packed in one ``int`` (``key``, ``index_of``), so sorting a
  share orders its lines by time, ties by line order, as the backtest orders them all.
- ``route_span``: the same for the lines of one span of a file's bytes (``spans`` cuts
  a file into one span per process, at line starts), with each line's byte offset in
  place of its index: offsets order lines as indexes do, and a span's router needs to
  know nothing of the lines before it. So the routing itself runs split, one forked
  child per span, each reading a part of the file.
- ``run_split``: ``work(0)`` in this process and ``work(1)``… each in a forked child.
  A child inherits everything this process holds (copy-on-write: nothing is sent to it)
  and sends back only its answer, pickled, through a pipe. Whatever ends the run early
  (a child's failure, ``check()`` raising, Ctrl-C) kills the children that still run.

``visitor_and_time`` is exact for every line the event model accepts (a line it refuses
may go to any process; the one that gets it counts it): ``orjson.loads`` (a third of a
full parse) gives both fields as the model reads them, duplicate keys and escapes
included, and a line orjson cannot read is parsed by the model itself. Reading the two
fields straight from the bytes, where no escape or repeated name could fool it, was
tried: the checks alone (``bytes.count`` twice) cost as much as ``orjson.loads``.

Errors: ``schemas.errors.ProcessFailed`` (a child died or raised); the preview raises its
subclass ``PreviewFailed``.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
from array import array
from collections.abc import Callable, Iterable
from functools import partial
from typing import Final, Generic, Protocol, TypeVar

import orjson

from schemas.errors import InvalidEvent, ProcessFailed
from schemas.events import parse_event
from schemas.instants import parse_instant

T = TypeVar("T")


class Buffer(Protocol):
    """What ``spans`` and ``route_span`` read: ``bytes`` or a file mapped by ``mmap``."""

    def __len__(self) -> int: ...
    def __getitem__(self, index: slice, /) -> bytes: ...
    def find(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...
    def rfind(self, sub: bytes, start: int = ..., end: int = ..., /) -> int: ...


FIRST: Final = -(2**63)  # the time of a line that is no event: such lines sort first
INDEX_BITS: Final = 40  # a key is (time << INDEX_BITS) | line index (or byte offset) < 2**40
_INDEX_MASK: Final = (1 << INDEX_BITS) - 1
_POLL_S: Final = 0.1  # how often check() runs while waiting for a child
_CHUNK_BYTES: Final = 1 << 24  # route_span splits this much of the file at a time


def key(ts: int, index: int) -> int:
    """The sort key of line ``index`` (0-based) with event time ``ts``."""
    return (ts << INDEX_BITS) | index


def index_of(packed: int) -> int:
    """The line index of a key (its byte offset, for ``route_span``'s)."""
    return packed & _INDEX_MASK


def visitor_and_time(line: bytes) -> tuple[str | None, int]:
    """The line's ``visitor_id`` and ``ts`` (epoch ms) as the event model reads them, or
    ``(None, FIRST)`` for a line the model refuses (blank, not JSON, no visitor…)."""
    try:
        data = orjson.loads(line)
        visitor, ts = data["visitor_id"], data["ts"]
        if isinstance(visitor, str):
            if type(ts) is int:
                return visitor, ts
            if isinstance(ts, str):
                return visitor, parse_instant(ts)
    except (orjson.JSONDecodeError, TypeError, KeyError, ValueError):
        pass
    # JSON that orjson refuses and the model reads would otherwise be misplaced.
    try:
        event = parse_event(line)
    except InvalidEvent:
        return None, FIRST
    return event.visitor_id, event.ts


def route(
    lines: Iterable[bytes],
    processes: int,
    *,
    check: Callable[[], None] | None = None,
    check_every: int = 20_000,
) -> list[list[int]]:
    """Each process's keys (``part_of`` says which process a line goes to). ``check()``
    runs every ``check_every`` lines (it may raise to stop)."""
    shares: list[list[int]] = [[] for _ in range(processes)]
    adds = [share.append for share in shares]
    for index, line in enumerate(lines):
        if check is not None and index % check_every == 0:
            check()
        visitor, ts = visitor_and_time(line)
        adds[part_of(visitor, processes)]((ts << INDEX_BITS) | index)
    return shares


def part_of(visitor: str | None, processes: int) -> int:
    """The process a line of ``visitor`` goes to: all of a visitor's lines go to one,
    chosen by the hash of the visitor (the same in forks of one interpreter). A line that
    is no event (``None``) goes to the first."""
    return 0 if visitor is None else hash(visitor) % processes


def spans(data: Buffer, processes: int) -> list[int]:
    """Where each of ``processes`` spans of ``data``'s lines starts, then ``len(data)``:
    spans of about equal size, each starting where a line starts (one may be empty)."""
    size = len(data)
    bounds = [0]
    for part in range(1, processes):
        cut = data.find(b"\n", max(size * part // processes - 1, bounds[-1])) + 1
        bounds.append(cut or size)  # no newline after it: the rest is one line
    bounds.append(size)
    return bounds


def route_span(
    data: Buffer, start: int, end: int, processes: int
) -> tuple[list[list[int]], array[int]]:
    """``route`` for the lines that start in ``data[start:end]`` (both line starts, as
    ``spans`` gives them), keyed by each line's byte offset in ``data``; and those offsets
    (where each line starts), in file order. A line is what iterating over the file gives
    without its newline (whitespace to JSON: the model reads it the same)."""
    shares: list[list[int]] = [[] for _ in range(processes)]
    adds = [share.append for share in shares]
    starts = array("q")
    mark = starts.append
    offset = start
    while offset < end:
        # A chunk at a time, cut after a newline: bytes.split beats reading line by line.
        stop = min(offset + _CHUNK_BYTES, end)
        cut = end if stop == end else data.rfind(b"\n", offset, stop) + 1
        if cut <= offset:  # a line longer than a chunk
            cut = data.find(b"\n", stop, end) + 1 or end
        chunk = data[offset:cut]
        lines = chunk.split(b"\n")
        if chunk.endswith(b"\n"):
            lines.pop()  # the empty piece after the chunk's last newline
        for line in lines:
            mark(offset)
            visitor, ts = visitor_and_time(line)
            adds[part_of(visitor, processes)]((ts << INDEX_BITS) | offset)
            offset += len(line) + 1
        offset = cut
    return shares, starts


def run_split(
    work: Callable[[int], T],
    processes: int,
    *,
    name: str,
    check: Callable[[], None] | None = None,
    failed: type[ProcessFailed] = ProcessFailed,
) -> list[T]:
    """``[work(0), work(1), …]``: the first here, each other in a child forked for it.

    ``name`` says whose run failed in the error (``failed``, raised when a child dies or
    raises). ``check()`` runs while waiting for the children; what it raises ends the run.
    """
    children: list[_Child[T]] = []
    try:
        for part in range(1, processes):
            children.append(_Child.start(partial(work, part)))
        answers = [work(0)]
        answers += [child.answer(check, name, failed) for child in children]
    finally:
        for child in children:
            child.stop()
    return answers


class _Child(Generic[T]):
    """A forked process that runs one piece of work and sends back its answer, pickled."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd = pid, fd
        self.exited = False

    @classmethod
    def start(cls, work: Callable[[], T]) -> _Child[T]:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns, never runs the parent's exit handlers
            code = 1
            try:
                os.close(read_fd)
                try:
                    payload = pickle.dumps((True, work()), pickle.HIGHEST_PROTOCOL)
                    code = 0
                except BaseException as exc:  # reported to the parent (Ctrl-C included)
                    payload = pickle.dumps((False, f"{type(exc).__name__}: {exc}"))
                with os.fdopen(write_fd, "wb") as out:
                    out.write(payload)
            finally:
                os._exit(code)
        os.close(write_fd)
        return cls(pid, read_fd)

    def answer(self, check: Callable[[], None] | None, name: str, failed: type[ProcessFailed]) -> T:
        """Wait for the child's answer, running ``check()`` meanwhile."""
        chunks = []
        while True:
            ready, _, _ = select.select([self.fd], [], [], _POLL_S)
            if not ready:
                if check is not None:
                    check()  # may raise; stop() then kills the child
                continue
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        _, status = os.waitpid(self.pid, 0)
        self.exited = True
        try:
            ok, sent = pickle.loads(b"".join(chunks))
        except Exception:  # cut short: whichever unpickling error, it means the same
            ok, sent = False, f"it ended ({_status(status)}) with no answer"
        if not ok:
            raise failed(f"a {name} process failed: {sent}")
        answer: T = sent
        return answer

    def stop(self) -> None:
        """Kill the child unless it has ended (a cancelled or failed run); close the pipe."""
        if not self.exited:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.exited = True
        os.close(self.fd)


def _status(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
