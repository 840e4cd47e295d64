"""Twenty rules a shop like ``bench.site`` would run: the rule set of the benchmarks.

They use every kind of condition the contract has (dwell, session time, pages, journeys,
scroll, exit intent, custom events; audiences on country, device, visits, plan and UTM
source; time frames in four zones, one overnight and one with dates; frequencies,
holdouts, priorities, locales), so a benchmark exercises all of the evaluator, and they
are tuned so that a few percent of visitors are invited, as on a real site.
"""

from __future__ import annotations

from typing import Final

RULES_YAML: Final = """\
rules:
  - id: pricing-hesitation
    priority: 50
    location: {include: ["https://shop.example/pricing"]}
    trigger: {dwell_seconds: 30}
    message:
      text: "Hi {first_name|there}, any questions about our plans?"
      locales:
        ja: "{first_name|}さん、プランについてご質問はありますか？"
        de: "Hallo {first_name|}, Fragen zu unseren Tarifen?"
        fr: "Bonjour {first_name|}, des questions sur nos offres ?"
    queue: sales
    frequency: {per_session: 1, per_day: 2, after_decline_days: 7}
    holdout_pct: 10

  - id: pricing-returning-customer
    priority: 60
    audience:
      authenticated: true
      visits: {gte: 2}
      plan: {not_in: [enterprise]}
    location: {include: ["https://shop.example/pricing*"]}
    trigger: {dwell_seconds: 15}
    message: {text: "Welcome back {first_name|}! Thinking of upgrading from {plan|your plan}?"}
    queue: sales
    frequency: {per_day: 1}

  - id: product-long-dwell
    priority: 20
    location:
      include: ["https://shop.example/products/*"]
      exclude: ["*/products/*-mug"]
    trigger: {dwell_seconds: 45}
    message:
      text: "Need help choosing? Our gear experts are online."
      locales: {es: "¿Necesitas ayuda para elegir?", pt-BR: "Precisa de ajuda para escolher?"}
    queue: product-experts
    holdout_pct: 5

  - id: product-deep-scroll
    priority: 25
    location: {include: ["https://shop.example/products/*"]}
    trigger: {scroll_pct: 75, dwell_seconds: 20}
    message: {text: "Read all the details? Ask us anything about this product."}
    queue: product-experts

  - id: cart-hesitation
    priority: 70
    location: {include: ["https://shop.example/cart"]}
    trigger: {dwell_seconds: 40}
    message:
      text: "Anything stopping you from checking out, {first_name|friend}?"
      locales: {de: "Gibt es noch Fragen zu Ihrem Warenkorb?"}
    queue: sales
    frequency: {per_session: 1, per_day: 1}

  - id: checkout-exit-intent
    priority: 90
    location:
      include: ["https://shop.example/checkout*"]
      exclude: ["*/thank-you"]
    trigger: {event: exit_intent}
    message: {text: "Wait! Free shipping on this order if you complete it in the next hour."}
    queue: sales
    holdout_pct: 10

  - id: checkout-payment-error
    priority: 95
    location: {include: ["https://shop.example/checkout"]}
    trigger: {event: payment_error}
    message: {text: "Trouble paying? An agent can help you right now."}
    queue: support
    frequency: {per_session: 2}

  - id: coupon-applied
    priority: 55
    location: {include: ["https://shop.example/checkout"]}
    trigger: {event: coupon_applied, dwell_seconds: 20}
    message: {text: "Your coupon is in! Questions before you pay?"}
    queue: sales

  - id: browsing-many-pages
    priority: 10
    trigger: {pages_in_session: 8, session_seconds: 180}
    message: {text: "Looking for something specific? We can point you to it."}
    frequency: {per_day: 1}

  - id: compare-then-pricing
    priority: 40
    trigger:
      journey: ["*/products/*", "*/products/*", "*/pricing"]
      dwell_seconds: 10
    message: {text: "Comparing products? Members save 10% - ask us how."}
    queue: sales

  - id: cart-back-to-product
    priority: 35
    location: {include: ["https://shop.example/products/*"]}
    trigger: {journey: ["*/cart", "*/products/*"], dwell_seconds: 20}
    message: {text: "Still deciding? We can hold your cart for 24 hours."}
    queue: sales

  - id: social-blog-to-product
    priority: 30
    audience: {utm_source: {in: [facebook, instagram, newsletter]}}
    trigger: {journey: ["*/blog/*", "*/products/*"], dwell_seconds: 15}
    message: {text: "Liked the article? Here is 10% off the gear in it."}
    queue: marketing
    holdout_pct: 20

  - id: paid-search-landing
    priority: 30
    audience: {utm_source: google, utm_medium: cpc}
    trigger: {session_seconds: 60, pages_in_session: 2}
    message: {text: "Found what you searched for? We are here to help."}
    queue: marketing
    frequency: {per_session: 1, per_day: 1}

  - id: mobile-product-help
    priority: 15
    audience: {device: mobile}
    location: {include: ["https://shop.example/products/*"]}
    trigger: {dwell_seconds: 60}
    message: {text: "Questions? Tap to chat."}
    queue: product-experts

  - id: tablet-category-browse
    priority: 12
    audience: {device: tablet}
    location: {include: ["https://shop.example/category/*"]}
    trigger: {dwell_seconds: 25, scroll_pct: 50}
    message: {text: "Browsing {utm_campaign|our range}? Ask for a recommendation."}

  - id: vip-returning
    priority: 80
    audience:
      visits: {gte: 3}
      plan: {in: [business, enterprise]}
      first_name: {exists: true}
    trigger: {dwell_seconds: 10}
    message: {text: "Hello {first_name}, your account manager is online if you need anything."}
    queue: account-managers
    frequency: {per_day: 1}

  - id: japan-business-hours
    priority: 45
    audience: {country: JP}
    location: {include: ["https://shop.example/products/*", "https://shop.example/pricing"]}
    timeframe: {timezone: Asia/Tokyo, days: [mon, tue, wed, thu, fri], hours: "09:00-18:00"}
    trigger: {dwell_seconds: 20}
    message:
      text: "Questions? Our Tokyo team is online."
      locales: {ja: "ご質問はありますか？東京チームがお手伝いします。"}
    queue: sales-jp

  - id: us-overnight-support
    priority: 40
    audience: {country: {in: [US, CA]}}
    location: {include: ["https://shop.example/help*"]}
    timeframe: {timezone: America/New_York, hours: "22:00-06:00"}
    trigger: {dwell_seconds: 20}
    message: {text: "Up late? Our night team can help with {first_name|your} order."}
    queue: overnight-support
    frequency: {per_session: 1, per_day: 2}

  - id: eu-holiday-campaign
    priority: 45
    audience: {country: {in: [DE, FR, NL, ES, IT]}}
    location: {include: ["https://shop.example/products/*"]}
    timeframe:
      timezone: Europe/Berlin
      start_date: 2025-12-01
      end_date: 2025-12-24
      hours: "08:00-20:00"
    trigger: {event: add_to_cart}
    message:
      text: "Holiday delivery guaranteed until Dec 20th - questions?"
      locales:
        de: "Lieferung bis Weihnachten garantiert - Fragen?"
        fr: "Livraison garantie avant Noël - des questions ?"
        es: "Entrega garantizada antes de Navidad - ¿preguntas?"
    queue: sales-eu
    holdout_pct: 15

  - id: hn-visitors-pricing
    priority: 65
    audience: {referrer_host: {contains: ycombinator}}
    location: {include: ["*/pricing"]}
    trigger: {dwell_seconds: 20, scroll_pct: 25}
    message: {text: "Hi HN! The founders are answering questions here today."}
    queue: founders
    timeframe: {timezone: America/Los_Angeles, days: [mon, tue, wed, thu, fri]}
"""

# Budgets that bind on the benchmarks' traffic (a few invitations an hour per queue over
# a day of event time): a good share of the two queues' invitations is held back. Put
# before RULES_YAML: ``BUDGETS_YAML + RULES_YAML``.
BUDGETS_YAML: Final = """\
queues:
  sales: {budget: {invitations: 1, per: hour}}
  product-experts: {budget: {invitations: 2, per: hour}}
"""
