"""The demo shop that ``beckon delivery`` serves: a few pages that load the snippet.

Northwind Coffee sells beans and a coffee subscription: home, products, one page per
product, pricing (the subscription plans) and a cart. Each page loads ``/beckon.js``
configured for the local collector; invitations come from the service serving the page.
The pages are static apart from the snippet tag; nothing here keeps state.
"""

from __future__ import annotations

from html import escape
from typing import Final, NamedTuple

from aiohttp import web

from streams.settings import Settings


class Product(NamedTuple):
    slug: str
    name: str
    origin: str
    notes: str
    price: str
    color: str


PRODUCTS: Final = (
    Product("yirgacheffe", "Yirgacheffe", "Ethiopia", "jasmine, bergamot, lemon", "€14", "#e9c46a"),
    Product("huila", "Huila", "Colombia", "red apple, caramel, cocoa", "€12", "#e76f51"),
    Product("kiambu", "Kiambu", "Kenya", "blackcurrant, grapefruit, cane sugar", "€15", "#2a9d8f"),
    Product("cerrado", "Cerrado", "Brazil", "hazelnut, milk chocolate", "€11", "#8d6e63"),
)
PLANS: Final = (
    ("Taster", "€18", "a month", ["2 × 250 g bags", "a new origin each month", "pause anytime"]),
    ("Regular", "€32", "a month", ["4 × 250 g bags", "pick your origins", "free shipping"]),
    ("Office", "€89", "a month", ["5 kg for the team", "grinder on loan", "invoice billing"]),
)

_CSS: Final = """
*{box-sizing:border-box}body{margin:0;font:16px/1.55 system-ui,sans-serif;color:#2b2118;
background:#faf6f1}a{color:inherit}header{display:flex;align-items:center;gap:28px;
padding:16px 40px;background:#2b2118;color:#faf6f1}header .logo{font-weight:700;
font-size:20px;text-decoration:none}nav{display:flex;gap:20px;flex:1}nav a{text-decoration:none;
opacity:.85}nav a:hover,nav a[aria-current]{opacity:1;text-decoration:underline}
header button{font:inherit;background:none;color:inherit;border:1px solid #faf6f180;
border-radius:6px;padding:4px 12px;cursor:pointer}main{max-width:980px;margin:0 auto;
padding:40px 24px 80px}h1{font-size:34px;margin:0 0 8px}.lead{font-size:19px;color:#6b5a4a}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:20px;
margin-top:28px}.card{background:#fff;border-radius:12px;padding:20px;
box-shadow:0 2px 8px #2b211814}.swatch{height:90px;border-radius:8px;margin-bottom:14px}
.card h2,.card h3{margin:0 0 6px}.muted{color:#6b5a4a}.price{font-size:28px;font-weight:700}
.button{display:inline-block;background:#2b2118;color:#faf6f1;border:0;border-radius:8px;
padding:9px 18px;font:inherit;text-decoration:none;cursor:pointer;margin-top:10px}
.plan{display:flex;flex-direction:column}.plan .button{margin-top:auto;align-self:flex-start}
.plan.featured{outline:3px solid #c8893d}ul{padding-left:20px}table{width:100%;
border-collapse:collapse;background:#fff;border-radius:12px;overflow:hidden}td,th{padding:12px 16px;
text-align:left;border-bottom:1px solid #eee4da}footer{text-align:center;color:#6b5a4a;
padding:24px;font-size:14px}
"""

_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{title} · Northwind Coffee</title>
<style>{css}</style>
<script src="/beckon.js" data-collector="{collector}" data-site="{site}" async></script>
</head>
<body>
<header>
  <a class="logo" href="/">☕ Northwind Coffee</a>
  <nav aria-label="Main">{nav}</nav>
  <button type="button" id="sign-in">Sign in as Ada</button>
</header>
<main>
{body}
</main>
<footer>A demo shop served by <code>beckon delivery</code>.</footer>
<script>
// The site's side of the integration: calls made before the snippet loads are queued,
// who the visitor is, and what to do when a visitor accepts.
window.beckon = window.beckon || [];
function callBeckon() {{
  var args = [].slice.call(arguments);
  if (beckon.visitorId) beckon[args[0]].apply(null, args.slice(1)); else beckon.push(args);
}}
document.getElementById("sign-in").onclick = function () {{
  callBeckon("identify", {{first_name: "Ada", authenticated: true}});
  this.textContent = "Signed in as Ada";
}};
addEventListener("beckon:response", function (e) {{
  if (e.detail.response !== "accepted") return;
  var note = document.createElement("p");
  note.setAttribute("role", "status");
  note.className = "card";
  note.textContent = "Connecting you to our " + e.detail.invitation.queue + " team…";
  document.querySelector("main").prepend(note);
}});
</script>
</body>
</html>
"""

_NAV: Final = (("/", "Home"), ("/products", "Coffee"), ("/pricing", "Subscription"),
               ("/cart", "Cart"))  # fmt: skip


def _page(settings: Settings, path: str, title: str, body: str) -> web.Response:
    nav = "".join(
        f'<a href="{href}"{" aria-current=page" if href == path else ""}>{label}</a>'
        for href, label in _NAV
    )
    html = _PAGE.format(
        title=escape(title),
        css=_CSS,
        collector=escape(collector_url(settings)),
        site=escape(settings.delivery_site_id),
        nav=nav,
        body=body,
    )
    return web.Response(text=html, content_type="text/html")


def collector_url(settings: Settings) -> str:
    """Where the demo pages' snippet sends events."""
    if settings.delivery_collector_url:
        return settings.delivery_collector_url
    host = settings.collector_host
    host = "localhost" if host in ("", "0.0.0.0", "::") else host
    return f"http://{host}:{settings.collector_port}"


def _product_card(p: Product) -> str:
    return (
        f'<article class="card"><div class="swatch" style="background:{p.color}"></div>'
        f'<h2><a href="/products/{p.slug}">{escape(p.name)}</a></h2>'
        f'<p class="muted">{escape(p.origin)} · {escape(p.notes)}</p>'
        f'<p class="price">{p.price}<span class="muted"> / 250 g</span></p></article>'
    )


def _home() -> str:
    return (
        "<h1>Coffee roasted this week, at your door.</h1>"
        '<p class="lead">Single origins from farms we know, roasted in small batches.</p>'
        '<a class="button" href="/products">Browse the coffee</a> '
        '<a class="button" href="/pricing">See the subscription</a>'
        f'<div class="grid">{"".join(map(_product_card, PRODUCTS[:3]))}</div>'
    )


def _products() -> str:
    return (
        '<h1>Our coffee</h1><p class="lead">Four origins, roasted to order.</p>'
        f'<div class="grid">{"".join(map(_product_card, PRODUCTS))}</div>'
    )


def _product(p: Product) -> str:
    return (
        f'<article class="card"><div class="swatch" style="background:{p.color};height:160px">'
        f"</div><h1>{escape(p.name)}</h1>"
        f'<p class="lead">{escape(p.origin)} · {escape(p.notes)}</p>'
        f'<p class="price">{p.price}<span class="muted"> / 250 g</span></p>'
        f'<button class="button" type="button" onclick="callBeckon(\'track\', \'add_to_cart\', '
        f"{{product: '{p.slug}'}}); location.href='/cart'\">"
        f"Add to cart</button></article>"
    )


def _pricing() -> str:
    cards = "".join(
        f'<article class="card plan{" featured" if name == "Regular" else ""}">'
        f'<h2>{name}</h2><p><span class="price">{price}</span> <span class="muted">{per}</span>'
        f"</p><ul>{''.join(f'<li>{item}</li>' for item in items)}</ul>"
        f'<a class="button" href="/cart">Choose {name}</a></article>'
        for name, price, per, items in PLANS
    )
    return (
        '<h1>The subscription</h1><p class="lead">Fresh coffee every month. '
        "Change plans or pause whenever you like.</p>"
        f'<div class="grid">{cards}</div>'
    )


def _cart() -> str:
    rows = "".join(
        f"<tr><td>{escape(p.name)} ({escape(p.origin)})</td><td>1 × 250 g</td>"
        f"<td>{p.price}</td></tr>"
        for p in PRODUCTS[:2]
    )
    return (
        "<h1>Your cart</h1>"
        f"<table><thead><tr><th>Coffee</th><th>Size</th><th>Price</th></tr></thead>"
        f"<tbody>{rows}</tbody><tfoot><tr><th colspan=2>Total</th><th>€26</th></tr></tfoot>"
        '</table><a class="button" href="/cart">Check out</a>'
    )


def add_routes(app: web.Application, settings: Settings) -> None:
    """The shop's pages: /, /products, /products/<slug>, /pricing, /cart."""
    by_slug = {p.slug: p for p in PRODUCTS}

    def static(path: str, title: str, body: str) -> None:
        async def handler(request: web.Request) -> web.Response:
            return _page(settings, path, title, body)

        app.router.add_get(path, handler)

    static("/", "Home", _home())
    static("/products", "Coffee", _products())
    static("/pricing", "Subscription", _pricing())
    static("/cart", "Cart", _cart())

    async def product(request: web.Request) -> web.Response:
        p = by_slug.get(request.match_info["slug"])
        if p is None:
            raise web.HTTPNotFound(text="no such coffee")
        return _page(settings, "/products", p.name, _product(p))

    app.router.add_get("/products/{slug}", product)
