// The Beckon rules console: read the rules in force, edit a draft of the whole set, preview
// it against recorded traffic, publish it, roll back. Every rule is checked by the server
// (POST /api/rules/validate): the page never decides what is valid, so it cannot disagree
// with `beckon rules validate`. Every value is shown with textContent: rule texts, URLs and
// visitor ids come from people and from outside.
"use strict";

const VALIDATE_MS = 300; // debounce: one validation per pause in typing
const POLL_JOB_MS = 500; // preview progress
const POLL_RULES_MS = 15000; // the funnel of the rules in force
const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const OPERATORS = ["equals", "in", "not_in", "gte", "gt", "lte", "lt", "exists", "contains"];
// The server renders with its own sample when the draft names none; this is the same one,
// shown so that people can edit it.
const SAMPLE_VISITOR = {
  first_name: "Ana", country: "JP", language: "ja", device: "desktop", returning: true,
  visits: 3, plan: "pro",
};

const $ = (id) => document.getElementById(id);
const fmt = new Intl.NumberFormat();
const num = (n) => (n === null || n === undefined ? "–" : fmt.format(n));
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
const signed = (n) => (n > 0 ? `+${fmt.format(n)}` : n < 0 ? `−${fmt.format(-n)}` : "0");
const clone = (value) => JSON.parse(JSON.stringify(value));

const state = {
  session: null, // {user, role, csrf}
  inForce: null, // the answer of GET /api/rules
  draft: [], // the whole set to publish, as rule JSON objects, in the user's order
  queues: {}, // the draft's queues' settings, as in a rules file: {sales: {budget: {…}}}
  queueRows: null, // the queue names the queues table was built for
  base: null, // the version the draft was started from: publish's expected_version
  current: null, // index in draft of the rule in the editor, or null
  checked: null, // the last 200 of validate: {version, rules, yaml, rendered, words}
  valid: true,
  seq: 0, // validations sent; an answer older than the newest is dropped
  timer: null,
  job: null, // the running preview's id
  // The journey of the rule in the editor as it was filled in: written as a list or an
  // object, and each glob list with the text it was shown as (see journeyOf).
  journey: { list: true, shown: {} },
};

// --- talking to the server ---------------------------------------------------------------

async function api(method, path, body, form) {
  const headers = {};
  // A change made with the session cookie must carry the session's CSRF token.
  if (method !== "GET" && state.session && state.session.csrf) {
    headers["X-CSRF-Token"] = state.session.csrf;
  }
  let payload = form;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, {
    method, headers, body: payload, credentials: "same-origin", cache: "no-store",
  });
  let data = null;
  if (response.status !== 204) {
    try { data = await response.json(); } catch { data = null; }
  }
  if (response.status === 401 && path !== "/api/session") {
    showSignIn("Your session has ended: sign in again.");
  }
  return { status: response.status, data, headers: response.headers };
}

function reasonOf(r) {
  return (r.data && r.data.error) || `HTTP ${r.status}`;
}

function setStatus(text, bad = false) {
  const status = $("status");
  status.classList.toggle("bad", bad);
  if (status.textContent !== text) status.textContent = text; // a live region: only changes
}

// --- signing in --------------------------------------------------------------------------

async function start() {
  fillStaticChoices();
  wireEvents();
  const r = await api("GET", "/api/session");
  if (r.status === 200) return signedIn(r.data);
  // /rules?token=… redirects here with ?signin=failed|limited when the token was refused.
  const came = new URLSearchParams(location.search).get("signin");
  showSignIn(came === "failed" ? "That token was not accepted."
    : came === "limited" ? "Too many failed sign-ins: wait a minute and try again." : "");
}

function showSignIn(message) {
  state.session = null;
  $("console").hidden = true;
  $("whoami").hidden = true;
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  setStatus("Signed out");
  $("signin-token").focus();
}

async function signIn(event) {
  event.preventDefault();
  const token = $("signin-token").value.trim();
  const body = token ? { token } : { user: $("signin-user").value.trim(), password: $("signin-password").value };
  const r = await api("POST", "/api/session", body);
  if (r.status === 200) {
    $("signin-password").value = "";
    $("signin-token").value = "";
    history.replaceState(null, "", "/rules"); // drop a ?signin=failed left in the address
    return signedIn(r.data);
  }
  if (r.status === 429) return waitBeforeRetry(Number(r.headers.get("Retry-After")) || 60);
  $("signin-error").textContent = reasonOf(r);
}

// After too many failures the server refuses for a while: say how long, count it down.
function waitBeforeRetry(seconds) {
  const button = $("signin-submit");
  button.disabled = true;
  let left = seconds;
  const tick = () => {
    if (left <= 0) {
      button.disabled = false;
      $("signin-error").textContent = "You can try again now.";
      return;
    }
    $("signin-error").textContent = `Too many failed sign-ins: try again in ${left} s.`;
    left -= 1;
    setTimeout(tick, 1000);
  };
  tick();
}

async function signOut() {
  await api("DELETE", "/api/session");
  showSignIn("");
}

function signedIn(session) {
  state.session = session;
  $("signin").hidden = true;
  $("console").hidden = false;
  $("whoami").hidden = false;
  $("whoami-user").textContent = session.user;
  $("whoami-role").textContent = session.role;
  // A viewer reads, validates and previews; publishing and rolling back need an editor.
  for (const el of document.querySelectorAll(".editor-only")) el.hidden = !mayEdit();
  setStatus(`Signed in as ${session.user}`);
  loadInForce(true);
  loadHistory();
}

const mayEdit = () => Boolean(state.session && state.session.role === "editor");

// --- the rules in force --------------------------------------------------------------------

async function loadInForce(resetDraft) {
  const r = await api("GET", "/api/rules");
  if (r.status !== 200) {
    if (r.status !== 401) setStatus(`The rules in force cannot be read: ${reasonOf(r)}`, true);
    return;
  }
  state.inForce = r.data;
  if (resetDraft || state.base === null) startDraft();
  renderInForce();
}

function startDraft() {
  state.draft = clone(state.inForce.rules);
  state.queues = clone(state.inForce.queues || {});
  state.queueRows = null;
  state.base = state.inForce.version;
  state.current = null;
  state.checked = null;
  state.valid = true;
  showEditor();
  scheduleValidate();
}

function inForceById() {
  return new Map(state.inForce.rules.map((rule) => [rule.id, rule]));
}

// How a draft rule stands against the set in force: new, changed, or as it is.
function draftStatus(rule) {
  const theirs = inForceById().get(rule.id);
  if (!theirs) return "new";
  // Compare as the server reads the rule (defaults left out), once it has read it.
  const checked = state.valid && state.checked
    ? state.checked.rules.find((r) => r.id === rule.id) : null;
  return canonical(checked || rule) === canonical(theirs) ? "" : "changed";
}

function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function renderInForce() {
  const f = state.inForce;
  $("funnel-window").textContent = `version ${f.version} · funnel over the last ${f.funnel_hours} h`;
  const p = f.published;
  $("published").textContent = p
    ? `Version ${p.version}: ${p.action} by ${p.author}, ${when(p.at)} — “${p.comment || "no comment"}”`
    : `Version ${f.version}: not published through the console or \`beckon rules apply\`.`;
  $("refused").replaceChildren(...(f.refused || []).map((text) => li(`Refused on the rules topic: ${text}`)));
  renderRulesTable();
}

function renderRulesTable() {
  if (!state.inForce) return;
  const inDraft = new Map(state.draft.map((rule, i) => [rule.id, i]));
  const rows = state.inForce.rules.map((rule) => ruleRow(rule, inDraft.get(rule.id)));
  state.draft.forEach((rule, i) => {
    if (!inForceById().has(rule.id)) rows.push(ruleRow(rule, i));
  });
  if (!rows.length) rows.push(emptyRow("No rules yet: make one with New rule.", 15));
  $("rules-table").querySelector("tbody").replaceChildren(...rows);
  renderQueues();
  renderDraftStatus();
}

// One row: the rule as in force (or, for a new one, as drafted), its funnel, its buttons.
function ruleRow(rule, draftIndex) {
  const tr = document.createElement("tr");
  tr.dataset.rule = rule.id;
  const deleted = draftIndex === undefined;
  const status = deleted ? "deleted" : draftStatus(state.draft[draftIndex]);
  tr.className = [status, draftIndex === state.current && !deleted ? "editing" : ""].join(" ").trim();
  const name = cell(rule.id, "rule-id");
  if (status) name.append(badge(status === "deleted" ? "deleted in the draft" : `${status} in the draft`, status));
  const words = wordsOf(rule.id, status === "new");
  const funnel = (state.inForce.funnel || {})[rule.id] || {};
  tr.append(
    name, cell(rule.enabled === false ? "no" : "yes", "enabled"), cell(rule.mode || "live", "mode"),
    cell(String(rule.priority || 0), "num priority"), cell(rule.queue || "default", "queue"),
    wordsCell(words),
    cell(num(funnel.matched), "num matched"), reasons(funnel.suppressed, "suppressed"),
    cell(num(funnel.invited), "num invited"), cell(num(funnel.holdout), "num holdout"),
    cell(num(funnel.shadow), "num shadow"), cell(num(funnel.shown), "num shown"),
    cell(num(funnel.accepted), "num accepted"), cell(num(funnel.declined), "num declined"),
    actionsCell(rule, draftIndex),
  );
  return tr;
}

function wordsOf(id, drafted) {
  const checked = state.checked && state.checked.words[id];
  const inForce = state.inForce.words && state.inForce.words[id];
  return (drafted ? checked : inForce || checked) || { location: "", trigger: "" };
}

function wordsCell(words) {
  const td = cell("", "words");
  const where = document.createElement("span");
  where.className = "where";
  where.textContent = words.location;
  const then = document.createElement("span");
  then.className = "when";
  then.textContent = words.trigger;
  td.append(where, then);
  return td;
}

function actionsCell(rule, draftIndex) {
  const td = cell("", "actions-cell");
  if (draftIndex === undefined) {
    td.append(button("Restore", "small restore", () => restoreRule(rule.id)));
  } else {
    td.append(button("Edit", "small edit", () => editRule(draftIndex)),
      button("Delete", "small delete", () => deleteRule(draftIndex)));
  }
  return td;
}

function renderDraftStatus() {
  const counts = { new: 0, changed: 0, deleted: 0 };
  const drafted = new Set(state.draft.map((r) => r.id));
  for (const rule of state.draft) { const s = draftStatus(rule); if (s) counts[s] += 1; }
  counts.deleted = state.inForce.rules.filter((r) => !drafted.has(r.id)).length;
  const changes = Object.entries(counts).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`);
  const budgets = queueNames().filter(queueChanged).length;
  if (budgets) changes.push(`${budgets} budget${budgets === 1 ? "" : "s"} changed`);
  const validity = state.valid ? "" : " The draft is not valid: see the editor.";
  $("draft-status").textContent = (changes.length
    ? `Draft: ${changes.join(", ")}; started from version ${state.base}.`
    : "Draft: the same as the rules in force.") + validity;
}

// --- the draft: new, edit, delete, restore --------------------------------------------------

function newRule() {
  const ids = new Set(state.draft.map((r) => r.id));
  let id = "new-rule";
  for (let n = 2; ids.has(id); n += 1) id = `new-rule-${n}`;
  state.draft.push({
    id, trigger: { dwell_seconds: 30 },
    message: { text: "Hi {first_name|there}, can we help?" },
  });
  editRule(state.draft.length - 1);
  $("f-id").select();
}

function editRule(index) {
  state.current = index;
  showEditor();
  renderRulesTable();
  scheduleValidate();
  $("editor-section").scrollIntoView({ block: "start" });
}

function deleteRule(index) {
  state.draft.splice(index, 1);
  if (state.current === index) state.current = null;
  else if (state.current !== null && state.current > index) state.current -= 1;
  showEditor();
  renderRulesTable();
  scheduleValidate();
}

function restoreRule(id) {
  state.draft.push(clone(inForceById().get(id)));
  renderRulesTable();
  scheduleValidate();
}

// --- queues: each queue's budget -------------------------------------------------------------

// The queues the draft's rules send to, and those the draft or the set in force sets.
function queueNames() {
  const names = new Set(state.draft.map((rule) => rule.queue ?? "default"));
  for (const name of Object.keys(state.queues)) names.add(name);
  for (const name of Object.keys(state.inForce.queues || {})) names.add(name);
  return [...names].sort();
}

function queueChanged(name) {
  return canonical(state.queues[name] || {}) !== canonical((state.inForce.queues || {})[name] || {});
}

// The rows are built again only when the queues change, never under the cursor.
function renderQueues() {
  const body = $("queues-table").querySelector("tbody");
  const names = queueNames();
  if (names.join("\n") !== state.queueRows) {
    state.queueRows = names.join("\n");
    const rows = names.map(queueRow);
    if (!rows.length) rows.push(emptyRow("No queue: no rule sends invitations yet.", 3));
    body.replaceChildren(...rows);
  }
  for (const tr of body.querySelectorAll("tr[data-queue]")) showQueue(tr);
}

// Errors come back on `queues.<name>.budget.invitations|per`.
function queueRow(name) {
  const tr = document.createElement("tr");
  tr.dataset.queue = name;
  const budget = (state.queues[name] || {}).budget;
  const count = input("budget-invitations", budget ? String(budget.invitations) : "", "no budget");
  count.type = "number";
  count.min = "1";
  count.step = "1";
  count.dataset.path = `queues.${name}.budget.invitations`;
  count.setAttribute("aria-label", `${name}: at most how many invitations`);
  const per = document.createElement("select");
  per.className = "budget-per";
  per.dataset.path = `queues.${name}.budget.per`;
  per.setAttribute("aria-label", `${name}: per minute or per hour`);
  for (const p of ["minute", "hour"]) per.append(new Option(`invitations per ${p}`, p));
  per.value = budget ? budget.per : "minute";
  const edit = cell("", "budget-edit");
  edit.append(count, per);
  const head = document.createElement("th");
  head.scope = "row";
  head.className = "queue";
  tr.append(head, edit, cell("", "queue-rules"));
  return tr;
}

// "sales: at most 20 invitations per minute", as the server last read the draft.
function showQueue(tr) {
  const name = tr.dataset.queue;
  const words = state.checked && state.checked.queue_words ? state.checked.queue_words[name] : null;
  const head = tr.querySelector(".queue");
  if (state.valid || !head.textContent) {
    head.replaceChildren(span(`${name}: ${words || "…"}`, "budget-words"));
    if (queueChanged(name)) head.append(badge("changed in the draft", "changed"));
  }
  const rules = state.draft.filter((rule) => (rule.queue ?? "default") === name).map((rule) => rule.id);
  tr.querySelector(".queue-rules").textContent = rules.length ? rules.join(", ") : "no rule in the draft";
}

function budgetChanged(event) {
  const tr = event.target.closest("tr[data-queue]");
  if (!tr) return;
  const name = tr.dataset.queue;
  const queue = { ...(state.queues[name] || {}) };
  const invitations = numberOf(tr.querySelector(".budget-invitations"));
  if (invitations === undefined) delete queue.budget;
  else queue.budget = { invitations, per: tr.querySelector(".budget-per").value };
  if (Object.keys(queue).length) state.queues[name] = queue;
  else delete state.queues[name];
  renderDraftStatus();
  scheduleValidate();
}

// --- the editor: the form <-> one rule's JSON --------------------------------------------

function showEditor() {
  const rule = state.current === null ? null : state.draft[state.current];
  $("editor-grid").hidden = rule === null;
  $("editor-empty").hidden = rule !== null;
  $("editor-rule").textContent = rule ? rule.id : "";
  if (rule) fillForm(rule);
}

function fillForm(rule) {
  clearFieldErrors();
  $("f-id").value = rule.id || "";
  $("f-enabled").checked = rule.enabled !== false;
  $("f-mode").value = rule.mode || "live";
  $("f-priority").value = rule.priority ?? 0;
  $("f-queue").value = rule.queue ?? "default";
  $("f-holdout").value = rule.holdout_pct ?? 0;
  fillAudience(rule.audience || {});
  const loc = rule.location || {};
  $("f-include").value = (loc.include || []).join("\n");
  $("f-exclude").value = (loc.exclude || []).join("\n");
  fillTimeframe(rule.timeframe);
  const t = rule.trigger || {};
  $("f-dwell").value = t.dwell_seconds ?? "";
  $("f-session").value = t.session_seconds ?? "";
  $("f-pages").value = t.pages_in_session ?? "";
  $("f-scroll").value = t.scroll_pct ?? "";
  $("f-event").value = t.event ?? "";
  fillJourney(t.journey);
  const m = rule.message || {};
  $("f-text").value = m.text ?? "";
  $("locale-rows").querySelector("tbody").replaceChildren(
    ...Object.entries(m.locales || {}).map(([tag, text]) => localeRow(tag, text)));
  const fr = rule.frequency || {};
  // per_session defaults to 1; null (written out) means no cap, shown as empty.
  $("f-per-session").value = fr.per_session === undefined ? 1 : fr.per_session ?? "";
  $("f-per-day").value = fr.per_day ?? "";
  $("f-after-decline").value = fr.after_decline_days ?? "";
  const cap = rule.capacity;
  $("f-capacity-on").checked = Boolean(cap);
  $("f-min-free").value = cap?.min_free ?? 1;
  $("f-max-wait").value = cap?.max_wait_s ?? "";
  $("f-min-agents").value = cap?.min_agents ?? "";
  toggleCapacity();
}

function toggleCapacity() {
  const on = $("f-capacity-on").checked;
  for (const el of $("capacity-fields").querySelectorAll("input")) el.disabled = !on;
  $("capacity-fields").classList.toggle("note", !on);
}

// The capacity clause: min_free at its default (1) left out, as the server writes it.
function capacityOf() {
  const c = {};
  const minFree = numberOf($("f-min-free"));
  if (minFree !== undefined && minFree !== 1) c.min_free = minFree;
  const maxWait = numberOf($("f-max-wait"));
  if (maxWait !== undefined) c.max_wait_s = maxWait;
  const minAgents = numberOf($("f-min-agents"));
  if (minAgents !== undefined) c.min_agents = minAgents;
  return c;
}

function fillTimeframe(tf) {
  $("f-timeframe-on").checked = Boolean(tf);
  const t = tf || {};
  $("f-timezone").value = t.timezone || "UTC";
  $("f-start-date").value = t.start_date || "";
  $("f-end-date").value = t.end_date || "";
  for (const day of DAYS) $(`f-day-${day}`).checked = Boolean(t.days && t.days.includes(day));
  const [from, to] = t.hours ? t.hours.split("-") : ["", ""];
  $("f-hours-from").value = from || "";
  $("f-hours-to").value = to || "";
  toggleTimeframe();
}

function toggleTimeframe() {
  const on = $("f-timeframe-on").checked;
  for (const el of $("timeframe-fields").querySelectorAll("input")) el.disabled = !on;
  $("timeframe-fields").classList.toggle("note", !on);
  noteHours();
}

// "22:00-06:00" is allowed and spans midnight: say so, so that it is not taken for a typo.
function noteHours() {
  const from = $("f-hours-from").value, to = $("f-hours-to").value;
  const overnight = /^\d\d:\d\d$/.test(from) && /^\d\d:\d\d$/.test(to) && to < from;
  $("hours-note").textContent = overnight ? `overnight: from ${from} until ${to} the next day` : "";
}

// The rule as the form says, leaving out what is at its default (as the server writes it).
function formToRule() {
  const rule = { id: $("f-id").value.trim() };
  if (!$("f-enabled").checked) rule.enabled = false;
  if ($("f-mode").value !== "live") rule.mode = $("f-mode").value;
  const priority = numberOf($("f-priority"));
  if (priority !== undefined && priority !== 0) rule.priority = priority;
  const audience = audienceOf();
  if (Object.keys(audience).length) rule.audience = audience;
  const location = {};
  const include = lines($("f-include").value), exclude = lines($("f-exclude").value);
  if (include.length) location.include = include;
  if (exclude.length) location.exclude = exclude;
  if (Object.keys(location).length) rule.location = location;
  if ($("f-timeframe-on").checked) rule.timeframe = timeframeOf();
  rule.trigger = triggerOf();
  rule.message = messageOf();
  const queue = $("f-queue").value.trim();
  if (queue !== "default") rule.queue = queue;
  const frequency = frequencyOf();
  if (Object.keys(frequency).length) rule.frequency = frequency;
  const holdout = numberOf($("f-holdout"));
  if (holdout !== undefined && holdout !== 0) rule.holdout_pct = holdout;
  if ($("f-capacity-on").checked) rule.capacity = capacityOf();
  return rule;
}

function timeframeOf() {
  const tf = { timezone: $("f-timezone").value.trim() || "UTC" };
  if ($("f-start-date").value) tf.start_date = $("f-start-date").value;
  if ($("f-end-date").value) tf.end_date = $("f-end-date").value;
  const days = DAYS.filter((d) => $(`f-day-${d}`).checked);
  if (days.length) tf.days = days;
  const from = $("f-hours-from").value.trim(), to = $("f-hours-to").value.trim();
  if (from || to) tf.hours = `${from}-${to}`;
  return tf;
}

// --- the journey: a list of steps, or an object of clauses ------------------------------------

// Both forms fill the same fields: the list is the steps.
function fillJourney(journey) {
  const list = journey === undefined || journey === null || Array.isArray(journey);
  const j = list ? { steps: journey || [] } : journey;
  state.journey = { list, shown: {} };
  showGlobs("f-journey", j.steps);
  $("f-within").value = j.within ?? "";
  showGlobs("f-without", j.without);
  $("min-views-rows").querySelector("tbody").replaceChildren(
    ...(j.min_views || []).map((count) => minViewsRow(count.glob, count.at_least)));
  $("f-returned").checked = j.returned === true;
  noteJourneyForm(list);
}

function showGlobs(id, globs) {
  $(id).value = (globs || []).join("\n");
  if (globs) state.journey.shown[id] = [$(id).value, globs];
}

// A glob list as typed; untouched, the very list that was filled in (one a line, trimmed,
// could change a glob that holds a line break or starts or ends with a space).
function globsOf(id) {
  const shown = state.journey.shown[id];
  return shown && shown[0] === $(id).value ? clone(shown[1]) : lines($(id).value);
}

// The journey as the form says. Steps alone are written as they were filled in, a list or
// `{steps: …}` (the two are different rules versions); any other clause needs the object.
function journeyOf() {
  const j = {};
  const steps = globsOf("f-journey");
  if (steps.length) j.steps = steps;
  const within = numberOf($("f-within"));
  if (within !== undefined) j.within = within;
  const without = globsOf("f-without");
  if (without.length) j.without = without;
  const counts = minViewsOf();
  if (counts.length) j.min_views = counts;
  if ($("f-returned").checked) j.returned = true;
  const clauses = Object.keys(j);
  if (!clauses.length) { noteJourneyForm(state.journey.list); return undefined; }
  const list = state.journey.list && clauses.length === 1 && j.steps !== undefined;
  noteJourneyForm(list);
  return list ? j.steps : j;
}

function noteJourneyForm(list) {
  $("journey-form").textContent = list
    ? "Steps alone are written as a list: journey: [a, b]."
    : "Written as an object: journey: {steps: [a, b], …}.";
}

// Page counts: errors come back on `trigger.journey.min_views[i].glob|at_least`, i
// counting the rows sent (an empty row is not).
function minViewsRow(glob = "", atLeast = "") {
  const tr = document.createElement("tr");
  const count = input("at-least", atLeast, "3");
  count.type = "number";
  count.min = "1";
  count.max = "100";
  count.step = "1";
  tr.append(td(input("glob", glob, "*/products/*")), td(count), td(button("Remove", "small remove", () => {
    tr.remove();
    formChanged();
  })));
  return tr;
}

function minViewsOf() {
  const counts = [];
  for (const tr of $("min-views-rows").querySelectorAll("tbody tr")) {
    const glob = tr.querySelector(".glob"), atLeast = tr.querySelector(".at-least");
    delete glob.dataset.path;
    delete atLeast.dataset.path;
    const count = {};
    if (glob.value.trim()) count.glob = glob.value.trim();
    const n = numberOf(atLeast);
    if (n !== undefined) count.at_least = n;
    if (!Object.keys(count).length) continue;
    const path = `trigger.journey.min_views[${counts.length}]`;
    glob.dataset.path = `${path}.glob`;
    atLeast.dataset.path = `${path}.at_least`;
    counts.push(count);
  }
  return counts;
}

function triggerOf() {
  const t = {};
  const put = (key, value) => { if (value !== undefined && value !== "") t[key] = value; };
  put("dwell_seconds", numberOf($("f-dwell")));
  put("session_seconds", numberOf($("f-session")));
  put("pages_in_session", numberOf($("f-pages")));
  const journey = journeyOf();
  if (journey !== undefined) t.journey = journey;
  put("scroll_pct", numberOf($("f-scroll")));
  put("event", $("f-event").value.trim());
  return t;
}

function messageOf() {
  const message = { text: $("f-text").value };
  const locales = {};
  for (const tr of $("locale-rows").querySelectorAll("tbody tr")) {
    const tag = tr.querySelector(".tag").value.trim();
    if (tag) locales[tag] = tr.querySelector(".text").value;
  }
  if (Object.keys(locales).length) message.locales = locales;
  return message;
}

function frequencyOf() {
  const f = {};
  const perSession = numberOf($("f-per-session"));
  if (perSession === undefined) f.per_session = null; // empty: no cap per session
  else if (perSession !== 1) f.per_session = perSession;
  const perDay = numberOf($("f-per-day"));
  if (perDay !== undefined) f.per_day = perDay;
  const quiet = numberOf($("f-after-decline"));
  if (quiet !== undefined) f.after_decline_days = quiet;
  return f;
}

// A number input's value; a value that is not a number is sent as typed, so that the
// server's reason ("must be an integer") is the one shown.
function numberOf(input) {
  const text = input.value.trim();
  if (text === "") return undefined;
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}

const lines = (text) => text.split("\n").map((s) => s.trim()).filter(Boolean);

// --- audience rows: attribute, operator, value ---------------------------------------------

function fillAudience(audience) {
  const rows = [];
  for (const [attr, predicate] of Object.entries(audience)) {
    if (predicate && typeof predicate === "object" && !Array.isArray(predicate)) {
      for (const [op, value] of Object.entries(predicate)) rows.push(audienceRow(attr, op, value));
    } else {
      rows.push(audienceRow(attr, "equals", predicate));
    }
  }
  $("audience-rows").querySelector("tbody").replaceChildren(...rows);
}

function audienceRow(attr = "", op = "equals", value = "") {
  const tr = document.createElement("tr");
  const name = input("attr", attr, "plan");
  const select = document.createElement("select");
  select.className = "op";
  for (const o of OPERATORS) select.append(new Option(o === "equals" ? "is" : o.replace("_", " "), o));
  select.value = op;
  const shown = Array.isArray(value) ? value.map(scalarText).join(", ") : value === "" ? "" : scalarText(value);
  const val = input("value", shown, "pro");
  tr.append(td(name), td(select), td(val), td(button("Remove", "small remove", () => {
    tr.remove();
    formChanged();
  })));
  pathOfAudienceRow(tr);
  return tr;
}

// Errors come back on `audience.<attribute>` or `audience.<attribute>.<operator>`.
function pathOfAudienceRow(tr) {
  const attr = tr.querySelector(".attr").value.trim(), op = tr.querySelector(".op").value;
  tr.querySelector(".attr").dataset.path = `audience.${attr}`;
  tr.querySelector(".value").dataset.path = op === "equals" ? `audience.${attr}` : `audience.${attr}.${op}`;
}

function audienceOf() {
  const audience = {};
  for (const tr of $("audience-rows").querySelectorAll("tbody tr")) {
    pathOfAudienceRow(tr);
    const attr = tr.querySelector(".attr").value.trim();
    if (!attr) continue;
    const op = tr.querySelector(".op").value, text = tr.querySelector(".value").value;
    if (op === "equals") { audience[attr] = parseScalar(text); continue; }
    const ops = audience[attr] && typeof audience[attr] === "object" ? audience[attr] : {};
    ops[op] = op === "in" || op === "not_in" ? parseList(text) : parseScalar(text);
    audience[attr] = ops;
  }
  return audience;
}

// `3` is a number, `true` a boolean, `null` null, `"3"` the text 3, anything else text.
function parseScalar(text) {
  const t = text.trim();
  if (/^(-?\d+(\.\d+)?([eE][-+]?\d+)?|true|false|null|".*")$/.test(t)) {
    try { return JSON.parse(t); } catch { return t; }
  }
  return t;
}

function parseList(text) {
  try {
    const list = JSON.parse(`[${text}]`); // `"a, b", 3`: quoted items may hold commas
    if (list.every((v) => v === null || typeof v !== "object")) return list;
  } catch { /* plain words: split on commas */ }
  return text.split(",").map((s) => s.trim()).filter(Boolean).map(parseScalar);
}

function scalarText(value) {
  if (typeof value !== "string") return String(value);
  return parseScalar(value) === value && !value.includes(",") ? value : JSON.stringify(value);
}

// --- locale rows -----------------------------------------------------------------------------

function localeRow(tag = "", text = "") {
  const tr = document.createElement("tr");
  const tagInput = input("tag", tag, "fr");
  const textInput = input("text", text, "Bonjour {first_name|}…");
  // Errors come back on `message.locales.<tag>`: both inputs claim that path.
  const path = () => {
    textInput.dataset.path = tagInput.dataset.path = `message.locales.${tagInput.value.trim()}`;
  };
  tagInput.addEventListener("input", path);
  path();
  tr.append(td(tagInput), td(textInput), td(button("Remove", "small remove", () => {
    tr.remove();
    formChanged();
  })));
  return tr;
}

// --- keeping form, YAML and server in step ------------------------------------------------

function formChanged() {
  if (state.current === null) return;
  const rule = formToRule();
  state.draft[state.current] = rule;
  $("editor-rule").textContent = rule.id;
  noteHours();
  scheduleValidate();
}

function scheduleValidate() {
  clearTimeout(state.timer);
  $("yaml-state").textContent = "checking…";
  state.timer = setTimeout(() => validate({ rules: state.draft, queues: state.queues }, false), VALIDATE_MS);
}

function yamlChanged() {
  clearTimeout(state.timer);
  $("yaml-state").textContent = "checking…";
  state.timer = setTimeout(() => validate({ yaml: $("yaml").value }, true), VALIDATE_MS);
}

async function validate(draft, fromYaml) {
  const seq = ++state.seq;
  const body = { ...draft };
  const sample = sampleVisitor();
  if (sample) body.sample = sample;
  const r = await api("POST", "/api/rules/validate", body);
  if (seq !== state.seq) return; // a newer change is being checked already
  if (r.status === 200) return accepted(r.data, fromYaml);
  if (r.status === 422) return rejected(r.data.errors || [], fromYaml);
  $("yaml-state").textContent = `not checked: ${reasonOf(r)}`;
}

function accepted(checked, fromYaml) {
  if (fromYaml) {
    // The YAML is the whole draft: take its rules, and keep editing the same rule.
    const id = state.current === null ? null : state.draft[state.current].id;
    state.draft = clone(checked.rules);
    state.queues = clone(checked.queues || {});
    state.queueRows = null; // its budgets may have changed: fill the inputs again
    const at = state.draft.findIndex((r) => r.id === id);
    state.current = at >= 0 ? at : state.current !== null && state.current < state.draft.length ? state.current : null;
    showEditor();
  }
  state.checked = checked;
  state.valid = true;
  // Don't rewrite the YAML under the cursor of someone typing in it.
  if (!fromYaml || document.activeElement !== $("yaml")) $("yaml").value = checked.yaml;
  $("yaml-state").textContent = checked.version === state.inForce.version
    ? `version ${checked.version}, as in force` : `version ${checked.version}`;
  $("yaml-state").className = "ok";
  $("yaml-errors").replaceChildren();
  clearFieldErrors();
  $("form-errors").replaceChildren();
  $("queues-errors").replaceChildren();
  renderRendered();
  renderRulesTable();
}

function rejected(errors, fromYaml) {
  state.valid = false;
  $("yaml-state").textContent = `${errors.length} problem${errors.length === 1 ? "" : "s"}`;
  $("yaml-state").className = "error";
  showErrors(errors, fromYaml);
  renderRulesTable();
}

// Each error beside the field its path names (the longest path a field claims), the
// rest, and those of other rules, in the list at the top of the form.
function showErrors(errors, fromYaml) {
  clearFieldErrors();
  const unmatched = [];
  const queues = [];
  for (const error of errors) {
    const ofQueues = error.index === null && /^queues(\.|$)/.test(error.path);
    const target = fromYaml ? null
      : ofQueues ? queueField(error.path)
      : error.index !== null && error.index === state.current
        ? fieldFor(error.path, state.draft[state.current]) : null;
    if (target) markField(target, error.reason);
    else (ofQueues ? queues : unmatched).push(error);
  }
  $("form-errors").replaceChildren(...unmatched.map((e) => li(describeError(e))));
  $("queues-errors").replaceChildren(...queues.map((e) => li(describeError(e))));
  $("yaml-errors").replaceChildren(...(fromYaml ? errors : []).map((e) => li(describeError(e))));
}

function describeError(e) {
  const rule = e.rule_id ? `${e.rule_id}: ` : e.index !== null ? `rule ${e.index + 1}: ` : "";
  return `${rule}${e.path || "the draft"}: ${e.reason}`;
}

// `a.b[2].c`, then `a.b[2]`, `a.b`, `a`: the first that a field claims.
function fieldFor(path, rule) {
  if (!path) return null;
  // A journey written as a list is the steps: `trigger.journey[1]` is a step.
  let wanted = Array.isArray(rule?.trigger?.journey)
    ? path.replace(/^trigger\.journey(?=\[|$)/, "trigger.journey.steps") : path;
  while (wanted) {
    const el = $("editor").querySelector(`[data-path="${CSS.escape(wanted)}"]:not(:disabled)`);
    if (el) return el;
    const shorter = wanted.replace(/(\.[^.[\]]*|\[\d+\])$/, "");
    if (shorter === wanted) break;
    wanted = shorter;
  }
  return null;
}

// `queues.sales.budget.per`, or the row's number for `queues.sales.budget` and `queues.sales`.
function queueField(path) {
  const table = $("queues-table");
  const exact = [...table.querySelectorAll("[data-path]")].find((el) => el.dataset.path === path);
  const row = [...table.querySelectorAll("tr[data-queue]")]
    .find((tr) => path.startsWith(`queues.${tr.dataset.queue}.`) || path === `queues.${tr.dataset.queue}`);
  return exact || (row ? row.querySelector(".budget-invitations") : null);
}

function markField(target, reason) {
  const note = document.createElement("span");
  note.className = "field-error";
  note.setAttribute("role", "alert");
  note.dataset.for = target.dataset.path;
  note.textContent = reason;
  if (target.matches("input, select, textarea")) {
    target.classList.add("invalid");
    target.setAttribute("aria-invalid", "true");
    (target.closest("label") || target.parentElement).append(note);
  } else if (target.matches("table")) {
    target.after(note);
  } else {
    target.append(note);
  }
}

function clearFieldErrors() {
  const marked = "#editor .field-error, #queues-table .field-error";
  for (const el of document.querySelectorAll(marked)) el.remove();
  for (const el of document.querySelectorAll("#editor .invalid, #queues-table .invalid")) {
    el.classList.remove("invalid");
    el.removeAttribute("aria-invalid");
  }
}

function sampleVisitor() {
  const text = $("sample").value.trim();
  if (!text) { $("sample-error").textContent = ""; return null; }
  try {
    const sample = JSON.parse(text);
    if (!sample || typeof sample !== "object" || Array.isArray(sample)) throw new Error("not an object");
    $("sample-error").textContent = "";
    return sample;
  } catch (err) {
    $("sample-error").textContent = `The sample visitor must be a JSON object (${err.message}); the built-in one is used.`;
    return null;
  }
}

function renderRendered() {
  const box = $("rendered");
  const rule = state.current === null ? null : state.draft[state.current];
  const out = rule && state.checked ? state.checked.rendered[rule.id] : null;
  if (!out) { box.replaceChildren(); return; }
  const shown = [paragraph("", out.text, "rendered-text")];
  for (const [tag, text] of Object.entries(out.locales)) shown.push(paragraph(tag, text, `rendered-${tag}`));
  box.replaceChildren(...shown);
}

// --- preview -----------------------------------------------------------------------------

async function runPreview() {
  const request = { rules: state.draft, queues: state.queues };
  let r;
  if ($("preview-source-file").checked) {
    const file = $("preview-file").files[0];
    if (!file) { $("preview-status").textContent = "Choose a recording (a JSON-lines file) first."; return; }
    const form = new FormData();
    form.append("request", new Blob([JSON.stringify(request)], { type: "application/json" }), "request.json");
    form.append("events", file, file.name);
    const capacity = $("preview-capacity-file").files[0];
    if (capacity) form.append("capacity", capacity, capacity.name);
    r = await api("POST", "/api/rules/preview?async=1", undefined, form);
  } else {
    request.source = { hours: Number($("preview-hours").value) };
    r = await api("POST", "/api/rules/preview?async=1", request);
  }
  if (r.status === 202) return followJob(r.data.job);
  if (r.status === 422 && r.data.errors) rejected(r.data.errors, false);
  $("preview-status").textContent = `The preview did not start: ${reasonOf(r)}`;
}

function followJob(job) {
  state.job = job;
  $("preview-run").disabled = true;
  $("preview-cancel").hidden = false;
  $("preview-progress").hidden = false;
  $("preview-progress").value = 0;
  $("preview-status").textContent = "Running…";
  pollJob(job);
}

async function pollJob(job) {
  if (state.job !== job) return;
  const r = await api("GET", `/api/rules/preview/${encodeURIComponent(job)}`);
  if (r.status !== 200) return endJob(`The preview was lost: ${reasonOf(r)}`);
  const j = r.data;
  if (j.total) $("preview-progress").value = j.done / j.total;
  if (j.state === "running") {
    $("preview-status").textContent = j.total ? `Running… ${Math.floor((100 * j.done) / j.total)}%` : "Running…";
    setTimeout(() => pollJob(job), POLL_JOB_MS);
    return;
  }
  if (j.state === "done") { renderPreview(j.result); return endJob("Done."); }
  endJob(j.state === "cancelled" ? "Cancelled." : `Failed: ${j.error}`);
}

function endJob(text) {
  state.job = null;
  $("preview-run").disabled = false;
  $("preview-cancel").hidden = true;
  $("preview-progress").hidden = true;
  $("preview-status").textContent = text;
}

async function cancelPreview() {
  if (state.job) await api("DELETE", `/api/rules/preview/${encodeURIComponent(state.job)}`);
}

function renderPreview(p) {
  const bad = p.bad_lines ? `, ${num(p.bad_lines)} bad line${p.bad_lines === 1 ? "" : "s"} skipped` : "";
  $("preview-summary").textContent = `${num(p.events)} events from ${num(p.visitors)} visitors${bad}, `
    + `in ${p.seconds} s. Draft ${p.draft.version} against version ${p.in_force.version} in force.`;
  $("preview-capacity").textContent = capacityWords(p.capacity);
  const rows = [];
  for (const r of p.rules) rows.push(previewRow(r), samplesRow(r));
  if (!p.rules.length) rows.push(emptyRow("Neither set has a rule.", 11));
  $("preview-table").querySelector("tbody").replaceChildren(...rows);
  $("preview-table").hidden = false;
}

// What capacity the preview decided with, and what "unknown" meant where none applied.
function capacityWords(c) {
  const plural = (n, word) => `${num(n)} ${word}${n === 1 ? "" : "s"}`;
  const unknown = `rules with a capacity clause ${c.unknown === "deny" ? "were suppressed (no_capacity)" : "could invite"}`
    + ` (BECKON_CAPACITY_UNKNOWN=${c.unknown})`;
  const bad = c.bad_lines ? ` ${plural(c.bad_lines, "bad capacity record")} left out.` : "";
  if (!c.records) return `No capacity records: every queue's capacity was unknown, so ${unknown}.${bad}`;
  return `Capacity: ${plural(c.records, "record")} of ${plural(c.queues, "queue")}, the oldest measured `
    + `${c.oldest}. Where no record applied, capacity was unknown and ${unknown}.${bad}`;
}

function previewRow(r) {
  const tr = document.createElement("tr");
  tr.dataset.rule = r.rule_id;
  const name = cell(r.rule_id, "rule-id");
  if (!r.in.includes("in_force")) name.append(badge("draft only", "new"));
  if (!r.in.includes("draft")) name.append(badge("not in the draft", "deleted"));
  const diff = (n, cls) => cell(signed(n), `num ${n > 0 ? "plus" : n < 0 ? "minus" : ""} ${cls}`);
  tr.append(
    name,
    cell(num(r.draft.invitations), "num draft-invitations"),
    cell(num(r.in_force.invitations), "num in-force-invitations"),
    diff(r.difference.invitations, "diff-invitations"),
    cell(num(r.draft.visitors), "num draft-visitors"),
    cell(num(r.in_force.visitors), "num in-force-visitors"),
    diff(r.difference.visitors, "diff-visitors"),
    reasons(r.draft.suppressed, "draft-suppressed"), reasons(r.in_force.suppressed, "in-force-suppressed"),
    cell(num(r.draft.shadow), "num draft-shadow"), cell(num(r.in_force.shadow), "num in-force-shadow"),
  );
  return tr;
}

// The first visitors the draft decided on, and why: what to check before publishing.
function samplesRow(r) {
  const tr = document.createElement("tr");
  tr.className = "samples";
  tr.dataset.samplesOf = r.rule_id;
  const td = cell(r.sample.length ? "With the draft, for example:" : "The draft decides nothing for this rule here.");
  td.colSpan = 11;
  if (r.sample.length) {
    const ul = document.createElement("ul");
    for (const s of r.sample) {
      const outcome = s.reason ? `${s.outcome} (${s.reason})` : s.outcome;
      ul.append(li(`${s.visitor_id} at ${when(s.triggered_at)}: ${outcome} — ${s.why}`));
    }
    td.append(ul);
  }
  tr.append(td);
  return tr;
}

// --- publish -----------------------------------------------------------------------------

async function publish() {
  const comment = $("publish-comment").value.trim();
  const say = (text, bad) => { $("publish-status").textContent = text; $("publish-status").className = bad ? "error" : "ok"; };
  if (!comment) { say("Write a comment first: what changes, and why.", true); $("publish-comment").focus(); return; }
  $("publish").disabled = true;
  try {
    const r = await api("POST", "/api/rules/publish", { rules: state.draft, queues: state.queues, comment, expected_version: state.base });
    if (r.status === 200) {
      const e = r.data;
      say(e.entry ? `Published version ${e.version}${e.published.length ? `; sent: ${e.published.join(", ")}` : ""}`
        + `${e.deleted.length ? `; deleted: ${e.deleted.join(", ")}` : ""}.`
        : "Nothing to publish: the draft is the set in force.", false);
      $("publish-comment").value = "";
      await loadInForce(true);
      await loadHistory();
    } else if (r.status === 409) {
      // Someone published after this draft was started: show their set, keep the draft.
      say(`Someone published version ${r.data.version} since this draft was started from `
        + `version ${state.base}. The rules in force above are theirs now; your draft is kept: `
        + "check it against them, then publish again.", true);
      await loadInForce(false);
      state.base = r.data.version;
      renderRulesTable();
      await loadHistory();
    } else if (r.status === 422) {
      rejected(r.data.errors || [], false);
      say("The draft is not valid: see the editor.", true);
    } else {
      say(`Not published: ${reasonOf(r)}`, true);
    }
  } finally {
    $("publish").disabled = false;
  }
}

// --- history and rollback ------------------------------------------------------------------

async function loadHistory() {
  const r = await api("GET", "/api/rules/history");
  if (r.status !== 200) { $("history-status").textContent = `The history cannot be read: ${reasonOf(r)}`; return; }
  const versions = r.data.versions;
  $("history-status").textContent = versions.length ? "" : "Nothing published yet.";
  $("history").replaceChildren(...versions.map((entry, i) => historyItem(entry, i === 0)));
}

function historyItem(entry, newest) {
  const item = document.createElement("li");
  item.dataset.version = entry.version;
  const current = state.inForce && entry.version === state.inForce.version;
  if (newest && current) item.classList.add("current");
  const head = document.createElement("div");
  head.className = "head";
  head.append(span(entry.version, "version"), badge(entry.action, entry.action),
    span(entry.author, "author"), span(when(entry.at), "at note"));
  if (newest && current) head.append(badge("in force", "changed"));
  // Every earlier version can be published again; the one in force needs no rollback.
  if (mayEdit() && !current) {
    head.append(button(`Roll back to ${entry.version}`, "small rollback", () => rollback(entry.version)));
  }
  const d = entry.diff;
  const summary = [["added", d.added], ["removed", d.removed], ["changed", d.changed],
    ["budget changed", d.queues || []]]
    .filter(([, ids]) => ids.length).map(([k, ids]) => `${k}: ${ids.join(", ")}`).join(" · ");
  const details = document.createElement("details");
  details.open = newest;
  const label = document.createElement("summary");
  label.textContent = summary || "no rule changed";
  const pre = diffText(d.text);
  details.append(label, pre);
  item.append(head, paragraph("", entry.comment || "(no comment)", "comment"), details);
  return item;
}

// The unified diff, its added and removed lines coloured (each line is still plain text).
function diffText(text) {
  const pre = document.createElement("pre");
  pre.className = "diff";
  if (!text) { pre.textContent = "(no difference)"; return pre; }
  for (const line of text.split(/(?<=\n)/)) {
    const kind = /^\+(?!\+\+)/.test(line) ? "plus" : /^-(?!--)/.test(line) ? "minus" : "";
    pre.append(kind ? span(line, kind) : document.createTextNode(line));
  }
  return pre;
}

async function rollback(version) {
  const unchanged = state.checked && state.valid && state.checked.version === state.inForce.version;
  const r = await api("POST", "/api/rules/rollback", { version, expected_version: state.inForce.version });
  if (r.status === 200) {
    // A draft with changes of its own is kept (publishing it will say it is behind).
    await loadInForce(unchanged);
    await loadHistory();
    $("history-status").textContent = `Rolled back: version ${r.data.version} is in force.`;
  } else {
    $("history-status").textContent = `Not rolled back: ${reasonOf(r)}`;
  }
}

// --- small DOM helpers -----------------------------------------------------------------------

function cell(text, className) {
  const el = document.createElement("td");
  el.textContent = text;
  if (className) el.className = className;
  return el;
}

function td(child) {
  const el = document.createElement("td");
  el.append(child);
  return el;
}

function li(text) {
  const el = document.createElement("li");
  el.textContent = text;
  return el;
}

function span(text, className) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

function paragraph(tag, text, className) {
  const p = document.createElement("p");
  p.className = className;
  if (tag) p.append(span(tag, "tag"));
  p.append(document.createTextNode(text));
  return p;
}

function badge(text, kind) {
  return span(text, `badge ${kind}`);
}

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function input(className, value, placeholder) {
  const el = document.createElement("input");
  el.className = className;
  el.value = value;
  el.placeholder = placeholder;
  return el;
}

function reasons(suppressed, className) {
  const el = cell("", className);
  for (const [reason, n] of Object.entries(suppressed || {})) {
    el.append(span(`${reason} ${fmt.format(n)}`, "reason"));
  }
  if (!el.childNodes.length) el.textContent = "–";
  return el;
}

function emptyRow(text, columns) {
  const tr = document.createElement("tr");
  tr.className = "empty";
  const el = cell(text);
  el.colSpan = columns;
  tr.append(el);
  return tr;
}

// --- wiring ----------------------------------------------------------------------------------

function fillStaticChoices() {
  const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  $("timezones").replaceChildren(...["UTC", ...zones.filter((z) => z !== "UTC")].map((z) => new Option(z)));
  for (const day of DAYS) {
    const label = document.createElement("label");
    label.className = "check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.id = `f-day-${day}`;
    box.value = day;
    label.append(box, document.createTextNode(` ${day}`));
    $("f-days").append(label);
  }
  $("sample").value = JSON.stringify(SAMPLE_VISITOR, null, 2);
}

function wireEvents() {
  $("signin-form").addEventListener("submit", signIn);
  $("signout").addEventListener("click", signOut);
  $("new-rule").addEventListener("click", newRule);
  $("draft-reset").addEventListener("click", () => loadInForce(true));
  $("editor").addEventListener("input", formChanged);
  $("editor").addEventListener("change", formChanged);
  $("editor").addEventListener("submit", (e) => e.preventDefault());
  $("queues-table").addEventListener("input", budgetChanged);
  $("queues-table").addEventListener("change", budgetChanged);
  $("f-timeframe-on").addEventListener("change", toggleTimeframe);
  $("f-capacity-on").addEventListener("change", toggleCapacity);
  $("audience-add").addEventListener("click", () => {
    $("audience-rows").querySelector("tbody").append(audienceRow());
    formChanged();
  });
  $("min-views-add").addEventListener("click", () => {
    $("min-views-rows").querySelector("tbody").append(minViewsRow());
    formChanged();
  });
  $("locale-add").addEventListener("click", () => {
    $("locale-rows").querySelector("tbody").append(localeRow());
    formChanged();
  });
  $("yaml").addEventListener("input", yamlChanged);
  $("sample").addEventListener("input", scheduleValidate);
  $("preview-file").addEventListener("change", () => { $("preview-source-file").checked = true; });
  $("preview-capacity-file").addEventListener("change", () => { $("preview-source-file").checked = true; });
  $("preview-hours").addEventListener("input", () => { $("preview-source-hours").checked = true; });
  $("preview-run").addEventListener("click", runPreview);
  $("preview-cancel").addEventListener("click", cancelPreview);
  $("publish").addEventListener("click", publish);
  setInterval(() => { if (state.session) loadInForce(false); }, POLL_RULES_MS);
}

start();
