"""Which sites the collector accepts: their browser origins, keys and rate limits.

The sites file (``BECKON_COLLECTOR_SITES``, YAML or JSON)::

    sites:
      shop:                                   # the site_id events carry
        origins: ["https://shop.example", "https://*.shop.example"]
        keys: ["pk_shop_3f9a"]                # Beckon key header / Segment write key
        rate_per_s: 200                       # events per second, token bucket ...
        burst: 1000                           # ... holding this many at most
        presence_s: {snowplow: 600}           # how long an event keeps a visitor present

Without a file (development) every site and every origin is accepted and nothing is
limited. Time comes in as an argument (``now``, monotonic seconds), never read here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas import _problems
from schemas.errors import ConfigError
from schemas.events import PresenceS

_ORIGIN: Final = re.compile(
    r"\*|https?://(\*\.)?([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:\d{1,5})?"
)
_SETTING: Final = "BECKON_COLLECTOR_SITES (--collector-sites)"

Key = Annotated[str, StringConstraints(min_length=8, max_length=200)]
Protocol = Literal["beckon", "snowplow", "segment"]


class SiteConfig(BaseModel):
    """One site's entry in the sites file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origins: tuple[str, ...] = ()
    keys: tuple[Key, ...] = Field((), repr=False)
    rate_per_s: float | None = Field(None, gt=0)
    burst: int | None = Field(None, ge=1)
    # The events' presence_s by protocol, for trackers that do not ping while the page
    # is visible (docs/collector.md, "Presence"); none: the engine's presence timeout.
    presence_s: dict[Protocol, PresenceS] = Field(default_factory=dict)

    @field_validator("origins")
    @classmethod
    def _origins_are_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if not _ORIGIN.fullmatch(origin.lower()):
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port] without a "
                    "path, e.g. 'https://shop.example', 'https://*.shop.example' or '*'"
                )
        return tuple(origin.lower() for origin in origins)

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> SiteConfig:
        if self.burst is not None and self.rate_per_s is None:
            raise ValueError("burst needs rate_per_s")
        return self


class SitesFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sites: dict[Annotated[str, StringConstraints(min_length=1, max_length=200)], SiteConfig]


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, ``burst`` at most; one token per event."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def wait_s(self, n: int, now: float) -> float:
        """0 when ``n`` tokens are there now, else the seconds until they will be."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return 0.0 if self.tokens >= n else (n - self.tokens) / self.rate


class Sites:
    """The sites file, read once; ``None`` config means development (everything open)."""

    def __init__(self, config: Mapping[str, SiteConfig] | None) -> None:
        self.config = dict(config) if config is not None else None
        self._by_key = {key: site for site, c in (config or {}).items() for key in c.keys}
        self._presence: dict[str, dict[str, int]] = {}
        for site, c in (config or {}).items():
            for protocol, seconds in c.presence_s.items():
                self._presence.setdefault(protocol, {})[site] = seconds
        self._buckets: dict[str, TokenBucket] = {}

    @classmethod
    def load(cls, path: Path | None) -> Sites:
        """Read a sites file (None: development); raises ConfigError naming the fault."""
        if path is None:
            return cls(None)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            parsed = SitesFile.model_validate(data)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{_SETTING}: cannot read {path}: {exc}") from exc
        except ValidationError as exc:
            faults = "; ".join(f"{p}: {m}" for p, m in _problems.problems(exc))
            raise ConfigError(f"{_SETTING}: {path}: {faults}") from exc
        keys = [key for c in parsed.sites.values() for key in c.keys]
        if len(keys) != len(set(keys)):
            raise ConfigError(f"{_SETTING}: {path}: a key belongs to one site only")
        return cls(parsed.sites)

    @property
    def development(self) -> bool:
        return self.config is None

    def site_of_key(self, key: str) -> str | None:
        """The site a key (e.g. a Segment write key) belongs to; in development, the key."""
        return key if self.config is None else self._by_key.get(key)

    def presence_s(self, protocol: str) -> Mapping[str, int]:
        """site -> the ``presence_s`` its events of ``protocol`` get (sites without one
        are left out; in development, none)."""
        return self._presence.get(protocol, {})

    def origin_allowed(self, origin: str, site: str | None = None) -> bool:
        """Whether a browser origin may post for ``site`` (for any site when None)."""
        if self.config is None:
            return True
        configs = self.config.values() if site is None else [self.config.get(site)]
        origin = origin.lower()
        return any(c is not None and _matches(origin, c.origins) for c in configs)

    def refusal(
        self, site: str, key: str | None, origin: str | None, check_key: bool = True
    ) -> tuple[str, str] | None:
        """Why a request may not write events of ``site``: ``(what, reason)`` where what
        is ``"site"``, ``"key"`` or ``"origin"``; None when it may.

        A site that lists keys needs one of them (unless ``check_key`` is off: Snowplow
        trackers cannot send one); a request from a browser (with an Origin) needs an
        origin the site lists.
        """
        if self.config is None:
            return None
        config = self.config.get(site)
        if config is None:
            return "site", f"{site!r} is not a site of this collector"
        if check_key and config.keys and key not in config.keys:
            why = f"site {site!r} needs one of its keys" if key is None else "wrong key"
            return "key", why
        if origin is not None and not _matches(origin.lower(), config.origins):
            return "origin", f"origin {origin!r} may not send events of site {site!r}"
        return None

    def take(self, counts: Mapping[str, int], now: float) -> tuple[str, float] | None:
        """Take one token per event from each site's bucket, all or none.

        Returns None when taken, else ``(site, seconds to wait)`` for the first site short
        of tokens; a wait of ``inf`` means the request is larger than the site's burst.
        """
        buckets = [(site, n, self._bucket(site, now)) for site, n in counts.items()]
        for site, n, bucket in buckets:
            if bucket is None:
                continue
            if n > bucket.burst:
                return site, math.inf
            wait = bucket.wait_s(n, now)
            if wait > 0:
                return site, wait
        for _, n, bucket in buckets:
            if bucket is not None:
                bucket.tokens -= n
        return None

    def _bucket(self, site: str, now: float) -> TokenBucket | None:
        config = (self.config or {}).get(site)
        if config is None or config.rate_per_s is None:
            return None
        bucket = self._buckets.get(site)
        if bucket is None:
            burst = float(config.burst or max(1, math.ceil(config.rate_per_s)))
            bucket = self._buckets[site] = TokenBucket(config.rate_per_s, burst, burst, now)
        return bucket


def _matches(origin: str, allowed: tuple[str, ...]) -> bool:
    for pattern in allowed:
        if pattern in ("*", origin):
            return True
        scheme, sep, host = pattern.partition("://*.")
        if sep and origin.startswith(scheme + "://") and origin.endswith("." + host):
            return "/" not in origin[len(scheme) + 3 :]
    return False
