"""The synthetic shop the clickstream browses: pages, popularity, navigation, and visitors'
browsers, countries and traffic sources.

Everything here is fixed data (no randomness at import), so a seed alone decides a stream.
Weights are rough shares of real e-commerce traffic; they only need to be plausible enough
that rules fire at realistic rates and that hot paths see realistic inputs (long user
agents, query strings on landing URLs, a few distinct user agents, many distinct URLs).
"""

from __future__ import annotations

import itertools
import random
from bisect import bisect
from dataclasses import dataclass
from typing import Final

SITE_ID: Final = "shop-example"
ORIGIN: Final = "https://shop.example"

_CATEGORIES: Final = (
    "outdoor", "running", "camping", "audio", "home-office", "kitchen",
    "lighting", "bags", "watches", "kids", "sale", "new-arrivals",
)  # fmt: skip
_PRODUCT_WORDS: Final = (
    ("trail", "summit", "urban", "nomad", "aero", "coast", "alpine", "metro", "zen", "nova"),
    ("backpack", "jacket", "runner", "tent", "bottle", "lamp", "chair", "headphones",
     "watch", "desk", "kettle", "duffel", "speaker", "hoodie", "boots", "stove",
     "mug", "lantern", "sleeping-bag", "sunglasses"),
)  # fmt: skip
_BLOG_POSTS: Final = tuple(f"/blog/{n:02d}-{topic}" for n, topic in enumerate(
    ("packing-list", "winter-hiking", "desk-setup", "coffee-guide", "gift-ideas",
     "trail-running-101", "camp-cooking", "sound-at-home", "lighting-tips", "travel-light")
    * 4,
))  # fmt: skip
_HELP: Final = ("/help", "/help/shipping", "/help/returns", "/help/payment", "/help/sizes")
PRODUCTS: Final = tuple(
    f"/products/{a}-{b}" for b, a in itertools.product(*reversed(_PRODUCT_WORDS))
)  # 200
CATEGORIES: Final = tuple(f"/category/{c}" for c in _CATEGORIES)


def _ranked_pages() -> tuple[str, ...]:
    # A fixed interleaving so popularity mixes page kinds the way a real site's does:
    # the home page first, then hubs, then a long tail of products and posts.
    head = ["/", "/category/sale", "/pricing", "/category/new-arrivals", "/cart", "/search"]
    rest_categories = [c for c in CATEGORIES if c not in head]
    order = random.Random(20251201)  # fixed: the site does not change with the seed
    products, posts = list(PRODUCTS), list(_BLOG_POSTS)
    order.shuffle(products)
    order.shuffle(posts)
    pages = head + rest_categories[:4] + ["/checkout", "/blog", "/login", "/account"]
    tail = [*rest_categories[4:], *posts, *_HELP, "/about", "/contact", *products]
    order.shuffle(tail)
    return tuple(dict.fromkeys(pages + products[:20] + tail))


PAGES: Final = _ranked_pages()
# Zipf (s = 1) over the ranking: the home page gets ~17% of views, a typical product 0.05%.
_PAGE_CUM: Final = tuple(itertools.accumulate(1 / rank for rank in range(1, len(PAGES) + 1)))
_PRODUCT_CUM: Final = tuple(itertools.accumulate(1 / rank for rank in range(1, len(PRODUCTS) + 1)))


def popular_page(rng: random.Random) -> str:
    """Any page, by Zipf popularity."""
    return PAGES[bisect(_PAGE_CUM, rng.random() * _PAGE_CUM[-1])]


def popular_product(rng: random.Random) -> str:
    """A product page, by Zipf popularity over the catalogue."""
    return PRODUCTS[bisect(_PRODUCT_CUM, rng.random() * _PRODUCT_CUM[-1])]


def next_page(rng: random.Random, path: str) -> str | None:
    """Where a visitor on ``path`` goes next, or None when the funnel says they stop."""
    r = rng.random()
    if path.startswith("/products/"):
        if r < 0.12:
            return "/cart"
        if r < 0.50:
            return popular_product(rng)
        if r < 0.62:
            return rng.choice(CATEGORIES)
    elif path.startswith("/category/"):
        if r < 0.65:
            return popular_product(rng)
    elif path == "/cart":
        if r < 0.45:
            return "/checkout"
        if r < 0.75:
            return popular_product(rng)
    elif path == "/checkout":
        if r < 0.50:
            return "/checkout/thank-you"
        if r < 0.65:
            return "/cart"
        if r < 0.75:
            return rng.choice(_HELP[1:])
    elif path == "/checkout/thank-you":
        return None if r < 0.7 else "/account"
    elif path == "/pricing":
        if r < 0.15:
            return "/cart"
        if r < 0.30:
            return "/help/payment"
    elif path.startswith("/blog/"):
        if r < 0.25:
            return popular_product(rng)
        if r < 0.50:
            return rng.choice(_BLOG_POSTS)
    return popular_page(rng)


# Multipliers on the visitor's typical dwell: people read posts and hesitate at checkout.
_DWELL_FACTOR: Final = {"/": 0.6, "/cart": 1.3, "/checkout": 2.0, "/pricing": 1.8}


def dwell_factor(path: str) -> float:
    """How long this kind of page holds a visitor, relative to a typical page."""
    if path.startswith("/products/"):
        return 1.3
    if path.startswith("/blog/"):
        return 2.5
    return _DWELL_FACTOR.get(path, 1.0)


# Custom events a page kind can send (name, probability per view); the rules use some.
CUSTOM_EVENTS: Final = {
    "/products/": (("add_to_cart", 0.10), ("view_reviews", 0.06)),
    "/pricing": (("plan_compare", 0.20),),
    "/checkout": (("coupon_applied", 0.08), ("payment_error", 0.03)),
    "/cart": (("remove_item", 0.05),),
    "/blog/": (("video_play", 0.10),),
}


def custom_events(path: str) -> tuple[tuple[str, float], ...]:
    """The custom events this page can send, with their probability per page view."""
    for prefix, events in CUSTOM_EVENTS.items():
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return events
    return ()


def title(path: str) -> str:
    """A page title, as the tracker reads it from the document."""
    name = path.rstrip("/").rpartition("/")[2].replace("-", " ").title() or "Home"
    return f"{name} | Shop Example"


# --- Visitors -------------------------------------------------------------------------

_UA_DESKTOP: Final = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
_UA_MOBILE: Final = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.6778.81 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
)
_UA_TABLET: Final = (
    "Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.7 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
)
BOT_UA: Final = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@dataclass(frozen=True, slots=True)
class Browser:
    device: str  # what streams.core.profile.device_of says for user_agent
    user_agent: str


BROWSERS: Final = (
    *(Browser("desktop", ua) for ua in _UA_DESKTOP),
    *(Browser("mobile", ua) for ua in _UA_MOBILE),
    *(Browser("tablet", ua) for ua in _UA_TABLET),
)
# desktop 55%, mobile 38%, tablet 7%, split evenly over each class's browsers.
_BROWSER_CUM: Final = tuple(
    itertools.accumulate(
        [0.55 / len(_UA_DESKTOP)] * len(_UA_DESKTOP)
        + [0.38 / len(_UA_MOBILE)] * len(_UA_MOBILE)
        + [0.07 / len(_UA_TABLET)] * len(_UA_TABLET)
    )
)


def browser(rng: random.Random) -> Browser:
    """A visitor's browser, by market share."""
    return BROWSERS[bisect(_BROWSER_CUM, rng.random() * _BROWSER_CUM[-1])]


# (country, language, share): what the collector's geo lookup and Accept-Language give.
_COUNTRIES: Final = (
    ("US", "en-US", 34), ("GB", "en-GB", 8), ("DE", "de-DE", 8), ("JP", "ja-JP", 10),
    ("FR", "fr-FR", 6), ("IN", "en-IN", 7), ("BR", "pt-BR", 5), ("CA", "en-CA", 5),
    ("ES", "es-ES", 4), ("NL", "nl-NL", 3), ("AU", "en-AU", 4), ("IT", "it-IT", 3),
    ("MX", "es-MX", 3),
)  # fmt: skip
_COUNTRY_CUM: Final = tuple(itertools.accumulate(share for _, _, share in _COUNTRIES))


def country(rng: random.Random) -> tuple[str, str]:
    """(country code, language tag) of a visitor."""
    code, language, _ = _COUNTRIES[bisect(_COUNTRY_CUM, rng.random() * _COUNTRY_CUM[-1])]
    return code, language


FIRST_NAMES: Final = (
    "Alex", "Sam", "Maria", "Yuki", "Hana", "Lukas", "Emma", "Noah", "Chloé", "João",
    "Priya", "Liam", "Sofia", "Kenji", "Olivia", "Mateo", "Anna", "Arjun", "Lea", "Ben",
)  # fmt: skip
# Plans of signed-in customers, by share; enterprise is rare and valuable.
PLANS: Final = ("free",) * 6 + ("pro",) * 3 + ("business", "enterprise")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a session comes from: its landing page kind, referrer and UTM query."""

    referrer: str
    query: str
    landing: str  # "home", "product", "pricing", "blog", "category", "any"


_SOURCES: Final = (
    (Source("", "", "home"), 28),  # direct
    (Source("https://www.google.com/", "", "any"), 30),  # organic search
    (
        Source(
            "https://www.google.com/",
            "utm_source=google&utm_medium=cpc&utm_campaign=winter-sale",
            "product",
        ),
        12,
    ),
    (Source("https://www.bing.com/", "", "any"), 3),
    (
        Source(
            "https://l.facebook.com/",
            "utm_source=facebook&utm_medium=social&utm_campaign=gift-guide",
            "blog",
        ),
        7,
    ),
    (
        Source("", "utm_source=newsletter&utm_medium=email&utm_campaign=dec-2025", "category"),
        8,
    ),
    (Source("https://news.ycombinator.com/", "", "pricing"), 3),
    (Source("https://www.reddit.com/", "", "blog"), 5),
    (Source("https://www.instagram.com/", "utm_source=instagram&utm_medium=social", "product"), 4),
)
_SOURCE_CUM: Final = tuple(itertools.accumulate(share for _, share in _SOURCES))


def source(rng: random.Random, *, returning: bool) -> Source:
    """A session's traffic source; returning visitors come direct more often."""
    if returning and rng.random() < 0.4:
        return _SOURCES[0][0]
    return _SOURCES[bisect(_SOURCE_CUM, rng.random() * _SOURCE_CUM[-1])][0]


def landing_page(rng: random.Random, kind: str) -> str:
    """The first page of a session that came from a source landing on ``kind``."""
    if kind == "home":
        return "/"
    if kind == "product":
        return popular_product(rng)
    if kind == "pricing":
        return "/pricing"
    if kind == "blog":
        return rng.choice(_BLOG_POSTS)
    if kind == "category":
        return rng.choice(CATEGORIES)
    return popular_page(rng)
