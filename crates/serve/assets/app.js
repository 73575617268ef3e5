// tickwatch dashboard. Plain ES2020, no dependencies, no build step.
// Every string from the server is untrusted: the DOM is built with createElement, setAttribute and
// text nodes only (never innerHTML), so a symbol like `<img src=x onerror=…>` shows as that text.
"use strict";

const MAX_ALERTS = 500;  // rows kept in the alerts table
const FETCH_LIMIT = 500; // ?limit= for GET /api/alerts (fills the table)
const FLUSH_MS = 250;    // live updates are rendered at most this often
const HOT_MS = 5000;
const POINTS_MAX = 60;  // recent prices kept per symbol (the server's BOARD_POINTS_MAX)     // a board row stays "hot" this long after its last alert changed
const ZONE_RANK = { above: 0, below: 1, inside: 2 };

const $ = (id) => document.getElementById(id);

// ---------- DOM and formatting helpers ----------

// el("td", "num price", "151.25") or el("td", { class: "symbol", title: s }, s, otherNode).
// Attributes go through setAttribute, children through append (strings become text nodes).
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  if (typeof props === "string") e.className = props;
  else if (props) for (const [k, v] of Object.entries(props)) if (v != null) e.setAttribute(k, String(v));
  for (const c of children) if (c != null) e.append(c instanceof Node ? c : String(c));
  return e;
}

function svgEl(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// Fixed locale: a desk tool reads the same everywhere (a price is never "151,25").
const fmtInt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fmtRate = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const fmtPrice = new Intl.NumberFormat("en-US", { maximumFractionDigits: 6, useGrouping: false });
const num = (fmt, v) => (typeof v === "number" && Number.isFinite(v) ? fmt.format(v) : "–");
const pad = (n, w = 2) => String(n).padStart(w, "0");
const plural = (n, word) => `${fmtInt.format(n)} ${word}${n === 1 ? "" : "s"}`;
const kindClass = (kind) => `kind-${kind === "LOW" ? "LOW" : "HIGH"}`;

// Local wall-clock time (with ms unless ms=false); the date is added when it is not today.
function fmtTime(iso, ms = true) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return iso == null ? "–" : String(iso);
  const d = new Date(t);
  let hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (ms) hms += `.${pad(d.getMilliseconds(), 3)}`;
  if (d.toDateString() === new Date().toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms}`;
}

const timeEl = (iso, ms = true) => el("time", iso ? { datetime: iso, title: iso } : null, fmtTime(iso, ms));

// Whole-list children update that touches only what moved: new alerts are mostly a prepend plus a
// trim at the end, which is far cheaper than replacing all 500 rows on every flush.
function reconcile(parent, nodes) {
  let cursor = parent.firstChild;
  for (const node of nodes) {
    if (node === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(node, cursor);
  }
  while (cursor) {
    const next = cursor.nextSibling;
    cursor.remove();
    cursor = next;
  }
}

// The aria-live status line: short messages only; new-alert counts are summed over 3 s.
const setStatus = (text) => { $("status").textContent = text; };
let newAlertCount = 0;
let statusTimer = 0;
function noteNewAlerts(n) {
  newAlertCount += n;
  if (statusTimer) return;
  statusTimer = setTimeout(() => {
    statusTimer = 0;
    if (newAlertCount > 0) setStatus(`${plural(newAlertCount, "new alert")}`);
    newAlertCount = 0;
  }, 3000);
}

// ---------- HTTP ----------

class ApiError extends Error {
  constructor(field, reason) {
    super(reason);
    this.field = field;
  }
}

// fetch + JSON. Writes carry the headers the server demands; errors become ApiError(field, reason).
async function api(method, path, body) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") {
    init.headers["Content-Type"] = "application/json";
    init.headers["X-Tickwatch-Request"] = "1";
    init.body = JSON.stringify(body || {});
  }
  const res = await fetch(path, init);
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(err.field ? String(err.field) : null,
      err.reason ? String(err.reason) : `HTTP ${res.status} ${res.statusText}`.trim());
  }
  return data || {};
}

// ---------- render scheduling (coalescing) ----------
// Event handlers only update models and mark a part dirty; one flush per FLUSH_MS renders them.

const dirty = { alerts: false, board: false, health: false, rules: false };
let flushTimer = 0;
let lastFlush = 0;

function schedule(part) {
  dirty[part] = true;
  if (flushTimer) return;
  const wait = Math.max(0, lastFlush + FLUSH_MS - performance.now());
  flushTimer = setTimeout(() => requestAnimationFrame(flush), wait);
}

function flush() {
  flushTimer = 0;
  lastFlush = performance.now();
  const renders = { alerts: renderAlerts, board: renderBoard, health: renderHealth, rules: renderRules };
  for (const [part, render] of Object.entries(renders)) {
    if (dirty[part]) { dirty[part] = false; render(); }
  }
}

// ---------- alerts ----------

const alerts = {
  byId: new Map(),  // alert_id -> alert (only those listed)
  list: [],         // newest first, at most MAX_ALERTS
  pending: [],      // live alerts not merged yet
  rows: new Map(),  // alert_id -> <tr>
  skipped: 0,       // sum of `skipped` since the list was (re)loaded
  fetchSeq: 0,      // only the newest GET /api/alerts counts
  loadedFilter: "", // the filter of the last fetch, as JSON
};

const currentFilter = () => ({
  symbol: $("filter-symbol").value.trim(),
  kind: $("filter-kind").value,
  rule: $("filter-rule").value.trim(),
});

const matchesFilter = (a, f) =>
  (!f.symbol || a.symbol === f.symbol) && (!f.kind || a.kind === f.kind) && (!f.rule || a.rule_id === f.rule);

function alertTime(a) {
  if (a._t === undefined) a._t = Date.parse(a.timestamp) || 0;
  return a._t;
}

const compareAlerts = (a, b) => alertTime(b) - alertTime(a) ||
  String(b.processed_at).localeCompare(String(a.processed_at)) || String(b.alert_id).localeCompare(String(a.alert_id));

// Merge alerts into the list: dedupe by alert_id (a repeat may only flip `announced` to true),
// keep newest first, drop the oldest beyond MAX_ALERTS. Returns how many were new.
function mergeAlerts(batch) {
  const f = currentFilter();
  let added = 0;
  for (const a of batch) {
    if (!a || a.alert_id == null || !matchesFilter(a, f)) continue;
    const old = alerts.byId.get(String(a.alert_id));
    if (old) {
      if (a.announced && !old.announced) { old.announced = true; old._dirty = true; }
      continue;
    }
    alerts.byId.set(String(a.alert_id), a);
    alerts.list.push(a);
    added++;
  }
  if (added) {
    alerts.list.sort(compareAlerts);
    for (const gone of alerts.list.splice(MAX_ALERTS)) {
      alerts.byId.delete(String(gone.alert_id));
      alerts.rows.delete(String(gone.alert_id));
    }
  }
  return added;
}

function onLiveAlerts(msg) {
  if (Array.isArray(msg.alerts)) alerts.pending.push(...msg.alerts);
  if (Number.isFinite(msg.skipped) && msg.skipped > 0) alerts.skipped += msg.skipped;
  // A hidden tab gets no animation frames: keep the buffer bounded by merging early.
  if (alerts.pending.length > 4 * MAX_ALERTS) mergeAlerts(alerts.pending.splice(0));
  schedule("alerts");
}

function alertRow(a) {
  const rule = el("td", { class: "rule", title: a.label ? `${a.rule_id}: ${a.label}` : a.rule_id },
    a.rule_id, a.label ? " " : null, a.label ? el("span", "sub", a.label) : null);
  const tr = el("tr", { "data-alert-id": a.alert_id, "data-symbol": a.symbol },
    el("td", "time", timeEl(a.timestamp)),
    el("td", { class: "symbol", title: a.symbol }, a.symbol),
    el("td", `kind ${kindClass(a.kind)}`, a.kind),
    el("td", "num price", num(fmtPrice, a.price)),
    el("td", "num threshold", num(fmtPrice, a.threshold)),
    el("td", "condition", a.condition),
    rule,
    el("td", "announced"));
  setAnnounced(tr, a);
  return tr;
}

function setAnnounced(tr, a) {
  const td = tr.lastChild;
  td.textContent = a.announced ? "yes" : "no";
  td.className = `announced ${a.announced ? "yes" : "no"}`;
}

function renderAlerts() {
  const added = mergeAlerts(alerts.pending.splice(0));
  if (added && document.body.dataset.ready === "1") noteNewAlerts(added);
  const rows = alerts.list.map((a) => {
    const id = String(a.alert_id);
    let tr = alerts.rows.get(id);
    if (!tr) alerts.rows.set(id, (tr = alertRow(a)));
    else if (a._dirty) setAnnounced(tr, a);
    a._dirty = false;
    return tr;
  });
  reconcile($("alerts").tBodies[0], rows);
  $("alerts-empty").hidden = rows.length > 0;
  $("alerts-count").textContent = `${fmtInt.format(rows.length)} shown (max ${MAX_ALERTS})`;
  $("alerts-skipped").hidden = alerts.skipped === 0;
  $("alerts-skipped-text").textContent = `${fmtInt.format(alerts.skipped)} more not shown (they arrived too fast).`;
}

// GET /api/alerts for the current filter. reset: empty the list first (the filter changed).
async function loadAlerts({ reset }) {
  const seq = ++alerts.fetchSeq;
  const f = currentFilter();
  alerts.loadedFilter = JSON.stringify(f);
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  q.set("limit", String(FETCH_LIMIT));
  clearFilterError();
  if (reset) {
    alerts.byId.clear();
    alerts.rows.clear();
    alerts.list = [];
    alerts.skipped = 0;
    schedule("alerts");
  }
  try {
    const data = await api("GET", `/api/alerts?${q}`);
    if (seq === alerts.fetchSeq) mergeAlerts(Array.isArray(data.alerts) ? data.alerts : []);
  } catch (e) {
    if (seq === alerts.fetchSeq) showFilterError(e);
  }
  schedule("alerts");
}

const FILTER_INPUTS = { symbol: "filter-symbol", kind: "filter-kind", rule: "filter-rule" };

function clearFilterError() {
  $("filter-error").textContent = "";
  for (const id of Object.values(FILTER_INPUTS)) $(id).removeAttribute("aria-invalid");
}

function showFilterError(e) {
  const input = e.field && FILTER_INPUTS[e.field] ? $(FILTER_INPUTS[e.field]) : null;
  if (input) input.setAttribute("aria-invalid", "true");
  $("filter-error").textContent = input ? `${e.field}: ${e.message}` : `Could not load alerts: ${e.message}`;
}

function setupFilters() {
  let debounce = 0;
  // Refetch only when the filter really changed; typing is debounced, change/Enter apply at once.
  const apply = (delay) => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      if (JSON.stringify(currentFilter()) !== alerts.loadedFilter) loadAlerts({ reset: true });
    }, delay);
  };
  for (const id of ["filter-symbol", "filter-rule"]) {
    $(id).addEventListener("input", () => apply(300));
    $(id).addEventListener("change", () => apply(0));
  }
  $("filter-kind").addEventListener("change", () => apply(0));
  $("alert-filters").addEventListener("submit", (ev) => { ev.preventDefault(); apply(0); });
  $("alerts-reload").addEventListener("click", () => loadAlerts({ reset: true }));
  $("alerts-skipped-reload").addEventListener("click", () => loadAlerts({ reset: true }));
}

// ---------- board ----------

const board = {
  bySym: new Map(),    // symbol -> board object
  changed: new Set(),  // symbols whose row must be rebuilt
  rows: new Map(),     // symbol -> <tr>
  hotUntil: new Map(), // symbol -> epoch ms until which the row is "hot"
  untracked: 0,
  sort: { key: "symbol", dir: 1 },
  hotTimer: 0,
};

const lastAlertKey = (s) => (s && s.last_alert ? JSON.stringify(s.last_alert) : "");
const lastAlertTime = (s) => (s.last_alert ? Date.parse(s.last_alert.processed_at || s.last_alert.timestamp) || 0 : 0);

// Merge symbols by name. fromFetch: a snapshot that may be older than live events already applied
// (the stream is opened before the fetch), so it never replaces a row with more ticks.
// append: the event's points are only those new since the server's previous board event; they
// are added to the ones held (newer than the newest held), keeping the last POINTS_MAX.
function mergeBoard(symbols, untracked, fromFetch, append) {
  const now = Date.now();
  for (const s of Array.isArray(symbols) ? symbols : []) {
    if (!s || s.symbol == null) continue;
    const sym = String(s.symbol);
    const prev = board.bySym.get(sym);
    if (append && prev && Array.isArray(prev.points) && Array.isArray(s.points)) {
      const held = prev.points;
      const newest = held.length ? held[held.length - 1][0] : -Infinity;
      s.points = held.concat(s.points.filter((p) => Array.isArray(p) && p[0] > newest)).slice(-POINTS_MAX);
    }
    if (fromFetch && prev && (prev.ticks || 0) > (s.ticks || 0)) continue;
    if (s.last_alert && lastAlertKey(prev) !== lastAlertKey(s)) {
      // A change seen live is hot now; on first sight only a really recent alert counts.
      const at = lastAlertTime(s);
      if (prev) board.hotUntil.set(sym, now + HOT_MS);
      else if (now - at < HOT_MS) board.hotUntil.set(sym, at + HOT_MS);
    }
    board.bySym.set(sym, s);
    board.changed.add(sym);
  }
  if (Number.isFinite(untracked)) board.untracked = untracked;
  schedule("board");
}

// Sparkline: the price points as a polyline, each threshold level as a horizontal line
// (HIGH dashed red, LOW dotted blue, via CSS classes).
function sparkline(s) {
  const W = 120, H = 28, P = 2;
  const pts = (Array.isArray(s.points) ? s.points : []).filter(
    (p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]));
  if (!pts.length && Number.isFinite(s.price)) pts.push([0, s.price]);
  const levels = (Array.isArray(s.thresholds) ? s.thresholds : []).filter((t) => t && Number.isFinite(t.level));
  const described = levels.map((t) => `${t.kind} ${t.level}${t.paused ? " (paused)" : ""}`).join(", ");
  const label = `${s.symbol} recent prices${described ? `; levels ${described}` : ""}`;
  const svg = svgEl("svg", { class: "spark", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label });
  svg.append(svgEl("title", {}));
  svg.firstChild.textContent = label;
  if (!pts.length) return svg;

  let lo = Math.min(...pts.map((p) => p[1]));
  let hi = Math.max(...pts.map((p) => p[1]));
  // A level within one price range (at least 2% of the price) of the prices widens the scale;
  // a farther one is drawn faintly at the edge it lies beyond, so the prices stay readable.
  const reach = Math.max(hi - lo, Math.abs(hi) * 0.02, 1e-9);
  for (const t of levels) {
    if (t.level >= lo - reach && t.level <= hi + reach) { lo = Math.min(lo, t.level); hi = Math.max(hi, t.level); }
  }
  if (hi - lo < 1e-12) { lo -= 1; hi += 1; }
  const y = (v) => (P + (H - 2 * P) * (1 - (Math.min(hi, Math.max(lo, v)) - lo) / (hi - lo))).toFixed(1);
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  const x = (t, i) => (1 + (W - 2) * (t1 > t0 ? (t - t0) / (t1 - t0) : pts.length > 1 ? i / (pts.length - 1) : 1)).toFixed(1);

  for (const t of levels) {
    const cls = `lvl lvl-${t.kind === "LOW" ? "LOW" : "HIGH"}${t.level < lo || t.level > hi ? " far" : ""}${t.paused ? " paused" : ""}`;
    svg.append(svgEl("line", { class: cls, x1: 0, x2: W, y1: y(t.level), y2: y(t.level) }));
  }
  svg.append(svgEl("polyline", { class: "line", points: pts.map((p, i) => `${x(p[0], i)},${y(p[1])}`).join(" ") }));
  const last = pts[pts.length - 1];
  svg.append(svgEl("circle", { class: "dot", cx: x(last[0], pts.length - 1), cy: y(last[1]), r: 1.8 }));
  return svg;
}

function boardRow(s) {
  const zone = ZONE_RANK[s.zone] !== undefined ? s.zone : "inside";
  const rules = Array.isArray(s.zone_rules) && s.zone_rules.length ? `level rules met: ${s.zone_rules.join(", ")}` : null;
  const la = s.last_alert;
  const last = la
    ? el("td", "last-alert", timeEl(la.timestamp, false), " ", el("span", "sub", el("span", kindClass(la.kind), la.kind), ` ${la.rule_id}`))
    : el("td", "last-alert", "–");
  return el("tr", { "data-symbol": s.symbol },
    el("td", { class: "symbol", title: s.symbol }, s.symbol),
    el("td", { class: "num price", title: s.timestamp ? `tick at ${s.timestamp}` : null }, num(fmtPrice, s.price)),
    el("td", "spark-cell", sparkline(s)),
    // The zone cell's text is the word alone; the satisfied level rules are in its tooltip.
    el("td", { class: `zone zone-${zone}`, title: rules }, el("span", "zone-word", s.zone == null ? "–" : s.zone)),
    last,
    el("td", "num ticks", num(fmtInt, s.ticks)));
}

function boardCompare(a, b) {
  const { key, dir } = board.sort;
  let c = 0;
  if (key === "price") c = (Number.isFinite(a.price) ? a.price : -Infinity) - (Number.isFinite(b.price) ? b.price : -Infinity);
  else if (key === "zone") c = (ZONE_RANK[a.zone] ?? 9) - (ZONE_RANK[b.zone] ?? 9);
  else if (key === "last") c = lastAlertTime(a) - lastAlertTime(b);
  // Ties (and the symbol column itself) go by symbol.
  return dir * (c || 0) || String(a.symbol).localeCompare(String(b.symbol)) * (key === "symbol" ? dir : 1);
}

function renderBoard() {
  const now = Date.now();
  for (const sym of board.changed) board.rows.set(sym, boardRow(board.bySym.get(sym)));
  board.changed.clear();
  for (const [sym, until] of board.hotUntil) if (until <= now) board.hotUntil.delete(sym);
  const rows = [...board.bySym.values()].sort(boardCompare).map((s) => {
    const tr = board.rows.get(String(s.symbol));
    tr.classList.toggle("hot", board.hotUntil.has(String(s.symbol)));
    return tr;
  });
  reconcile($("board").tBodies[0], rows);
  $("board-empty").hidden = rows.length > 0;
  $("board-untracked").hidden = !(board.untracked > 0);
  $("board-untracked").textContent = `${plural(board.untracked, "more symbol")} seen but not tracked on the board.`;
  // Render again when the next "hot" highlight expires.
  clearTimeout(board.hotTimer);
  const next = Math.min(...board.hotUntil.values());
  if (Number.isFinite(next)) board.hotTimer = setTimeout(() => schedule("board"), Math.max(50, next - now + 20));
  for (const th of $("board").tHead.querySelectorAll("th[data-sort]")) {
    const on = th.dataset.sort === board.sort.key;
    th.setAttribute("aria-sort", on ? (board.sort.dir > 0 ? "ascending" : "descending") : "none");
  }
}

function setupBoardSort() {
  $("board").tHead.addEventListener("click", (ev) => {
    const btn = ev.target.closest("button.sort");
    if (!btn) return;
    const key = btn.dataset.sort;
    // A second click reverses; "last alert" starts newest first, the others ascending.
    if (board.sort.key === key) board.sort.dir = -board.sort.dir;
    else board.sort = { key, dir: key === "last" ? -1 : 1 };
    schedule("board");
  });
}

// ---------- health ----------

let health = null;
// Numeric health fields; each one's element id is health-<field with "_" as "-">.
const HEALTH_NUMBERS = [["ticks_per_s", fmtRate], ["alerts_per_s", fmtRate], ["ticks", fmtInt], ["alerts", fmtInt],
  ["stale", fmtInt], ["failed", fmtInt], ["pending", fmtInt], ["clients", fmtInt]];

function renderHealth() {
  const h = health;
  if (!h) return;
  for (const [field, fmt] of HEALTH_NUMBERS) $(`health-${field.replace(/_/g, "-")}`).textContent = num(fmt, h[field]);

  const rejected = Object.entries(h.rejected || {}).sort((a, b) => b[1] - a[1]);
  $("health-rejected").replaceChildren(...(rejected.length
    ? rejected.map(([reason, n]) => el("li", null, reason, " ", el("span", "count", num(fmtInt, n))))
    : [el("li", "muted", "none")]));

  const w = h.writer || {};
  const state = ["running", "stopped", "none"].includes(w.state) ? w.state : "none";
  const writer = $("health-writer");
  if (state === "running") {
    writer.textContent = `Writer running${w.pid != null ? ` (pid ${w.pid})` : ""}, last update ${fmtTime(w.updated_at)}`;
  } else if (state === "stopped") {
    writer.textContent = `Writer stopped${w.updated_at ? ` at ${fmtTime(w.updated_at)}` : ""}: no tickwatch run is writing this database`;
  } else {
    writer.textContent = "No tickwatch run has written this database yet";
  }
  writer.className = `writer ${state}`;
  writer.title = w.started_at ? `started at ${w.started_at}` : "";

  const summary = { running: "writer running", stopped: "writer STOPPED", none: "no writer" }[state];
  $("health-summary").textContent = `${summary} · ${num(fmtRate, h.ticks_per_s)} ticks/s · ` +
    `${num(fmtRate, h.alerts_per_s)} alerts/s · ${num(fmtInt, h.pending)} pending`;
}

// ---------- rules ----------

let rulesDoc = null;
let rulesFromEvent = false;    // a `rules` event arrived since the last fetch started
const confirming = new Set();  // rule ids whose delete awaits confirmation
const inflight = new Set();    // rule ids with an action request running

const actionButton = (action, text, id, cls) =>
  el("button", { type: "button", class: cls, "data-action": action, "aria-label": `${text} rule ${id}` }, text);

function ruleRow(r) {
  const id = String(r.id);
  const except = Array.isArray(r.except) && r.except.length ? el("span", "sub", `except ${r.except.join(", ")}`) : null;
  const cond = el("td", "condition", r.condition);
  if (r.hysteresis != null) cond.append(" ", el("span", "sub", `hysteresis ${r.hysteresis}`));
  if (r.expires_at) cond.append(" ", el("span", "sub", "expires ", timeEl(r.expires_at, false)));
  const buttons = confirming.has(id)
    ? [actionButton("confirm-delete", "Confirm delete", id, "danger"), actionButton("cancel-delete", "Cancel", id)]
    : [r.paused ? actionButton("resume", "Resume", id) : actionButton("pause", "Pause", id),
      actionButton("rearm", "Re-arm", id), actionButton("delete", "Delete", id, "danger")];
  return el("tr", { "data-rule-id": id },
    el("td", { class: "id", title: id }, id),
    el("td", "symbols", r.symbols === "*" ? "* (all)" : r.symbols, except ? " " : null, except),
    cond,
    el("td", "fire", r.fire),
    el("td", "num cooldown", r.cooldown_seconds != null ? `${r.cooldown_seconds} s` : "–"),
    el("td", "label", r.label || ""),
    el("td", `state state-${r.paused ? "paused" : "active"}`, r.paused ? "paused" : "active"),
    el("td", "num version", r.version ?? "–"),
    el("td", "actions", el("div", "btns", ...buttons)));
}

const ruleRowEl = (id) => [...$("rules").tBodies[0].rows].find((tr) => tr.dataset.ruleId === id);

// Rebuild the rules table. Keyboard focus stays on the same action of the same rule (or the
// row's first button when that action was replaced, e.g. Pause became Resume).
function renderRules(focus) {
  const doc = rulesDoc || {};
  const rules = Array.isArray(doc.rules) ? doc.rules : [];
  const active = document.activeElement;
  const row = active && active.closest("#rules tr[data-rule-id]");
  focus = focus || (row ? { id: row.dataset.ruleId, action: active.dataset.action } : null);

  $("rules").tBodies[0].replaceChildren(...rules.map(ruleRow));
  $("rules-empty").hidden = rules.length > 0;
  $("rules-version").textContent = doc.version != null ? `rules version ${doc.version}` : "";
  const invalid = Array.isArray(doc.invalid) ? doc.invalid : [];
  $("rules-invalid").hidden = invalid.length === 0;
  $("rules-invalid-list").replaceChildren(...invalid.map((i) => el("li", null, `${i.id}: ${i.error}`)));

  const tr = focus && ruleRowEl(focus.id);
  if (tr) ([...tr.querySelectorAll("button")].find((b) => b.dataset.action === focus.action) || tr.querySelector("button")).focus();
}

function setRules(doc, fromEvent) {
  if (!doc || (!fromEvent && rulesFromEvent)) return; // a live snapshot already arrived: it is newer
  if (fromEvent) rulesFromEvent = true;
  rulesDoc = doc;
  const ids = new Set((doc.rules || []).map((r) => String(r.id)));
  for (const id of confirming) if (!ids.has(id)) confirming.delete(id);
  schedule("rules");
}

async function loadRules() {
  rulesFromEvent = false;
  try {
    setRules(await api("GET", "/api/rules"), false);
  } catch (e) {
    $("rules-error").textContent = `Could not load rules: ${e.message}`;
  }
}

// Put the server's answer into the local copy at once (the `rules` event follows anyway).
function updateLocalRule(id, rule) {
  if (!rulesDoc) return;
  const list = [...(rulesDoc.rules || [])];
  const i = list.findIndex((r) => String(r.id) === id);
  if (rule) list.splice(i < 0 ? list.length : i, i < 0 ? 0 : 1, rule);
  else if (i >= 0) list.splice(i, 1);
  rulesDoc = { ...rulesDoc, rules: list };
  schedule("rules");
}

async function ruleAction(id, action) {
  const path = `/api/rules/${encodeURIComponent(id)}`;
  $("rules-error").textContent = "";
  try {
    if (action === "confirm-delete") {
      await api("DELETE", path, {});
      confirming.delete(id);
      updateLocalRule(id, null);
      setStatus(`Rule ${id} deleted`);
    } else {
      const data = await api("POST", `${path}/${action}`, {});
      if (data.rule) updateLocalRule(id, data.rule);
      setStatus(`Rule ${id} ${{ pause: "paused", resume: "resumed", rearm: "re-armed" }[action]}`);
    }
  } catch (e) {
    $("rules-error").textContent = `${action === "confirm-delete" ? "delete" : action} ${id} failed: ${e.message}`;
  }
}

function setupRuleActions() {
  $("rules").tBodies[0].addEventListener("click", (ev) => {
    const btn = ev.target.closest("button[data-action]");
    if (!btn) return;
    const id = btn.closest("tr").dataset.ruleId;
    const action = btn.dataset.action;
    if (action === "delete" || action === "cancel-delete") {
      // Two-step delete: the row shows "Confirm delete" + "Cancel" instead of its buttons.
      if (action === "delete") confirming.add(id);
      else confirming.delete(id);
      renderRules({ id, action: action === "delete" ? "confirm-delete" : "delete" });
      return;
    }
    // Not btn.disabled: disabling the focused button would drop keyboard focus to <body>.
    if (inflight.has(id)) return;
    inflight.add(id);
    btn.setAttribute("aria-disabled", "true");
    ruleAction(id, action).finally(() => {
      inflight.delete(id);
      btn.removeAttribute("aria-disabled");
    });
  });
}

// ---------- add-rule form ----------

// RuleDoc fields that have an input here; an error for any other field goes to the top of the form.
const FORM_FIELDS = ["id", "symbols", "condition", "fire", "cooldown_seconds", "label"];
const fieldInput = (field) => $("rule-form").querySelector(`[data-field="${field}"]`);
const fieldError = (field) => $("rule-form").querySelector(`[data-error-for="${field}"]`);

function clearFormErrors() {
  $("rule-form-error").textContent = "";
  for (const f of FORM_FIELDS) {
    fieldInput(f).removeAttribute("aria-invalid");
    fieldError(f).textContent = "";
  }
}

function showFormError(field, reason) {
  if (!FORM_FIELDS.includes(field)) {
    $("rule-form-error").textContent = field ? `${field}: ${reason}` : reason;
    return;
  }
  fieldInput(field).setAttribute("aria-invalid", "true");
  fieldError(field).textContent = reason;
  fieldInput(field).focus();
}

// The RuleDoc to POST: required fields always (the server judges them), optional ones only if set.
function readRuleForm() {
  const v = (id) => $(id).value.trim();
  const body = { id: v("rule-id"), symbols: v("rule-symbols"), condition: v("rule-condition"), fire: $("rule-fire").value };
  if ($("rule-cooldown").validity.badInput) throw new ApiError("cooldown_seconds", "must be a whole number of seconds");
  if (v("rule-cooldown") !== "") body.cooldown_seconds = Number(v("rule-cooldown"));
  if (v("rule-label")) body.label = v("rule-label");
  return body;
}

function setupRuleForm() {
  const form = $("rule-form");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFormErrors();
    $("rule-submit").disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      const body = readRuleForm();
      const data = await api("POST", "/api/rules", body);
      form.reset();
      setStatus(`Rule ${body.id} added`);
      if (data.rule) updateLocalRule(String(data.rule.id), data.rule);
      loadRules();
    } catch (e) {
      showFormError(e.field, e.message);
    } finally {
      $("rule-submit").disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
}

// ---------- live stream and start-up ----------

let streamOpened = false;
let initialLoaded = false;

// Tests wait for this: the first fetches are rendered and the stream has been open once.
function markReady() {
  if (streamOpened && initialLoaded) document.body.dataset.ready = "1";
}

function onEvent(es, name, handle) {
  es.addEventListener(name, (ev) => {
    let msg = null;
    try { msg = JSON.parse(ev.data); } catch (_) { return; }
    if (msg && typeof msg === "object") handle(msg);
  });
}

function connect() {
  const conn = $("connection");
  const es = new EventSource("/api/events");
  let hadError = false;
  es.addEventListener("open", () => {
    conn.textContent = "live";
    conn.className = "conn conn-live";
    if (hadError) loadAll(false); // fill in what was missed while disconnected
    hadError = false;
    streamOpened = true;
    markReady();
  });
  es.addEventListener("error", () => {
    hadError = true;
    conn.textContent = "reconnecting…";
    conn.className = "conn conn-down";
    // The browser stops retrying after a fatal answer (e.g. 401, 503): retry ourselves, slowly.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  });
  onEvent(es, "alerts", onLiveAlerts);
  onEvent(es, "board", (m) => mergeBoard(m.symbols, m.untracked, false, m.append === true));
  onEvent(es, "health", (m) => { health = m; schedule("health"); });
  onEvent(es, "rules", (m) => setRules(m, true));
  // The server dropped events for this page (it fell behind): reload everything.
  onEvent(es, "resync", () => loadAll(false));
}

async function loadBoard() {
  try {
    const data = await api("GET", "/api/board");
    mergeBoard(data.symbols, data.untracked, true);
  } catch (e) {
    setStatus(`Could not load board: ${e.message}`);
  }
}

async function loadHealth() {
  try {
    const data = await api("GET", "/api/health");
    if (!health) { health = data; schedule("health"); } // a live event is newer
  } catch (e) {
    setStatus(`Could not load health: ${e.message}`);
  }
}

const loadAll = (reset) => Promise.all([loadAlerts({ reset }), loadBoard(), loadHealth(), loadRules()]);

function main() {
  setupFilters();
  setupBoardSort();
  setupRuleActions();
  setupRuleForm();
  connect(); // open the stream first so nothing between fetch and stream is lost
  loadAll(true).then(() => {
    initialLoaded = true;
    requestAnimationFrame(() => { flush(); markReady(); });
  });
}

main();
