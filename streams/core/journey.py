"""One visitor's journey: sessions, the current page, presence, profile and history.

Plain Python over plain values: no Faust, no Kafka, no clock reads. ``apply`` folds one
event into a Journey; the rule engine (``streams.core.engine``) reads it to decide when rules
fire. A Journey serialises to a dict of JSON values (``to_dict``/``from_dict``) so the
worker can keep it in a changelogged table.

Bounds, so one visitor's state stays small whatever it sends:
- ``MAX_SEEN_IDS`` (256) most recent event ids are remembered to ignore duplicates; a
  copy of an older event is applied again.
- ``MAX_PAGES`` (100) most recent page views of the session are kept for ``journey``
  triggers, each a URL and an instant; ``page_count`` still counts every page view.
- ``MAX_RECENT`` (32) most recent invitations are remembered to attribute a decline to
  its rule; a decline of an older invitation is not attributed.
"""

from __future__ import annotations

from typing import Any, Final, TypeVar

from schemas.events import (
    ClickEvent,
    Custom,
    ExitIntent,
    InvitationResponse,
    PageLeave,
    PagePing,
    PageView,
    Scroll,
)
from schemas.journeys import JOURNEY_PAGES
from streams.core.matching import strip_url
from streams.core.profile import (
    device_of,
    known_device,
    landing_attributes,
    remember_device,
    user_agent_key,
)

MAX_SEEN_IDS: Final = 256
MAX_PAGES: Final = JOURNEY_PAGES  # the rules refuse a count above it
MAX_RECENT: Final = 32

_K = TypeVar("_K")
_V = TypeVar("_V")


class Journey:
    """The state of one visitor, updated in place by :func:`apply` and the engine.

    The drivers own it: the worker writes the whole value back to its table after each
    step (``table[key] = journey``), which is what Faust changelogs.
    """

    __slots__ = (
        "answered",
        "answers",
        "attributes",
        "clock",
        "declined",
        "device",
        "engaged",
        "entered",
        "fired",
        "landing",
        "last_seen",
        "last_sent",
        "left",
        "page_count",
        "page_events",
        "page_ms",
        "pages",
        "path",
        "pending",
        "pending_version",
        "presence_ms",
        "recent",
        "scroll",
        "seen_ids",
        "sent_day",
        "sent_session",
        "session_id",
        "session_start",
        "site_id",
        "ua_key",
        "url",
        "viewed",
        "visitor_id",
        "visits",
    )

    def __init__(self, visitor_id: str, site_id: str) -> None:
        self.visitor_id = visitor_id
        self.site_id = site_id
        self.clock = -1  # latest event time applied (epoch ms)
        self.last_seen = -1  # time of the latest event, for presence
        # how long each event keeps the visitor present: the session's latest presence_s,
        # or -1 for the engine's presence timeout (journeys saved before it have none)
        self.presence_ms = -1
        self.seen_ids: dict[str, None] = {}  # insertion-ordered, bounded
        # session
        self.session_id: str | None = None
        self.session_start = -1
        self.visits = 0
        self.pages: list[str] = []  # stripped URLs of this session's page views
        # when each of them was viewed, ms after session_start; -1: unknown (a journey
        # saved before these were kept)
        self.page_ms: list[int] = []
        self.page_count = 0
        self.landing: dict[str, str] = {}  # utm_*, referrer_host of the session
        # the current page (None before the session's first page_view)
        self.url: str | None = None
        self.path: str | None = None  # url without query and fragment
        self.entered = -1
        self.left = False
        self.scroll = 0.0
        self.page_events: list[str] = []  # exit_intent and custom event names on this page
        self.fired: list[str] = []  # rules that fired on this page view
        # dwell aggregates (streams.core.dwell): presence on this page view so far, and the
        # pages viewed in the latest window [window start, [pages]]
        self.engaged = 0
        self.viewed: list[Any] = []
        # profile
        self.attributes: dict[str, Any] = {}
        self.device: str | None = None
        # user_agent_key of a user agent whose device is ``device`` (see _set_device)
        self.ua_key: int | None = None
        # history, for frequency limits
        # rule id (or shadow_key of a shadow rule's id) -> invitations this session, and
        # -> [local date, count]
        self.sent_session: dict[str, int] = {}
        self.sent_day: dict[str, list[Any]] = {}
        self.last_sent = -1  # time of the latest invitation to this visitor
        self.recent: dict[str, str] = {}  # invitation id -> rule id, bounded
        self.declined: dict[str, int] = {}  # rule id -> time of the latest decline
        # the widget's answers: rule id -> {response: count}, and which were counted
        self.answers: dict[str, dict[str, int]] = {}
        self.answered: dict[str, None] = {}  # "invitation id/response", bounded
        # when rules can fire next: [(instant, rule id)], computed under pending_version
        self.pending: list[tuple[int, str]] = []
        self.pending_version: str | None = None

    def profile(self) -> dict[str, Any]:
        """What audience predicates read: the visitor's attributes and the derived ones."""
        derived: dict[str, Any] = {"visits": self.visits, **self.landing}
        if self.device is not None:
            derived["device"] = self.device
        # Derived values are facts Beckon computed; a visitor cannot overwrite them.
        return {**self.attributes, **derived}

    def presence(self, default_ms: int) -> int:
        """How long the latest event keeps the visitor present: the window its events
        set (``presence_s``), else ``default_ms``, the engine's presence timeout."""
        return self.presence_ms if self.presence_ms >= 0 else default_ms

    def present_until(self, presence_ms: int) -> int:
        """The last instant at which the visitor counts as present, or -1 when absent;
        ``presence_ms`` is the engine's timeout, for a visitor that set no window."""
        if self.path is None or self.left or self.last_seen < 0:
            return -1
        return self.last_seen + (self.presence_ms if self.presence_ms >= 0 else presence_ms)

    # --- storage ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__slots__}
        out["seen_ids"] = list(self.seen_ids)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Journey:
        journey = cls(data["visitor_id"], data["site_id"])
        for name in cls.__slots__:
            if name in data:
                setattr(journey, name, data[name])
        journey.seen_ids = dict.fromkeys(data.get("seen_ids", ()))
        journey.pending = [(int(t), r) for t, r in data.get("pending", ())]
        # Saved before page_ms existed: those page views' times are unknown.
        unknown = len(journey.pages) - len(journey.page_ms)
        if unknown > 0:
            journey.page_ms = [-1] * unknown + journey.page_ms
        return journey

    def __repr__(self) -> str:
        return (
            f"Journey({self.visitor_id!r}, session={self.session_id!r}, page={self.path!r}, "
            f"clock={self.clock})"
        )


def _put_bounded(items: dict[_K, _V], key: _K, value: _V, limit: int) -> None:
    """Set ``items[key]``, then forget the oldest entries beyond ``limit``.

    "Oldest" is by first insertion (a dict's order: setting a key again does not move it).
    The journey's windows are plain dicts because they are saved with it."""
    items[key] = value
    if len(items) > limit:
        del items[next(iter(items))]


def is_duplicate(journey: Journey, event_id: str) -> bool:
    """Remember ``event_id``; True if it was seen recently (the event is to be ignored)."""
    if event_id in journey.seen_ids:
        return True
    _put_bounded(journey.seen_ids, event_id, None, MAX_SEEN_IDS)
    return False


def starts_session(journey: Journey, event: ClickEvent, t: int, session_gap_ms: int) -> bool:
    """Whether ``event`` at ``t`` opens a new session for this visitor."""
    if journey.session_id is None:
        return True
    if event.session_id is not None:
        return event.session_id != journey.session_id
    return t - journey.last_seen > session_gap_ms


def new_session(journey: Journey, event: ClickEvent, t: int) -> None:
    """Open a session at ``t``: its own pages, current page and per-session counts."""
    journey.session_id = event.session_id or f"{journey.visitor_id}.{t}"
    journey.session_start = t
    journey.visits += 1
    journey.pages = []
    journey.page_ms = []
    journey.page_count = 0
    journey.landing = {}
    journey.url = journey.path = None
    journey.entered = -1
    journey.left = False
    journey.scroll = 0.0
    journey.page_events = []
    journey.fired = []
    journey.sent_session = {}
    journey.pending = []
    journey.presence_ms = -1  # a window lasts a session: a site may change its policy


def _set_device(journey: Journey, user_agent: str) -> bool:
    """Set the visitor's device from ``user_agent``; True if it changed.

    device-detector takes ~15 ms a user agent this process has not seen, and a worker
    that restarts or takes over partitions has seen none: the journey keeps the key of
    a user agent whose device it holds, so a returning visitor's is not parsed again.
    ``ua_key`` is only recomputed when the process does not know the user agent or the
    device changes, and it always names a user agent whose device is ``device``."""
    device = known_device(user_agent)
    if device is None:
        key = user_agent_key(user_agent)
        if key == journey.ua_key and journey.device is not None:
            device = remember_device(user_agent, journey.device)
        else:
            device = device_of(user_agent)
            journey.ua_key = key
    elif device != journey.device:
        journey.ua_key = user_agent_key(user_agent)
    changed = device != journey.device
    journey.device = device
    return changed


def _on_current_page(journey: Journey, url: str | None) -> bool:
    # Page-scoped events count for the current page; an event from another page (another
    # tab, a lost page_view) must not move this page's scroll, events or presence.
    return journey.path is not None and (url is None or strip_url(url) == journey.path)


def apply(journey: Journey, event: ClickEvent, t: int) -> bool:
    """Fold ``event`` (at instant ``t``) into the journey; the session is already current.

    Returns True when the event changed what rules see beyond presence (a page, scroll,
    page events, the profile), so the engine must recompute when rules can fire.
    """
    journey.clock = t
    journey.last_seen = t
    if event.presence_s is not None:
        # Kept for the events that come without one (the widget's answers, a server's
        # identify), so they do not cut a silent tracker's window short.
        journey.presence_ms = event.presence_s * 1000
    changed = False
    if event.attributes:
        journey.attributes.update(event.attributes)
        changed = True
    if event.user_agent is not None:
        changed = _set_device(journey, event.user_agent) or changed
    if isinstance(event, PageView):
        _enter_page(journey, event, t)
        return True
    if isinstance(event, PagePing):
        return changed
    if isinstance(event, InvitationResponse):
        return changed  # counted by respond(), before apply
    if not _on_current_page(journey, event.url):
        return changed
    if isinstance(event, PageLeave):
        journey.left = True
        return True
    if isinstance(event, Scroll):
        if event.scroll_pct > journey.scroll:
            journey.scroll = event.scroll_pct
            return True
        return changed
    if isinstance(event, ExitIntent | Custom):
        name = event.name if isinstance(event, Custom) else "exit_intent"
        if name not in journey.page_events:
            journey.page_events.append(name)
            return True
    return changed


def _enter_page(journey: Journey, event: PageView, t: int) -> None:
    journey.url = event.url
    journey.path = strip_url(event.url)
    journey.entered = t
    journey.left = False
    journey.scroll = 0.0
    journey.page_events = []
    journey.fired = []
    journey.pages.append(journey.path)
    journey.page_ms.append(t - journey.session_start)
    if len(journey.pages) > MAX_PAGES:
        del journey.pages[0]
        del journey.page_ms[0]
    journey.page_count += 1
    if journey.page_count == 1:
        journey.landing = landing_attributes(event.url, event.referrer)


def respond(journey: Journey, event: InvitationResponse, t: int) -> str | None:
    """Count the widget's answer to one of the visitor's recent invitations.

    Returns the invitation's rule id when the answer is counted; None when the invitation
    is not among the recent ones or this answer to it was counted already (the delivery
    service and the widget may both report ``shown``).
    """
    rule_id = journey.recent.get(event.invitation_id)
    if rule_id is None:
        return None
    key = f"{event.invitation_id}/{event.response}"
    if key in journey.answered:
        return None
    _put_bounded(journey.answered, key, None, 4 * MAX_RECENT)
    counts = journey.answers.setdefault(rule_id, {})
    counts[event.response] = counts.get(event.response, 0) + 1
    if event.response == "declined":
        journey.declined[rule_id] = t
    return rule_id


def remember_sent(journey: Journey, invitation_id: str, rule_id: str, t: int, day: str) -> None:
    """Record an invitation sent at ``t`` (``day``: its local date in the rule's zone)."""
    journey.last_sent = t
    remember_would_send(journey, rule_id, day)
    _put_bounded(journey.recent, invitation_id, rule_id, MAX_RECENT)


def remember_would_send(journey: Journey, key: str, day: str) -> None:
    """Count one invitation under ``key`` in the per-session and per-day counts, and
    nothing else: a shadow rule's would-be send, under its own key (``shadow_key``)."""
    journey.sent_session[key] = journey.sent_session.get(key, 0) + 1
    previous = journey.sent_day.get(key)
    count = previous[1] + 1 if previous and previous[0] == day else 1
    journey.sent_day[key] = [day, count]


def shadow_key(rule_id: str) -> str:
    """Where a shadow rule's would-be sends are counted: apart from its live sends, so a
    rule promoted from shadow to live starts with the counts of what was really sent.
    Rule ids are ``[a-z0-9-]+``, so this key is never a rule id."""
    return "shadow:" + rule_id
