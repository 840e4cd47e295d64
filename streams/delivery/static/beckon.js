/*! Beckon snippet: clickstream events to the collector, chat invitations in a bubble. */
// Configured by its own tag (see docs/delivery.md):
//   <script src="https://chat.example/beckon.js" data-collector="https://collect.example"
//           data-site="shop" async></script>
// No dependencies and no build step; the events are the contract's ClickEvents.
(function (w, d, nav) {
  "use strict";
  var me = d.currentScript;
  if (!me || (w.beckon && w.beckon.visitorId)) return; // loaded twice: the first one runs
  var cfg = me.dataset;
  if (!cfg.collector) return console.warn("beckon: data-collector is required");
  var trim = function (url) { return url.replace(/\/+$/, ""); };
  var collector = trim(cfg.collector) + "/v1/events";
  var site = cfg.site || location.hostname;
  // Invitations come from the service that serves this file, unless told otherwise;
  // data-delivery="" turns them off.
  var delivery = cfg.delivery == null ? new URL(me.src).origin : trim(cfg.delivery);
  var pingMs = (+cfg.ping || 5) * 1000;
  var secure = location.protocol == "https:" ? ";Secure" : "";

  function uid() {
    // 128 random bits as hex; crypto.randomUUID needs a secure context, this does not.
    var bytes = crypto.getRandomValues(new Uint8Array(16)), id = "";
    for (var i = 0; i < 16; i++) id += (bytes[i] + 256).toString(16).slice(1);
    return id;
  }
  function cookie(name, value, maxAge) {
    if (value) d.cookie = name + "=" + value + ";path=/;max-age=" + maxAge + ";SameSite=Lax" + secure;
    var found = d.cookie.match("(?:^|; )" + name + "=([^;]*)");
    return found && found[1];
  }
  function store(key, value) {
    try { // storage throws where the visitor blocks it: then the cookie alone serves
      if (value == null) return localStorage.getItem(key);
      localStorage.setItem(key, value);
    } catch (e) { /* blocked */ }
  }

  // A first-party visitor id: the cookie, backed up in localStorage (2 years).
  var vid = cookie("_bk_vid") || store("_bk_vid") || uid();
  cookie("_bk_vid", vid, 63072000);
  store("_bk_vid", vid);
  // A session shared by the site's tabs that ends after 30 minutes without events.
  function session() {
    return cookie("_bk_sid", cookie("_bk_sid") || uid(), 1800) || undefined; // no cookies: none
  }

  // --- events: queued, sent in batches ---------------------------------------------
  var queue = [], timer = 0;
  function track(type, fields, now) {
    var event = {
      event_id: uid(), type: type, visitor_id: vid, site_id: site, session_id: session(),
      ts: Date.now(), url: location.href.slice(0, 8192)
    };
    for (var key in fields) event[key] = fields[key];
    queue.push(event);
    if (now) flush();
    else timer = timer || setTimeout(flush, 1000);
  }
  function flush(leaving) {
    clearTimeout(timer);
    timer = 0;
    if (!queue.length) return;
    var body = JSON.stringify(queue.splice(0, queue.length));
    // On leave, a beacon outlives the page (a plain string goes as text/plain: no preflight).
    if (leaving && nav.sendBeacon && nav.sendBeacon(collector, body)) return;
    fetch(collector, {
      method: "POST", body: body, keepalive: true, credentials: "omit",
      // The send time lets the collector correct the events' ts for a wrong clock.
      headers: { "Content-Type": "application/json", "Beckon-Sent-At": "" + Date.now() }
    }).then(function (r) {
      if (!r.ok) console.warn("beckon: the collector answered " + r.status);
    }, function () { /* offline: these events are lost, the next ones may pass */ });
  }
  function scalars(attributes) {
    var out = {};
    for (var key in attributes) {
      var value = attributes[key];
      if (value === null || /^(string|number|boolean)$/.test(typeof value)) out[key] = value;
    }
    return out;
  }

  var depth, exited;
  function pageView() {
    depth = 0;
    exited = false;
    track("page_view", { referrer: d.referrer.slice(0, 8192), title: d.title.slice(0, 8192) }, 1);
  }
  setInterval(function () {
    if (d.visibilityState == "visible") track("page_ping");
  }, pingMs);
  d.addEventListener("visibilitychange", function () {
    // Hidden is not gone (another tab): flush, and pings stop until it is visible again.
    if (d.visibilityState == "hidden") flush(1);
    else track("page_ping");
  });
  w.addEventListener("pagehide", function () {
    track("page_leave");
    flush(1);
    if (source) source.close();
  });
  w.addEventListener("pageshow", function (e) {
    if (e.persisted) { pageView(); listen(); } // back from the back/forward cache
  });
  w.addEventListener("scroll", function () {
    var page = d.documentElement;
    var pct = ((w.scrollY + w.innerHeight) / page.scrollHeight) * 100, mark = 0;
    [25, 50, 75, 100].forEach(function (t) { if (pct >= t - 1) mark = t; });
    if (mark > depth) track("scroll", { scroll_pct: (depth = mark) });
  }, { passive: true });
  if (w.matchMedia && matchMedia("(hover: hover) and (pointer: fine)").matches) {
    // Desktop: the pointer leaves through the top of the viewport (to the tabs, the URL bar).
    d.addEventListener("mouseout", function (e) {
      if (!e.relatedTarget && e.clientY <= 0 && !exited) {
        exited = true;
        track("exit_intent", 0, 1);
      }
    });
  }

  // --- invitations: Server-Sent Events from the delivery service --------------------
  var source, skew = 0, current, waiting = [], root, seen;
  try { seen = JSON.parse(store("_bk_seen")) || []; } catch (e) { seen = []; }
  function listen() {
    if (!delivery || !w.EventSource) return;
    source = new EventSource(delivery + "/v1/invitations/stream?visitor_id=" + encodeURIComponent(vid));
    source.addEventListener("ready", function (e) {
      skew = JSON.parse(e.data).now - Date.now(); // judge expiry by the server's clock
    });
    source.addEventListener("invitation", function (e) { offer(JSON.parse(e.data)); });
  }
  function offer(invitation) {
    if (seen.indexOf(invitation.invitation_id) >= 0) return;
    if (Date.parse(invitation.expires_at) < Date.now() + skew) return;
    if (current) waiting.push(invitation);
    else show(invitation);
  }
  function el(tag, cls, text) {
    var node = d.createElement(tag);
    node.className = "bk-" + cls;
    if (text) node.textContent = text; // never innerHTML: the message is data
    return node;
  }
  function show(invitation) {
    current = invitation;
    seen = seen.concat(invitation.invitation_id).slice(-50);
    store("_bk_seen", JSON.stringify(seen));
    if (!root) {
      var color = cfg.color || "#3a5bd9", style = d.createElement("style");
      style.textContent =
        ".bk-card{position:fixed;right:20px;bottom:20px;z-index:2147483647;box-sizing:border-box;" +
        "width:330px;max-width:calc(100vw - 40px);padding:16px 18px;border-radius:14px;" +
        "background:#fff;color:#1f2330;box-shadow:0 12px 32px rgba(20,24,40,.22);" +
        "font:15px/1.45 system-ui,sans-serif;animation:bk-in .25s ease-out}" +
        ".bk-title{margin:0 28px 4px 0;font-weight:600}.bk-message{margin:0 0 14px}" +
        ".bk-card button{font:inherit;border-radius:8px;padding:7px 14px;margin-right:8px;" +
        "cursor:pointer;border:1px solid #c9ccd6;background:#fff;color:inherit}" +
        ".bk-card .bk-accept{background:" + color + ";border-color:" + color + ";color:#fff}" +
        ".bk-card .bk-close{position:absolute;top:6px;right:4px;margin:0;border:0;padding:2px 8px;" +
        "font-size:22px;line-height:1;background:none}" +
        ".bk-card button:focus-visible{outline:3px solid #f0a500;outline-offset:2px}" +
        "@keyframes bk-in{from{opacity:0;transform:translateY(12px)}}" +
        "@media (prefers-reduced-motion:reduce){.bk-card{animation:none}}";
      d.head.appendChild(style);
      // A live region that exists before its content, so screen readers announce it.
      root = el("div", "root");
      root.setAttribute("aria-live", "polite");
      d.body.appendChild(root);
    }
    setTimeout(function () {
      if (current != invitation) return; // answered (Escape) before it was drawn
      var card = el("div", "card"), buttons = el("div", "buttons");
      card.setAttribute("role", "dialog");
      card.setAttribute("aria-labelledby", "bk-title");
      card.setAttribute("aria-describedby", "bk-message");
      if (invitation.locale) card.lang = invitation.locale;
      var title = card.appendChild(el("p", "title", cfg.title || "Chat with us"));
      title.id = "bk-title";
      card.appendChild(el("p", "message", invitation.message)).id = "bk-message";
      [["accept", cfg.accept || "Chat now", "accepted"], ["decline", cfg.decline || "No thanks",
        "declined"], ["close", "\u00d7", "dismissed"]].forEach(function (b) {
        var button = (b[0] == "close" ? card : buttons).appendChild(el("button", b[0], b[1]));
        button.type = "button";
        if (b[0] == "close") button.setAttribute("aria-label", "Close");
        button.onclick = function () { respond(b[2]); };
      });
      card.insertBefore(buttons, card.lastChild);
      root.appendChild(card);
    }, 100);
    d.addEventListener("keydown", onKey);
  }
  function onKey(e) {
    if (e.key == "Escape") respond("dismissed");
  }
  function respond(response) {
    var invitation = current;
    if (!invitation) return;
    current = null;
    root.textContent = "";
    d.removeEventListener("keydown", onKey);
    track("invitation_response", { invitation_id: invitation.invitation_id, response: response }, 1);
    // The chat platform opens its conversation here: addEventListener("beckon:response", ...)
    w.dispatchEvent(new CustomEvent("beckon:response", {
      detail: { response: response, invitation: invitation }
    }));
    if (waiting.length) offer(waiting.shift());
  }

  // --- the public API: window.beckon -------------------------------------------------
  var early = w.beckon;
  var api = w.beckon = {
    visitorId: vid,
    identify: function (attributes) { track("identify", { attributes: scalars(attributes) }, 1); },
    track: function (name, attributes) {
      track("custom", { name: String(name), attributes: scalars(attributes) }, 1);
    },
    page: pageView, // for single-page apps: a page_view of the current location
    flush: flush
  };
  pageView();
  listen();
  // Calls made before the snippet loaded: window.beckon = [["identify", {...}], ...]
  if (Array.isArray(early)) early.forEach(function (call) {
    if (api[call[0]]) api[call[0]].apply(null, call.slice(1));
  });
})(window, document, navigator);
