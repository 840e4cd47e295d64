"""The dashboard's numbers: pure aggregation over records, with no Kafka and no clock.

``streams.dashboard.server`` reads the topics and hands every record to a :class:`Board`
with the record's own timestamp; the page asks the board for a :meth:`Board.summary` at
an instant it passes in. What each panel means is in ``docs/dashboard.md``.

Memory stays bounded whatever the traffic: counts live in at most ``BUCKETS`` time
buckets per lookback (per rule and metric inside each), ids are remembered in
first-in-first-out windows, and lists are short deques.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson
from cachetools import FIFOCache

from schemas.aggregates import PAGE_DWELL
from schemas.instants import format_instant
from schemas.invitations import Suppression
from streams.core.dwell import Key, PageWindow, decode_key
from streams.kafka.consumer import SeenIds

BUCKETS: Final = 60  # the lookback is counted in this many buckets
MAX_DWELL_KEYS: Final = 20_000  # pages x windows held; the oldest windows go first
RESPONSE_MARK: Final = b"invitation_response"
SHOWN, ACCEPTED, DECLINED, DISMISSED = 1, 2, 4, 8
_FLAG: Final = {"accepted": ACCEPTED, "declined": DECLINED, "dismissed": DISMISSED}
FUNNEL_KEYS: Final = ("matched", "invited", "holdout", "shadow", "shown", "accepted",
                      "declined", "dismissed")  # fmt: skip


class WindowedCounts:
    """Counts by key in time buckets; buckets older than the lookback are forgotten."""

    def __init__(self, lookback_ms: int, buckets: int = BUCKETS) -> None:
        self.lookback_ms = lookback_ms
        self.bucket_ms = max(1000, -(-lookback_ms // buckets))
        self.max_buckets = buckets + 2
        self._buckets: dict[int, Counter[tuple[str, str]]] = {}

    def add(self, at_ms: int, key: tuple[str, str], n: int = 1) -> None:
        start = at_ms - at_ms % self.bucket_ms
        bucket = self._buckets.get(start)
        if bucket is None:
            bucket = self._buckets[start] = Counter()
            if len(self._buckets) > self.max_buckets:  # clock skew: drop the oldest
                del self._buckets[min(self._buckets)]
        bucket[key] += n

    def totals(self, now_ms: int) -> Counter[tuple[str, str]]:
        """The counts of the buckets that overlap the lookback ending at ``now_ms``."""
        horizon = now_ms - self.lookback_ms
        for start in [s for s in self._buckets if s + self.bucket_ms <= horizon]:
            del self._buckets[start]
        total: Counter[tuple[str, str]] = Counter()
        for bucket in self._buckets.values():
            total.update(bucket)
        return total

    def __len__(self) -> int:
        return len(self._buckets)


class Funnel:
    """The per-rule funnel's counts over the lookback and, optionally, a longer one."""

    def __init__(self, lookback_ms: int, long_lookback_ms: int | None) -> None:
        self.short = WindowedCounts(lookback_ms)
        self.long = WindowedCounts(long_lookback_ms) if long_lookback_ms else None

    def add(self, at_ms: int, key: tuple[str, str], n: int = 1) -> None:
        self.short.add(at_ms, key, n)
        if self.long is not None:
            self.long.add(at_ms, key, n)

    def totals(self, now_ms: int, *, long: bool = False) -> Counter[tuple[str, str]]:
        counts = self.long if long and self.long is not None else self.short
        return counts.totals(now_ms)

    def __len__(self) -> int:
        return len(self.short)


def rate(samples: Iterable[tuple[int, int]]) -> list[float]:
    """Per-second rates between consecutive (instant ms, end offset total) samples."""
    out, previous = [], None
    for at, total in samples:
        if previous is not None and at > previous[0]:
            # A topic deleted and re-created restarts its offsets: not a negative rate.
            out.append(round(max(0, total - previous[1]) * 1000 / (at - previous[0]), 2))
        previous = (at, total)
    return out


def lag_rows(
    committed: Mapping[tuple[str, int], int | None],
    ends: Mapping[tuple[str, int], int],
    starts: Mapping[tuple[str, int], int] | None = None,
) -> list[dict[str, Any]]:
    """One row per partition: the group's committed offset, the end offset, the lag.

    A partition the group never committed is read from its start (the worker's
    ``auto_offset_reset`` is earliest), so its lag is all it holds: end minus the
    ``starts`` offset, or minus 0 when that is unknown. Counting it as no lag would let a
    partition the worker has not reached yet pass as caught up."""
    rows = []
    for tp in sorted(set(committed) | set(ends)):
        done, end = committed.get(tp), ends.get(tp)
        read_from = done if done is not None else (starts or {}).get(tp, 0)
        lag = None if end is None else max(0, end - read_from)
        topic, partition = tp
        rows.append({"topic": topic, "partition": partition, "committed": done, "end": end,
                     "lag": lag})  # fmt: skip
    return rows


def why(context: Mapping[str, Any]) -> str:
    """The facts an invitation fired on, in one line: ``dwell 31 s · 3 pages · …``."""
    parts = []
    if (dwell := context.get("dwell_seconds")) is not None:
        parts.append(f"dwell {dwell:g} s")
    if (session := context.get("session_seconds")) is not None:
        parts.append(f"session {session:g} s")
    if pages := context.get("pages_in_session"):
        parts.append(f"{pages} page{'s' if pages != 1 else ''}")
    if scroll := context.get("scroll_pct"):
        parts.append(f"scroll {scroll:g}%")
    if events := context.get("page_events"):
        parts.append("events " + ", ".join(map(str, events)))
    if audience := context.get("audience"):
        parts.append(", ".join(f"{k}={v}" for k, v in audience.items()))
    return " · ".join(parts)


class _Tracked:
    """An invitation the funnel knows: its rule and the responses counted so far."""

    __slots__ = ("flags", "rule_id")

    def __init__(self, rule_id: str) -> None:
        self.rule_id, self.flags = rule_id, 0


class Board:
    """Everything the dashboard shows, fed record by record."""

    def __init__(
        self,
        lookback_ms: int,
        *,
        remembered: int = 200_000,
        latest: int = 20,
        dlq_latest: int = 10,
        samples: int = 60,
        dwell_windows: int = 5,
        top_pages: int = 10,
        long_lookback_ms: int | None = None,
    ) -> None:
        self.lookback_ms = lookback_ms
        self.remembered = remembered
        self.long_lookback_ms = long_lookback_ms
        # (rule_id, metric) -> n, over the lookback and, for the console, a longer one
        self.funnel = Funnel(lookback_ms, long_lookback_ms)
        self.dlq = WindowedCounts(lookback_ms)  # ("dlq", reason) -> n
        self.decisions_seen = SeenIds(remembered)
        self.invitations_seen = SeenIds(remembered)
        # First in, first out: the oldest invitation is forgotten first, however often read.
        self.tracked: FIFOCache[str, _Tracked] = FIFOCache(maxsize=remembered)
        # Responses read before their invitation (so before their rule).
        self.early: FIFOCache[str, list[tuple[int, str]]] = FIFOCache(maxsize=remembered // 10)
        self.latest: deque[dict[str, Any]] = deque(maxlen=latest)
        self.dead: deque[dict[str, Any]] = deque(maxlen=dlq_latest)
        self.samples: dict[str, deque[tuple[int, int]]] = {}
        self.max_samples = samples
        self.lag: list[dict[str, Any]] = []
        self.dwell: dict[Key, tuple[str, PageWindow]] = {}  # window_end, the aggregate
        self.dwell_windows, self.top_n = dwell_windows, top_pages
        self.unreadable: Counter[str] = Counter()

    # --- beckon.decisions --------------------------------------------------------------
    def decision(self, at_ms: int, value: bytes | None) -> None:
        d = self._json(value, "decisions")
        if d is None or not isinstance(d.get("rule_id"), str):
            return
        if not self.decisions_seen.add(str(d.get("invitation_id"))):
            return  # a copy written again after a worker crash
        rule = d["rule_id"]
        self.funnel.add(at_ms, (rule, "matched"))
        outcome = d.get("outcome")
        if outcome == "invited":
            self.funnel.add(at_ms, (rule, "invited"))
            self._track(str(d.get("invitation_id")), rule)
        elif outcome == "shadow" and d.get("reason") is None:
            self.funnel.add(at_ms, (rule, "shadow"))  # would have invited; nothing was sent
        else:
            # A shadow rule's would-be reasons count here too, but not as a holdout: the
            # holdout column is the control group of invitations really sent.
            reason = str(d.get("reason"))
            self.funnel.add(at_ms, (rule, "suppressed:" + reason))
            if reason == Suppression.HOLDOUT and outcome != "shadow":
                self.funnel.add(at_ms, (rule, "holdout"))

    # --- beckon.invitations ------------------------------------------------------------
    def invitation(self, at_ms: int, value: bytes | None) -> None:
        i = self._json(value, "invitations")
        if i is None or not isinstance(i.get("rule_id"), str):
            return
        if not self.invitations_seen.add(str(i.get("invitation_id"))):
            return
        self._track(str(i.get("invitation_id")), i["rule_id"])
        context = i.get("context")
        fields = ("invitation_id", "triggered_at", "rule_id", "visitor_id", "site_id", "url",
                  "queue", "priority", "message", "locale")  # fmt: skip
        reasons = why(context) if isinstance(context, dict) else ""
        self.latest.appendleft({**{k: i.get(k) for k in fields}, "why": reasons})

    def _track(self, invitation_id: str, rule_id: str) -> None:
        if invitation_id in self.tracked:
            return
        self.tracked[invitation_id] = _Tracked(rule_id)
        for at_ms, response in self.early.pop(invitation_id, ()):
            self._respond(at_ms, invitation_id, response)

    # --- beckon.clickstream: invitation_response events only ------------------------------
    def click(self, at_ms: int, value: bytes | None) -> None:
        if value is None or RESPONSE_MARK not in value:
            return  # the cheap test: most events are never decoded
        e = self._json(value, "clickstream")
        if e is None or e.get("type") != "invitation_response":
            return
        invitation_id, response = e.get("invitation_id"), e.get("response")
        if not isinstance(invitation_id, str) or not isinstance(response, str):
            return
        if invitation_id in self.tracked:
            self._respond(at_ms, invitation_id, response)
        elif self.early.maxsize:  # its invitation is not read yet, or is older than the lookback
            self.early.setdefault(invitation_id, []).append((at_ms, response))

    def _respond(self, at_ms: int, invitation_id: str, response: str) -> None:
        tracked = self.tracked[invitation_id]
        # Any response means the visitor saw it; each response counts once per invitation.
        for flag, metric in ((SHOWN, "shown"), (_FLAG.get(response, 0), response)):
            if flag and not tracked.flags & flag:
                tracked.flags |= flag
                self.funnel.add(at_ms, (tracked.rule_id, metric))

    # --- beckon.clickstream.dlq --------------------------------------------------------
    def dead_letter(
        self, at_ms: int, key: bytes | None, value: bytes | None, headers: Iterable[Any]
    ) -> None:
        meta = {name: raw.decode(errors="replace") for name, raw in headers if raw is not None}
        reason = meta.get("beckon.reason", "unknown")
        self.dlq.add(at_ms, ("dlq", reason))
        self.dead.appendleft({
            "at": format_instant(at_ms), "reason": reason, "error": meta.get("beckon.error", ""),
            "source": meta.get("beckon.source", ""),
            "key": (key or b"").decode(errors="replace")[:200],
            "value": (value or b"")[:160].decode(errors="replace"),
        })  # fmt: skip

    # --- beckon.dwell ------------------------------------------------------------------
    def dwell_record(self, key: bytes | None, value: bytes | None) -> None:
        try:
            k = decode_key(key or b"")
        except (ValueError, TypeError):
            self.unreadable["dwell"] += 1
            return
        if value is None:
            self.dwell.pop(k, None)  # a tombstone: the window left retention
            return
        try:
            # The contract's model reads it; a ValidationError is a ValueError too.
            record = PAGE_DWELL.validate_json(value)
            window = PageWindow.from_record(record.model_dump())
        except ValueError:
            self.unreadable["dwell"] += 1
            return
        self.dwell[k] = (record.window_end, window)
        if len(self.dwell) > MAX_DWELL_KEYS:
            self._prune_dwell(keep=self.dwell_windows)

    def _windows(self) -> list[int]:
        return sorted({k[2] for k in self.dwell}, reverse=True)

    def _prune_dwell(self, keep: int) -> None:
        kept = set(self._windows()[:keep])
        self.dwell = {k: v for k, v in self.dwell.items() if k[2] in kept}

    def top_pages(self) -> dict[str, Any]:
        """The pages with the most dwell over the latest ``dwell_windows`` windows."""
        self._prune_dwell(keep=self.dwell_windows)
        windows = self._windows()
        merged: dict[tuple[str, str], PageWindow] = {}
        for (site_id, page, _), (_, part) in self.dwell.items():
            merged.setdefault((site_id, page), PageWindow()).merge(part)
        top = sorted(merged.items(), key=lambda kv: (-kv[1].dwell_ms, kv[0]))[: self.top_n]
        ends = [end for end, _ in self.dwell.values()]
        return {
            "from": format_instant(windows[-1]) if windows else None,
            "to": max(ends) if ends else None,
            "windows": len(windows),
            "pages": [{"site_id": s, "page": p, "dwell_ms": a.dwell_ms,
                       "page_views": a.page_views, "typical_dwell_ms": a.typical_dwell_ms()}
                      for (s, p), a in top],
        }  # fmt: skip

    # --- end offsets and the worker group's lag -------------------------------------------
    def end_offsets(self, at_ms: int, name: str, total: int) -> None:
        """A sample of a topic's end offsets, summed over its partitions, under ``name``."""
        samples = self.samples.setdefault(name, deque(maxlen=self.max_samples))
        samples.append((at_ms, total))

    def rates(self) -> dict[str, dict[str, Any]]:
        """Per name: the latest rate (per second), the recent ones, the end offsets total."""
        out = {}
        for name, samples in self.samples.items():
            series = rate(samples)
            out[name] = {"per_s": series[-1] if series else None, "series": series,
                         "total": samples[-1][1]}  # fmt: skip
        return out

    def set_lag(self, rows: list[dict[str, Any]]) -> None:
        self.lag = rows

    # --- the page's JSON ----------------------------------------------------------------
    def funnel_rows(self, now_ms: int, *, long: bool = False) -> list[dict[str, Any]]:
        """Per rule: matched, suppressed by reason, invited, holdout, shadow (would have
        invited), shown, responses (``long``: over the long lookback, if the board has one)."""
        rows: dict[str, dict[str, Any]] = {}
        for (rule, metric), n in self.funnel.totals(now_ms, long=long).items():
            row = rows.setdefault(rule, {"rule_id": rule, **dict.fromkeys(FUNNEL_KEYS, 0),
                                         "suppressed": {}})  # fmt: skip
            if metric.startswith("suppressed:"):
                row["suppressed"][metric.removeprefix("suppressed:")] = n
            else:
                row[metric] = n
        for row in rows.values():
            row["suppressed"] = dict(sorted(row["suppressed"].items()))
            row["acceptance"] = _ratio(row["accepted"], row["shown"])
            row["holdout_share"] = _ratio(row["holdout"], row["holdout"] + row["invited"])
        return sorted(rows.values(), key=lambda r: (-r["matched"], r["rule_id"]))

    def summary(self, now_ms: int) -> dict[str, Any]:
        funnel = self.funnel_rows(now_ms)
        totals: dict[str, Any] = {k: sum(r[k] for r in funnel) for k in FUNNEL_KEYS}
        suppressed: Counter[str] = Counter()
        for row in funnel:
            suppressed.update(row["suppressed"])
        totals["suppressed"] = dict(sorted(suppressed.items()))
        totals["acceptance"] = _ratio(totals["accepted"], totals["shown"])
        dlq = {reason: n for (_, reason), n in sorted(self.dlq.totals(now_ms).items())}
        lagging = [r["lag"] for r in self.lag if r["lag"] is not None]
        return {
            "now": format_instant(now_ms),
            "lookback_s": self.lookback_ms / 1000,
            "rates": self.rates(),
            "funnel": funnel,
            "totals": totals,
            "dlq": {"total": sum(dlq.values()), "by_reason": dlq, "latest": list(self.dead)},
            "lag": {"total": sum(lagging), "partitions": self.lag},
            "top_pages": self.top_pages(),
            "latest_invitations": list(self.latest),
            "unreadable": dict(self.unreadable),
        }

    def _json(self, value: bytes | None, topic: str) -> dict[str, Any] | None:
        try:
            data = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            self.unreadable[topic] += 1
            return None
        return data


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
