"""Cheap profiling for long benchmark runs: a stack sampler and a garbage-collector timer.

cProfile slows the engine two to three times and hides where C time goes; tracemalloc is
slower still. For a hint of where a million-event run spends its time, a thread that looks
at the main thread's stack every few milliseconds costs well under 1%:

- ``Sampler`` charges, per sample, the innermost Python function ("self": time in it and
  in the C code it calls, such as orjson or pydantic-core) and every function of the
  project on the stack ("inclusive"). A sample can only be taken when the main thread
  lets go of the GIL, which it does far more often while reading a file than while
  computing, so each sample weighs the time since the previous one, not 1.
- ``GcTimer`` adds up the time the cyclic garbage collector runs, which no profiler
  attributes to a function but which grows with the number of live objects.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Final

_ROOT: Final = Path(__file__).resolve().parent.parent
OURS: Final = (str(_ROOT / "streams"), str(_ROOT / "schemas"))


def _label(frame: FrameType) -> str:
    code = frame.f_code
    if code is _GC_CALLBACK:
        # The first Python code to run after a collection is GcTimer's callback: a sample
        # landing there measures the collector.
        return "(garbage collection)"
    name = getattr(code, "co_qualname", code.co_name)
    filename = code.co_filename
    if filename.startswith(str(_ROOT)):
        filename = str(Path(filename).relative_to(_ROOT))
    else:
        filename = Path(filename).name
    return f"{filename}:{name}"


class Sampler:
    """Samples the calling thread's stack from a background thread while in ``with``."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self.interval_s = interval_s
        self.samples = 0
        self.seconds = 0.0
        self.own: defaultdict[str, float] = defaultdict(float)  # label -> seconds
        self.inclusive: defaultdict[str, float] = defaultdict(float)
        self._target = threading.get_ident()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        # A new thread per ``with``, so one Sampler can add up several phases.
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        # Sleeping releases the GIL; taking it back waits for the main thread's switch
        # interval (5 ms by default), which paces the samples and keeps the cost low.
        last = time.perf_counter()
        while not self._stop.wait(self.interval_s):
            frame = sys._current_frames().get(self._target)
            now = time.perf_counter()
            weight, last = now - last, now
            if frame is None:
                continue
            self.samples += 1
            self.seconds += weight
            self.own[_label(frame)] += weight
            if frame.f_code is _GC_CALLBACK:
                # A collection runs wherever an allocation happens to trigger it; charging
                # it to the functions on the stack would blame them for the whole heap.
                continue
            seen = set()
            while frame is not None:
                if frame.f_code.co_filename.startswith(OURS):
                    seen.add(_label(frame))
                frame = frame.f_back
            for label in seen:
                self.inclusive[label] += weight

    def report(self, top: int = 12) -> str:
        """The commonest innermost functions and project functions on the stack, in %."""
        if not self.samples:
            return "  (no samples)"
        total = self.seconds
        rows = [f"  {self.samples} samples over {total:.1f} s, weighted by time"]
        rows.append(f"  {'self %':>7}  innermost Python function (with the C code it calls)")
        for name, seconds in _largest(self.own, top):
            rows.append(f"  {100 * seconds / total:7.1f}  {name}")
        rows.append(f"  {'incl %':>7}  project function on the stack (garbage collection aside)")
        for name, seconds in _largest(self.inclusive, top):
            rows.append(f"  {100 * seconds / total:7.1f}  {name}")
        return "\n".join(rows)


def _largest(seconds: dict[str, float], top: int) -> list[tuple[str, float]]:
    return sorted(seconds.items(), key=lambda item: -item[1])[:top]


class GcTimer:
    """Seconds spent in the cyclic garbage collector, and collections per generation."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections: Counter[int] = Counter()
        self._started = 0.0

    def __enter__(self) -> GcTimer:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


_GC_CALLBACK: Final = GcTimer._callback.__code__
