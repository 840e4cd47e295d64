// The Beckon dashboard: polls /api/summary every 2 s and fills the tables.
// Every value is set with textContent: URLs, keys and DLQ payloads come from outside.
"use strict";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat();
const num = (n) => (n === null || n === undefined ? "–" : fmt.format(n));
const pct = (r) => (r === null || r === undefined ? "–" : `${(r * 100).toFixed(1)}%`);
const secs = (ms) => (ms === null || ms === undefined ? "–" : `${fmt.format(Math.round(ms / 1000))} s`);
const time = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–");

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function fill(table, rows, toCells, emptyText, section = "tbody") {
  const body = $(table).querySelector(section);
  const out = rows.map((row) => {
    const tr = document.createElement("tr");
    for (const td of toCells(row)) tr.append(td);
    return tr;
  });
  if (!out.length && emptyText) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(emptyText);
    td.colSpan = $(table).querySelectorAll("thead th").length;
    tr.append(td);
    out.push(tr);
  }
  body.replaceChildren(...out);
}

function reasons(suppressed) {
  const td = document.createElement("td");
  for (const [reason, n] of Object.entries(suppressed)) {
    const span = document.createElement("span");
    span.className = "reason";
    span.textContent = `${reason} ${fmt.format(n)}`;
    td.append(span);
  }
  if (!td.childNodes.length) td.textContent = "–";
  return td;
}

function funnelCells(r) {
  return [
    cell(r.rule_id), cell(num(r.matched), "num"), reasons(r.suppressed),
    cell(num(r.invited), "num"), cell(num(r.holdout), "num"), cell(num(r.shadow), "num"),
    cell(num(r.shown), "num"), cell(num(r.accepted), "num"), cell(num(r.declined), "num"),
    cell(pct(r.acceptance), "num"),
  ];
}

function spark(id, series) {
  const svg = $(id);
  const points = series.slice(-60);
  if (points.length < 2) { svg.replaceChildren(); return; }
  const top = Math.max(...points, 1);
  const step = 120 / (points.length - 1);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.map((v, i) => `${(i * step).toFixed(1)},${(29 - (v / top) * 28).toFixed(1)}`).join(" "));
  svg.replaceChildren(line);
}

function rateCard(name, rates) {
  const r = rates[name];
  $(`${name}-rate`).textContent = r && r.per_s !== null ? fmt.format(Math.round(r.per_s * 10) / 10) : "–";
  spark(`${name}-spark`, r ? r.series : []);
}

function render(s) {
  rateCard("events", s.rates);
  rateCard("invitations", s.rates);
  $("lag-total").textContent = num(s.lag.total);
  $("lag-total").classList.toggle("lagging", s.lag.total > 0);
  $("lag-group").textContent = `group ${s.group}`;
  $("acceptance").textContent = pct(s.totals.acceptance);
  $("acceptance-note").textContent = `${num(s.totals.accepted)} accepted of ${num(s.totals.shown)} shown`;
  $("dlq-total").textContent = num(s.dlq.total);
  $("dlq-note").textContent = `in the last ${secs(s.lookback_s * 1000)}`;
  $("lookback").textContent = `last ${secs(s.lookback_s * 1000)}`;

  fill("funnel", s.funnel, funnelCells, "No decisions yet.");
  fill("funnel", s.funnel.length > 1 ? [{ rule_id: "All rules", ...s.totals }] : [], funnelCells, null, "tfoot");

  const tp = s.top_pages;
  $("pages-window").textContent = tp.from ? `${time(tp.from)}–${time(tp.to)}` : "";
  fill("pages", tp.pages, (p) => [
    cell(p.page, "url"), cell(secs(p.dwell_ms), "num"), cell(num(p.page_views), "num"),
    cell(secs(p.typical_dwell_ms), "num"),
  ], "No dwell aggregates yet.");

  fill("lag", s.lag.partitions, (p) => {
    const lag = cell(num(p.lag), "num");
    if (p.lag > 0) lag.classList.add("lagging");
    return [cell(p.topic), cell(p.partition, "num"), cell(num(p.committed), "num"),
            cell(num(p.end), "num"), lag];
  }, `No committed offsets for group ${s.group} yet.`);

  fill("latest", s.latest_invitations, (i) => [
    cell(time(i.triggered_at)), cell(i.rule_id), cell(i.visitor_id), cell(i.url, "url"),
    cell(i.why || "–", "why"),
  ], "No invitations yet.");

  const byReason = Object.entries(s.dlq.by_reason).map(([r, n]) => `${r}: ${fmt.format(n)}`);
  $("dlq-reasons").textContent = byReason.length ? `By reason — ${byReason.join(", ")}` : "";
  fill("dlq", s.dlq.latest, (d) => [
    cell(time(d.at)), cell(d.reason), cell(d.error, "why"), cell(d.source),
  ], "No dead letters.");

  $("topics").textContent = Object.values(s.topics).join(", ");
  // The status line is a live region: it changes only when the state does, not each poll.
  const status = $("status");
  const text = !s.kafka.ok ? `Kafka unreachable${s.kafka.error ? `: ${s.kafka.error}` : ""}`
    : s.caught_up ? "Live" : "Catching up on history…";
  status.classList.toggle("bad", !s.kafka.ok);
  if (status.textContent !== text) status.textContent = text;
  $("updated").textContent = `updated ${time(s.now)}`;
}

async function poll() {
  try {
    const response = await fetch("/api/summary", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (err) {
    $("status").textContent = `Dashboard unreachable (${err.message}); retrying…`;
    $("status").classList.add("bad");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
