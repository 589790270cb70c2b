/* Lantern's pages: each draws itself from the dashboard API (/api/v1). No build step. */
"use strict";

const page = document.body.dataset.page;
const objectId = document.body.dataset.id;
const app = document.getElementById("app");
let csrf = "";

/* ---------- small helpers ---------- */

// Build DOM nodes; strings become text nodes, so names from events can never become markup.
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    // through the CSSOM: the Content-Security-Policy refuses style attributes
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return node;
}

// Replace a node's children; null, undefined and false stand for "nothing here".
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function show(...nodes) {
  fill(app, ...nodes);
}

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.message)) || `request failed (${status})`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch("/api/v1" + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && page !== "login") {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new ApiError(401, null);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not Lantern's answer (a proxy's error page): say so rather than fail to parse it
    throw new ApiError(response.status, { detail: `The server answered ${response.status} ${response.statusText} without Lantern's usual reply; is Lantern running behind this address?` });
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err instanceof Error ? err.message : String(err));
}

function fmtCount(n) {
  return Number(n || 0).toLocaleString("en-US");
}

function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit",
    minute: "2-digit", timeZone: "UTC", hour12: false }) + " UTC";
}

function fmtLeft(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  const hrs = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${hrs} h`;
  if (hrs) return `${hrs} h ${m} min`;
  return `${m} min`;
}

function pct(change) {
  if (change === null || change === undefined) return "";
  const v = Math.round(change * 100);
  return (v > 0 ? "+" : "") + v + "%";
}

// the kinds and their labels, in order, as the server names them (lantern/detect/kinds.py)
const KIND_NAMES = JSON.parse(document.body.dataset.kinds || "{}");
const kindName = (k) => KIND_NAMES[k] || k;

function statusPill(metric) {
  let text = metric.status;
  if (metric.status === "training") text = `training · ${fmtLeft(metric.training_left_seconds)} left`;
  if (metric.status === "snoozed") text = `snoozed until ${fmtTime(metric.snoozed_until)}`;
  return h("span", { class: `pill ${metric.status}`, "data-status": metric.status }, text);
}

async function copy(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = h("textarea", {}, text);
    document.body.appendChild(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  const was = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = was), 1500);
}

/* ---------- log in ---------- */

// Where to go after logging in: `next` only if it is a path on this site. Browsers read a
// backslash as a slash and drop tabs and newlines, so "/\evil.example" and "/<tab>/evil.example"
// mean "//evil.example", another site: refuse any backslash or control character, any
// second leading slash, and anything the browser would resolve to another origin.
function sameSitePath(next) {
  if (!next || !/^\/(?![\/\\])[\x21-\x7e]*$/.test(next) || next.includes("\\")) return "/";
  const url = new URL(next, location.origin);
  return url.origin === location.origin ? url.pathname + url.search + url.hash : "/";
}

function loginPage() {
  const message = h("div");
  const email = h("input", { type: "email", name: "email", required: true, autocomplete: "username" });
  const password = h("input", { type: "password", name: "password", required: true,
    autocomplete: "current-password" });
  const form = h("form", {
    onsubmit: async (ev) => {
      ev.preventDefault();
      fill(message);
      try {
        await api("POST", "/auth/login", { email: email.value, password: password.value });
        location.href = sameSitePath(new URLSearchParams(location.search).get("next"));
      } catch (err) {
        fill(message, errorBox(err));
      }
    },
  },
  h("label", { class: "inline" }, "Email", email),
  h("label", { class: "inline" }, "Password", password),
  h("button", { class: "primary", type: "submit" }, "Log in"));
  show(h("div", { class: "card login" }, h("h1", {}, "Log in to Lantern"), message, form,
    h("p", { class: "muted" }, "No account? Ask whoever runs Lantern to run ",
      h("code", {}, "lantern user create EMAIL"), ".")));
}

/* ---------- newsfeed ---------- */

function trainingNotice(sources) {
  const training = sources.filter((s) => s.training_left_seconds > 0 || s.training_ends_at === null);
  if (!training.length) return null;
  return h("div", { class: "notice", id: "training" },
    h("strong", {}, "Lantern is learning your metrics. "),
    training.map((s) => h("span", { "data-source": s.id },
      s.training_ends_at === null
        ? `${s.name}: waiting for the first events. `
        : `${s.name}: first insights in ${fmtLeft(s.training_left_seconds)}. `)),
    h("a", { href: "/sources" }, "See the countdown"));
}

function insightCard(i) {
  const change = h("span", { class: `change ${i.direction}` }, pct(i.relative_change));
  return h("a", { class: "card insight", href: `/insights/${i.id}`, "data-insight": i.id },
    h("div", { class: "row spread" },
      h("span", { class: "title" }, i.metric_label),
      h("span", { class: "row" },
        h("span", { class: `pill sureness ${i.words.sureness}`, title: i.words.how_sure }, i.words.sureness_label),
        h("span", { class: `pill ${i.severity}`, title: `Severity ${i.words.severity}` }, i.severity),
        h("span", { class: `pill ${i.status}`, title: `Status ${i.words.status}` }, i.status))),
    h("div", { class: "row" },
      h("span", { class: `pill ${i.direction}` }, `${kindName(i.kind)} ${i.direction === "up" ? "↑" : "↓"}`),
      change,
      h("span", { class: "range" }, i.words.normal_range),
      h("span", { class: "muted" }, `· ${i.source_name} · since ${fmtTime(i.start)}`),
      i.related ? h("span", { class: "muted" }, `· +${i.related} related`) : null,
      i.useful === true ? h("span", { class: "pill" }, "marked useful") : null,
      i.useful === false ? h("span", { class: "pill" }, "marked not useful") : null),
    i.incident ? incidentLine(i.incident) : null,
    i.root_cause ? h("div", { class: "root-cause", "data-root-cause": i.root_cause.broad ? "broad" : "named" },
      h("strong", {}, "Root cause: "), i.root_cause.text) : null,
    i.tracking_break ? h("div", { class: "tracking-break" }, h("strong", {}, "Tracking break: "), i.tracking_break.text) : null);
}

// A story going down that covers most of its source's metrics: one incident for the source,
// or for the workspace when two or more of its sources went down together.
function incidentLine(incident) {
  const scope = incident.scope === "workspace" ? "Workspace-wide incident: " : "Source-wide incident: ";
  return h("div", { class: "incident", "data-incident": incident.scope },
    h("strong", {}, scope), incident.text,
    incident.ended_at ? ` Over ${fmtTime(incident.ended_at)}.` : "");
}

// On the insight's page, a workspace-wide incident's sources, each with its share.
function incidentSources(incident) {
  if (incident.scope !== "workspace") return null;
  return h("ul", { class: "incident-sources" }, incident.sources.map((s) =>
    h("li", { "data-source": s.source_id }, h("strong", {}, s.source_name), `: ${s.metrics} of ${s.of} metrics`)));
}

// The root cause on an insight's page: its line, the values ranked, and each value told
// drawn against its own expectation (the hours stored when the insight opened).
function rootCauseCard(i) {
  const cause = i.root_cause;
  if (!cause) return { node: null, draw: () => {} };
  const charts = (i.root_cause_chart ? i.root_cause_chart.values : []).map((s) => ({
    series: s,
    box: h("div", { class: "chart small", "data-value": s.value }),
  }));
  const node = h("div", { class: "card", id: "root-cause" },
    h("h2", {}, "Root cause"),
    h("p", { class: "root-cause-line" }, cause.text),
    cause.values.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, cause.shown_label || ""),
        h("th", { class: "num" }, "observed / h"), h("th", { class: "num" }, "expected / h"),
        h("th", { class: "num" }, "change"), h("th", { class: "num" }, "share of the move"))),
      h("tbody", {}, cause.values.map((v) => h("tr", { class: v.named ? "named" : "" },
        h("td", {}, v.value),
        h("td", { class: "num" }, LanternChart.fmt(v.observed)),
        h("td", { class: "num" }, LanternChart.fmt(v.expected)),
        h("td", { class: "num" }, v.relative_change === null ? "new" : pct(v.relative_change)),
        h("td", { class: "num" }, v.contribution === null ? "" : `${Math.round(v.contribution * 100)}%`)))))) : null,
    charts.map((c) => h("div", { class: "value-chart" },
      h("h3", {}, `${cause.shown_label} ${c.series.value}`),
      h("div", { class: "legend" },
        h("span", {}, h("i", { style: "background:#24292f;height:2px" }), "observed"),
        h("span", {}, h("i", { style: "background:var(--up);height:2px" }), "its own expectation"),
        h("span", {}, h("i", { style: "background:rgba(207,34,46,.25)" }), "since the start")),
      c.box)),
    charts.length ? h("p", { class: "muted chart-caption" },
      "One point an hour (UTC): each value's expectation is the median of the same hour in the weeks before the start.") : null);
  function draw() {
    for (const c of charts) {
      LanternChart.draw(c.box, {
        step: "hour",
        points: c.series.points,
        anomalies: [{ start: i.root_cause_chart.start, end: i.root_cause_chart.end, kind: "root cause", direction: i.direction }],
      });
    }
  }
  return { node, draw };
}

async function feedPage() {
  const [sources] = await Promise.all([api("GET", "/sources")]);
  const list = h("div", { id: "feed" });
  const more = h("button", { type: "button", id: "more", hidden: true }, "Load more");
  const status = h("select", { name: "status" },
    ["", "open", "updated", "resolved", "accepted"].map((s) => h("option", { value: s }, s || "any")));
  const kind = h("select", { name: "kind" },
    h("option", { value: "" }, "any"),
    Object.keys(KIND_NAMES).map((k) => h("option", { value: k }, kindName(k))));
  const source = h("select", { name: "source_id" }, h("option", { value: "" }, "any"),
    sources.map((s) => h("option", { value: s.id }, s.name)));
  let cursor = null;
  const seen = new Map();
  const legend = h("div", { class: "legend-words" });

  async function load(reset) {
    const params = new URLSearchParams({ limit: "20" });
    if (status.value) params.set("status", status.value);
    if (kind.value) params.set("kind", kind.value);
    if (source.value) params.set("source_id", source.value);
    if (!reset && cursor) params.set("cursor", cursor);
    try {
      const page_ = await api("GET", "/insights?" + params);
      if (reset) { fill(list); seen.clear(); }
      page_.items.forEach((i) => {
        list.appendChild(insightCard(i));
        seen.set(`severity ${i.severity}`, i.words.severity).set(`status ${i.status}`, i.words.status);
      });
      // what the labels on this page mean, in the words the API gives each insight
      fill(legend, seen.size ? h("details", { id: "labels" }, h("summary", {}, "What severity and status mean"),
        h("ul", {}, [...seen.entries()].sort().map(([, meaning]) => h("li", {}, meaning)))) : null);
      if (reset && !page_.items.length) {
        list.appendChild(h("p", { class: "muted" }, sources.length
          ? "No insights match. Lantern tells you here when a metric changes in a way that matters."
          : "No sources yet: create one in Settings and send events to it."));
      }
      cursor = page_.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      fill(list, errorBox(err));
    }
  }
  for (const select of [status, kind, source]) select.addEventListener("change", () => load(true));
  more.addEventListener("click", () => load(false));
  show(h("h1", {}, "Newsfeed"), trainingNotice(sources),
    h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
      h("label", { class: "inline" }, "Status", status),
      h("label", { class: "inline" }, "Kind", kind),
      h("label", { class: "inline" }, "Source", source)),
    legend, list, more);
  await load(true);
}

/* ---------- charts with a range picker ---------- */

function rangeChart(metricId, { days = 7, around = null } = {}) {
  const box = h("div", { class: "chart", id: "chart" });
  const caption = h("p", { class: "muted chart-caption", id: "chart-caption" });
  const buttons = [7, 30, 90].map((d) => h("button", { type: "button", "data-days": d,
    "aria-pressed": String(d === days) }, `${d} days`));
  const legend = h("div", { class: "legend" },
    h("span", {}, h("i", { style: "background:#24292f;height:2px" }), "observed"),
    h("span", {}, h("i", { style: "background:var(--band)" }), "normal range"),
    h("span", {}, h("i", { style: "background:rgba(207,34,46,.25)" }), "anomaly"));
  async function load(d) {
    buttons.forEach((b) => b.setAttribute("aria-pressed", String(Number(b.dataset.days) === d)));
    let end = new Date();
    if (around) {
      const stop = around.ended_at ? Date.parse(around.ended_at) : Date.parse(around.detected_at);
      end = new Date(Math.min(Date.now(), stop + (d * 86400e3) / 4));
    }
    // past a week, one point a day (each day's hours averaged) keeps the chart readable
    const step = d > 7 ? "day" : "hour";
    const start = new Date(end.getTime() - d * 86400e3);
    if (step === "day") start.setUTCHours(0, 0, 0, 0);
    const params = new URLSearchParams({ start: start.toISOString(), end: end.toISOString(), step });
    // said before the data comes, so that the page below does not move when it does
    fill(caption, step === "day"
      ? "One point a day: each day's hourly figures averaged; hover for how many of its hours were outside the normal range."
      : "One point an hour (UTC); the last, dashed, is the hour under way.");
    try {
      const series = await api("GET", `/metrics/${metricId}/series?${params}`);
      LanternChart.draw(box, series);
      box.dataset.points = String(series.points.length);
      box.dataset.step = series.step;
      box.dataset.anomalies = String(series.anomalies.length);
    } catch (err) {
      fill(box, errorBox(err));
    }
  }
  buttons.forEach((b) => b.addEventListener("click", () => load(Number(b.dataset.days))));
  return { node: h("div", { class: "card" }, h("div", { class: "row spread" }, legend,
    h("div", { class: "row", role: "group", "aria-label": "range" }, buttons)), box, caption), load: () => load(days) };
}

function watchControls(metric, onChange) {
  const out = h("div", { class: "row", id: "watch" });
  async function set(body) {
    try {
      onChange(await api("PUT", `/metrics/${metric.id}/watch`, body));
    } catch (err) {
      out.appendChild(errorBox(err));
    }
  }
  const inHours = (n) => new Date(Date.now() + n * 3600e3).toISOString();
  if (metric.muted || metric.status === "snoozed") {
    out.append(h("button", { type: "button", onclick: () => set({ muted: false, snoozed_until: null }) },
      metric.muted ? "Unmute" : "End snooze"));
  } else {
    out.append(
      h("button", { type: "button", onclick: () => set({ muted: true, snoozed_until: null }) }, "Mute metric"),
      h("button", { type: "button", onclick: () => set({ muted: false, snoozed_until: inHours(24) }) }, "Snooze 1 day"),
      h("button", { type: "button", onclick: () => set({ muted: false, snoozed_until: inHours(24 * 7) }) }, "Snooze 1 week"));
  }
  out.append(h("span", { class: "muted" }, "Muted and snoozed metrics are still watched, but not sent to Slack."));
  return out;
}

/* ---------- one insight ---------- */

async function insightPage() {
  const i = await api("GET", `/insights/${objectId}`);
  document.title = `${i.metric_label} · Lantern`;
  const chart = rangeChart(i.metric_id, { days: 7, around: i });
  const rootCause = rootCauseCard(i);
  const feedback = h("div", { class: "row", id: "feedback" });
  function drawFeedback(useful) {
    fill(feedback, h("span", {}, "Was this useful?"),
      ...[true, false].map((value) => h("button", {
        type: "button", "aria-pressed": String(useful === value),
        onclick: async () => {
          const updated = await api("POST", `/insights/${i.id}/feedback`, { useful: value });
          drawFeedback(updated.useful);
        },
      }, value ? "Useful" : "Not useful")));
  }
  drawFeedback(i.useful);
  const watch = h("div");
  const drawWatch = (metric) => fill(watch, 
    h("div", { class: "row" }, h("span", {}, "Metric: "), statusPill(metric)),
    watchControls(metric, drawWatch));
  drawWatch(i.metric);
  show(
    h("p", {}, h("a", { href: "/" }, "← Newsfeed")),
    h("h1", {}, `${kindName(i.kind)} ${i.direction === "up" ? "↑" : "↓"} in `,
      h("a", { href: `/metrics/${i.metric_id}` }, i.metric_label)),
    h("p", { class: "muted" }, `${i.source_name} · since ${fmtTime(i.start)} · detected ${fmtTime(i.detected_at)}`
      + (i.ended_at ? ` · over ${fmtTime(i.ended_at)}` : "")),
    h("div", { class: "card grid" },
      fact(`Observed${averageWord(i.metric)}`, LanternChart.fmt(i.observed)),
      fact(`Expected${averageWord(i.metric)}`, `${LanternChart.fmt(i.expected)} (normally ${LanternChart.fmt(i.metric.measure === "count" ? Math.max(i.lower, 0) : i.lower)}–${LanternChart.fmt(i.upper)})`),
      fact("Change", pct(i.relative_change)),
      fact("Severity", i.severity),
      fact("Status", i.status)),
    h("div", { class: "card", id: "meaning" },
      h("p", { class: "how-sure" }, h("strong", {}, "How sure: "), i.words.how_sure),
      h("p", {}, i.words.normal_range),
      h("p", {}, h("strong", {}, "Severity "), i.words.severity, ". ", h("strong", {}, "Status "), i.words.status, "."),
      h("p", { class: "next" }, h("strong", {}, "What to do: "), i.words.next_step)),
    i.incident ? h("div", { class: "card", id: "incident" }, incidentLine(i.incident), incidentSources(i.incident)) : null,
    chart.node,
    i.tracking_break ? h("div", { class: "card", id: "tracking-break" }, h("h2", {}, "Tracking break"),
      h("p", {}, i.tracking_break.text),
      i.tracking_break.renamed_metric_id ? h("p", {},
        h("a", { href: `/metrics/${i.tracking_break.renamed_metric_id}` }, `Open ${i.tracking_break.renamed_to}`)) : null) : null,
    rootCause.node,
    i.causes.length ? h("div", { class: "card", id: "causes" }, h("h2", {}, "Possible causes"),
      h("ul", {}, i.causes.map((c) => h("li", {}, `Flag `, h("code", {}, c.flag_key),
        ` changed from version ${c.old_version ?? "?"} to ${c.new_version} at ${fmtTime(c.changed_at)}`)))) : null,
    i.related.length ? h("div", { class: "card" }, h("h2", {}, i.incident ? "The incident's other metrics" : "Moved at the same time"),
      i.related.map(insightCard)) : null,
    h("div", { class: "card" }, feedback, h("hr"), watch),
    i.notifications.length ? h("div", { class: "card" }, h("h2", {}, "Slack"),
      h("ul", {}, i.notifications.map((n) => h("li", {}, `${n.purpose}: ${n.status}`,
        n.sent_at ? ` at ${fmtTime(n.sent_at)}` : "", n.error ? ` — ${n.error}` : "")))) : null,
  );
  rootCause.draw();
  await chart.load();
}

// An average metric's figures are averages of the events' values, not events: say so.
const averageWord = (metric) => (metric.measure === "average" ? " average" : "");
const MEASURE_NOTES = {
  sum: "Each hour is the sum of the events' value (else revenue).",
  average: "Each hour is the average of the events' value (else revenue); an hour without a value has none.",
};

function fact(label, value) {
  return h("div", { class: "fact" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

/* ---------- metrics ---------- */

async function metricsPage() {
  const sources = await api("GET", "/sources");
  const source = h("select", { name: "source_id" }, h("option", { value: "" }, "all sources"),
    sources.map((s) => h("option", { value: s.id }, s.name)));
  const status = h("select", { name: "status" },
    ["", "training", "active", "muted", "snoozed"].map((s) => h("option", { value: s }, s || "any")));
  const search = h("input", { type: "search", name: "q", placeholder: "name contains…" });
  const body = h("tbody");
  const PAGE = 50;
  // the cursors of the pages before this one: "Previous" goes back one
  let cursors = [];
  let cursor = null;
  let next = null;
  const where = h("span", { class: "muted", id: "metrics-where" });
  const prev = h("button", { type: "button", id: "metrics-prev", onclick: () => turn(-1) }, "← Previous");
  const more = h("button", { type: "button", id: "metrics-next", onclick: () => turn(1) }, "Next →");
  const pager = h("div", { class: "row", id: "metrics-pager" }, prev, where, more);
  async function load() {
    const params = new URLSearchParams();
    if (source.value) params.set("source_id", source.value);
    if (status.value) params.set("status", status.value);
    if (search.value.trim()) params.set("q", search.value.trim());
    params.set("limit", String(PAGE));
    if (cursor) params.set("cursor", cursor);
    try {
      const page = await api("GET", "/metrics?" + params);
      const metrics = page.items;
      fill(body, ...metrics.map((m) => h("tr", { "data-metric": m.id, class: m.parent_id ? "value-of" : null },
        // a breakdown value's metric is listed under the metric it splits
        h("td", {}, m.parent_id ? h("span", { class: "muted", "aria-hidden": "true" }, "↳ ") : null,
          h("a", { href: `/metrics/${m.id}` }, m.label)),
        h("td", { class: "hide-narrow" }, m.source_name),
        h("td", {}, statusPill(m)),
        h("td", { class: "num" }, LanternChart.fmt(m.latest_value)),
        h("td", { class: "num hide-narrow", title: m.measure === "average" ? "average over 7 days" : null },
          LanternChart.fmt(m.volume_7d)),
        h("td", { class: "num" }, m.open_insights ? String(m.open_insights) : ""))));
      if (!metrics.length) {
        const filtered = source.value || status.value || search.value.trim();
        fill(body, h("tr", {}, h("td", { colspan: 6, class: "muted" }, filtered
          ? "No metric matches these filters."
          : "No metrics yet. Every event name, page and screen a source sends becomes one.")));
      }
      next = page.next_cursor;
      const first = cursors.length * PAGE + 1;
      where.textContent = metrics.length
        ? `${fmtCount(first)}–${fmtCount(first + metrics.length - 1)} of ${fmtCount(page.total)}`
        : "";
      prev.disabled = !cursors.length;
      more.disabled = !next;
      pager.hidden = !cursors.length && !next;
    } catch (err) {
      fill(body, h("tr", {}, h("td", { colspan: 6 }, errorBox(err))));
    }
  }
  // a change of filter starts again from the first page
  function restart() {
    cursors = [];
    cursor = null;
    return load();
  }
  async function turn(step) {
    if (step > 0 && next) {
      cursors.push(cursor);
      cursor = next;
    } else if (step < 0 && cursors.length) {
      cursor = cursors.pop();
    } else return;
    await load();
  }
  [source, status].forEach((s) => s.addEventListener("change", restart));
  let timer = null;
  search.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(restart, 250); });
  show(h("h1", {}, "Metrics"),
    h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); restart(); } },
      h("label", { class: "inline" }, "Source", source),
      h("label", { class: "inline" }, "Status", status),
      h("label", { class: "inline" }, "Search", search)),
    h("div", { class: "card table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Metric"), h("th", { class: "hide-narrow" }, "Source"),
        h("th", {}, "Status"), h("th", { class: "num" }, "Last hour"),
        h("th", { class: "num hide-narrow" }, "7 days"), h("th", { class: "num" }, "Open"))),
      body)),
    pager);
  await load();
}

async function metricPage() {
  const metric = await api("GET", `/metrics/${objectId}`);
  document.title = `${metric.label} · Lantern`;
  const chart = rangeChart(metric.id, { days: 7 });
  const head = h("div");
  const drawHead = (m) => fill(head, 
    h("p", {}, h("a", { href: "/metrics" }, "← Metrics")),
    h("h1", {}, m.label),
    h("div", { class: "row" }, h("span", { class: "muted" }, m.source_name), statusPill(m),
      m.status === "training" ? h("span", { class: "muted" },
        "Lantern learns a week of this metric's rhythm before it judges it.") : null),
    MEASURE_NOTES[m.measure] ? h("p", { class: "muted", id: "measure" }, MEASURE_NOTES[m.measure]) : null,
    watchControls(m, drawHead));
  drawHead(metric);
  const insights = await api("GET", `/insights?metric_id=${metric.id}&limit=20`);
  const split = metric.parent_id ? await valueOfCard(metric) : await valueAlertsCard(metric);
  show(head, chart.node, feedbackCard(metric), ownerForm(metric), split,
    h("h2", {}, "Insights"),
    insights.items.length ? h("div", {}, insights.items.map(insightCard))
      : h("p", { class: "muted" }, "Nothing unusual so far."));
  await chart.load();
}

// What the team's "not useful" changed for this metric, and a way to undo it.
function feedbackCard(metric) {
  const kinds = Object.entries(metric.feedback || {});
  if (!kinds.length) return null;
  const said = h("div", { id: "feedback-said" });
  const reset = h("button", { type: "button", id: "feedback-reset", onclick: async () => {
    try {
      await api("DELETE", `/metrics/${metric.id}/feedback`);
      fill(said, h("div", { class: "ok" }, "Forgotten: from the next hourly pass its alerts follow the workspace's sensitivity again."));
      reset.disabled = true;
    } catch (err) {
      fill(said, errorBox(err));
    }
  } }, "Reset");
  return h("div", { class: "card", id: "metric-feedback" }, h("h2", {}, "Your feedback"),
    h("ul", {}, kinds.map(([kind, n]) => h("li", {},
      `${kind.replace("_", " ")}: \"not useful\" ${n} more time${n > 1 ? "s" : ""} than \"useful\", so its alerts need ${n} setting${n > 1 ? "s" : ""} more evidence (up to low)`))),
    reset, said);
}

// A breakdown value's metric: whose events it counts, and where its alerts are set.
async function valueOfCard(metric) {
  let parent = null;
  try {
    parent = await api("GET", `/metrics/${metric.parent_id}`);
  } catch (err) {
    return h("div", { class: "card", id: "value-of" }, errorBox(err));
  }
  return h("div", { class: "card", id: "value-of" }, h("h2", {}, "One value of a breakdown"),
    h("p", {}, "The events of ", h("a", { href: `/metrics/${parent.id}` }, parent.label),
      " whose ", h("code", {}, metric.breakdown.dimension), " is ", h("strong", {}, metric.breakdown.value),
      ", watched as a metric of their own: trained, judged and told like any metric."),
    h("p", { class: "muted" }, "Alerts per value are chosen on ", h("a", { href: `/metrics/${parent.id}` }, parent.label),
      "; taking its dimension off there deletes this metric and its insights."));
}

// Alerts per breakdown value: each value of the chosen dimensions watched as a metric.
async function valueAlertsCard(metric) {
  const box = h("div", { class: "card", id: "value-alerts" });
  let state;
  try {
    state = await api("GET", `/metrics/${metric.id}/breakdown-alerts`);
  } catch (err) {
    fill(box, errorBox(err));
    return box;
  }
  if (state.unavailable) return null;
  function draw(current, message) {
    const said = h("div", { id: "value-alerts-said" });
    const boxes = current.dimensions.map((d) => h("label", { class: "check" + (d.recording ? "" : " muted") },
      h("input", { type: "checkbox", name: "dimension", value: d.name, checked: d.alerting, disabled: !d.recording }),
      " ", d.name, d.recording ? null : ` (refused: ${d.refused})`));
    const form = h("form", { id: "value-alerts-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const chosen = [...form.querySelectorAll("input[name=dimension]:checked")].map((i) => i.value);
      try {
        const saved = await api("PUT", `/metrics/${metric.id}/breakdown-alerts`, { dimensions: chosen });
        draw(saved, chosen.length
          ? "Saved: each value is a metric of its own, judged from the next hourly pass once it has a week of breakdowns."
          : "Saved: no value is watched on its own.");
      } catch (err) {
        fill(said, errorBox(err));
      }
    } },
    current.dimensions.length ? h("div", { class: "row checks" }, boxes)
      : h("p", { class: "muted" }, "This source has no breakdowns: add some in Settings, under the source's Breakdowns."),
    h("button", { type: "submit", disabled: !current.dimensions.length }, "Save"));
    fill(box, h("h2", {}, "Alerts per value"),
      h("p", { class: "muted" }, "Watch each value of a dimension as a metric of its own, so a drop of one ",
        "(Android down 60%) is told even when this metric's total barely moves. Only the values the ",
        "dimension counts on their own are watched, not (other); a dimension taken off deletes its values' metrics."),
      message ? h("div", { class: "ok" }, message) : null,
      form, said,
      current.metrics.length ? h("ul", { id: "value-metrics" }, current.metrics.map((m) => h("li", { "data-metric": m.id },
        h("a", { href: `/metrics/${m.id}` }, m.label), " ", statusPill(m),
        m.open_insights ? h("span", { class: "muted" }, ` · ${m.open_insights} open`) : null))) : null);
  }
  draw(state);
  return box;
}

// Who the metric's Slack alerts mention, and what they say to check first.
function ownerForm(metric) {
  const owner = h("input", { name: "owner", value: metric.owner || "", maxlength: 30,
    placeholder: "U024BE7LH or S0614TZR7", "aria-label": "Slack member or user group id" });
  const note = h("textarea", { name: "note", maxlength: 500, rows: 2,
    placeholder: "e.g. check the payment provider's status page first", "aria-label": "note" }, metric.note || "");
  const said = h("div", { id: "owner-said" });
  const form = h("form", { id: "owner-form", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const saved = await api("PUT", `/metrics/${metric.id}/owner`, { owner: owner.value.trim() || null, note: note.value.trim() || null });
      fill(said, h("div", { class: "ok" }, saved.owner || saved.note ? "Saved: its alerts will show it." : "Saved: no owner or note."));
    } catch (err) {
      fill(said, errorBox(err));
    }
  } },
  h("label", {}, "Owner to mention in its Slack alerts ", owner),
  h("label", {}, "What to check first ", note),
  h("button", { type: "submit" }, "Save"));
  return h("div", { class: "card" }, h("h2", {}, "Alerts"),
    h("p", { class: "muted" }, "A Slack member id (profile, ⋮, Copy member ID) or a user group id; the note is shown in every alert of this metric."),
    form, said);
}

/* ---------- sources: countdown and debug view ---------- */

async function sourcesPage() {
  const sources = await api("GET", "/sources");
  show(h("h1", {}, "Sources"),
    h("p", { class: "muted" }, "Each source trains for a week before Lantern judges its metrics. ",
      "Open a source to watch its events arrive. Keys are managed in ", h("a", { href: "/settings" }, "Settings"), "."),
    sources.length ? sources.map((s) => h("a", { class: "card insight", href: `/sources/${s.id}`, "data-source": s.id },
      h("div", { class: "row spread" }, h("span", { class: "title" }, s.name), countdown(s)),
      h("div", { class: "muted", "data-traffic": s.id }, `${s.metrics} metrics · ${s.trained_metrics} trained · `
        + `${fmtCount(s.events_this_hour)} events this hour · last received ${fmtTime(s.last_event_at)}`,
        // history sent to /v1/import is received now but dated earlier: say so, apart
        s.earlier_events_last_hour
          ? ` · ${fmtCount(s.earlier_events_last_hour)} older events received in the last hour (history sent to /v1/import)` : "")))
      : h("p", {}, "No sources yet. ", h("a", { href: "/settings" }, "Create one"), "."));
}

function countdown(source) {
  if (source.training_ends_at === null) return h("span", { class: "pill training countdown" }, "waiting for events");
  if (source.training_left_seconds > 0) {
    return h("span", { class: "pill training countdown" }, `training · ${fmtLeft(source.training_left_seconds)} left`);
  }
  return h("span", { class: "pill active countdown" }, "watching");
}

// Events per page of the debug view's tables: the page stays a few screens long.
const DEBUG_PAGE = 10;

/** A table body showing one page of `rows` (newest first), and its Newer/Older controls. */
function pagedRows(tbody, nav, rows, state, empty) {
  const pages = Math.max(1, Math.ceil(rows.length / DEBUG_PAGE));
  state.page = Math.min(state.page, pages - 1);
  const first = state.page * DEBUG_PAGE;
  const shown = rows.slice(first, first + DEBUG_PAGE);
  fill(tbody, ...(shown.length ? shown : [empty]));
  if (rows.length <= DEBUG_PAGE) {
    fill(nav);
    return;
  }
  const go = (page) => () => { state.page = page; state.redraw(); };
  fill(nav,
    h("button", { type: "button", class: "newer", disabled: state.page === 0, onclick: go(state.page - 1) }, "← Newer"),
    h("span", { class: "muted" }, `${first + 1}–${first + shown.length} of the latest ${rows.length}`),
    h("button", { type: "button", class: "older", disabled: state.page === pages - 1, onclick: go(state.page + 1) }, "Older →"));
}

async function sourcePage() {
  const sources = await api("GET", "/sources");
  const source = sources.find((s) => String(s.id) === objectId);
  if (!source) throw new ApiError(404, { detail: "No such source in this workspace." });
  document.title = `${source.name} · debug · Lantern`;
  const summary = h("div", { class: "card", id: "summary" });
  const minutes = h("div", { class: "card" });
  const accepted = h("tbody");
  const rejected = h("tbody");
  const acceptedPages = h("div", { class: "row pager", id: "accepted-pages" });
  const rejectedPages = h("div", { class: "row pager", id: "rejected-pages" });
  const acceptedState = { page: 0, redraw: () => {} };
  const rejectedState = { page: 0, redraw: () => {} };
  const reasons = h("div");
  const overCap = h("div", { id: "over-cap" });
  const dimensions = h("tbody", { id: "dimensions" });
  const paused = { value: false };
  const pause = h("button", { type: "button", onclick: () => {
    paused.value = !paused.value;
    pause.textContent = paused.value ? "Resume" : "Pause";
    live.className = paused.value ? "muted" : "live";
  } }, "Pause");
  const live = h("span", { class: "live" }, "live");

  async function refresh() {
    if (paused.value) return;
    try {
      const [all, debug] = await Promise.all([api("GET", "/sources"), api("GET", `/sources/${source.id}/debug`)]);
      const s = all.find((x) => x.id === source.id) || source;
      const totals = debug.per_minute.reduce((t, m) => ({ a: t.a + m.accepted, r: t.r + m.rejected }), { a: 0, r: 0 });
      fill(summary, h("div", { class: "row spread" }, h("h2", {}, s.name), countdown(s)),
        h("div", { class: "grid" }, fact("Accepted, last hour", String(totals.a)), fact("Rejected, last hour", String(totals.r)),
          fact("Metrics", `${s.metrics} (${s.trained_metrics} trained)`),
          fact("Over the metric cap", String(debug.over_cap_latest_hour ?? 0))));
      // sixty slots, oldest first, whether or not a minute saw events
      const byMinute = new Map(debug.per_minute.map((m) => [Math.floor(Date.parse(m.minute) / 60e3), m]));
      const nowMinute = Math.floor(Date.now() / 60e3);
      const slots = [];
      for (let k = nowMinute - 59; k <= nowMinute; k++) {
        slots.push(byMinute.get(k) || { minute: new Date(k * 60e3).toISOString(), accepted: 0, rejected: 0 });
      }
      const peak = Math.max(1, ...slots.map((m) => m.accepted + m.rejected));
      fill(minutes, h("div", { class: "row spread" }, h("strong", {}, "Events per minute, last hour"), h("span", {}, live, " ", pause)),
        h("div", { class: "bars", id: "bars" }, slots.map((m) => h("span", {
          class: m.rejected > m.accepted ? "rejected" : "",
          style: `height:${m.accepted + m.rejected ? Math.max(3, ((m.accepted + m.rejected) / peak) * 100) : 0}%`,
          title: `${fmtTime(m.minute)}: ${m.accepted} accepted, ${m.rejected} rejected`,
        }))),
        h("div", { class: "row spread muted" }, h("span", {}, "60 min ago"), h("span", {}, "now")));
      const acceptedRows = debug.accepted.map((e) => h("tr", {},
        h("td", { class: "hide-narrow" }, fmtTime(e.received_at)),
        h("td", {}, h("pre", { class: "event" }, JSON.stringify(e.event, null, 1)))));
      acceptedState.redraw = () => pagedRows(accepted, acceptedPages, acceptedRows, acceptedState,
        h("tr", {}, h("td", { colspan: 2, class: "muted" },
          "No events yet. Paste the source's API key into Segment, or point an analytics library at this server.")));
      acceptedState.redraw();
      const rejectedRows = debug.rejected.map((e) => h("tr", {},
        h("td", { class: "hide-narrow" }, fmtTime(e.received_at)), h("td", {}, e.reason),
        h("td", {}, h("pre", { class: "event" }, JSON.stringify(e.event, null, 1)))));
      rejectedState.redraw = () => pagedRows(rejected, rejectedPages, rejectedRows, rejectedState,
        h("tr", {}, h("td", { colspan: 3, class: "muted" }, "Nothing rejected lately.")));
      rejectedState.redraw();
      fill(reasons, ...Object.entries(debug.rejection_reasons).map(([r, n]) =>
        h("span", { class: "pill" }, `${r}: ${n}`)));
      fill(dimensions, ...debug.dimensions.map((d) => h("tr", {},
        h("td", {}, d.name),
        h("td", {}, d.recording
          ? (d.values.length ? d.values.map((v) => h("span", { class: "pill" }, `${v.value}: ${v.events}`)) : h("span", { class: "muted" }, "no value yet"))
          : h("span", { class: "notice" }, `Refused: ${d.refused}. Nothing is counted for it.`)),
        h("td", { class: "hide-narrow muted" }, d.full ? "cap reached: new values count as (other)" : ""))));
      fill(overCap, debug.over_cap.length ? h("div", { class: "notice" },
        `This source sends more distinct names than its metric cap; these count together in one overflow metric: `,
        debug.over_cap.join(", ")) : null);
    } catch (err) {
      fill(summary, errorBox(err));
    }
  }
  show(h("p", {}, h("a", { href: "/sources" }, "← Sources")), h("h1", {}, "Debug view"),
    summary, overCap, minutes,
    h("div", { class: "card table-wrap" }, h("h2", {}, "Accepted (as stored: nothing personal)"),
      h("table", { id: "accepted" }, h("thead", {}, h("tr", {}, h("th", { class: "hide-narrow" }, "Received"), h("th", {}, "Event"))), accepted),
      acceptedPages),
    h("div", { class: "card table-wrap" }, h("h2", {}, "Rejected"), reasons,
      h("table", { id: "rejected" }, h("thead", {}, h("tr", {}, h("th", { class: "hide-narrow" }, "Received"), h("th", {}, "Reason"), h("th", {}, "Event"))), rejected),
      rejectedPages),
    h("div", { class: "card table-wrap" }, h("h2", {}, "Breakdowns: values seen in the last 24 hours"),
      h("table", { id: "breakdowns" }, h("thead", {}, h("tr", {}, h("th", {}, "Dimension"), h("th", {}, "Values (events)"), h("th", { class: "hide-narrow" }, ""))), dimensions)));
  await refresh();
  setInterval(refresh, 3000);
}

/* ---------- settings ---------- */

async function settingsPage() {
  const [sources, settings, slack, hooks] = await Promise.all([
    api("GET", "/sources"), api("GET", "/settings"), api("GET", "/slack"), api("GET", "/webhooks"),
  ]);
  const sourceList = h("div", { id: "sources" });
  const newKey = h("div", { id: "new-key" });

  function keyBox(title, source) {
    const input = h("input", { readonly: true, value: source.api_key, "aria-label": "API key", id: "api-key" });
    const button = h("button", { type: "button", onclick: () => copy(source.api_key, button) }, "Copy");
    return h("div", { class: "ok" }, h("strong", {}, title), h("p", {},
      "Paste this key into Segment's Lantern destination, or pass it to an analytics library ",
      "with this server as its host. It is shown only once."), h("div", { class: "key" }, input, button));
  }

  function drawSources(list) {
    if (!list.length) {
      fill(sourceList, h("p", { class: "muted" }, "No sources yet: name one below and Lantern gives it an API key."));
      return;
    }
    fill(sourceList, h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Source"), h("th", {}, "Key"), h("th", { class: "hide-narrow" }, "Created"), h("th", {}, ""))),
      h("tbody", {}, list.map((s) => h("tr", { "data-source": s.id },
        h("td", {}, h("a", { href: `/sources/${s.id}` }, s.name)),
        h("td", { class: "mono" }, `${s.key_hint}…`),
        h("td", { class: "hide-narrow" }, fmtTime(s.created_at)),
        h("td", { class: "row" },
          h("button", { type: "button", onclick: async () => {
            if (!confirm(`Give ${s.name} a new key? The old key stops working at once.`)) return;
            const rotated = await api("POST", `/sources/${s.id}/rotate`);
            fill(newKey, keyBox(`New key for ${s.name}`, rotated));
            drawSources(await api("GET", "/sources"));
          } }, "Rotate key"),
          h("button", { type: "button", "data-breakdowns": s.id, onclick: () => editBreakdowns(s) }, "Breakdowns"),
          h("button", { type: "button", class: "danger", onclick: async () => {
            if (!confirm(`Delete ${s.name} with its metrics and insights?`)) return;
            await api("DELETE", `/sources/${s.id}`);
            drawSources(await api("GET", "/sources"));
          } }, "Delete"))))))));
  }
  drawSources(sources);

  // A source's breakdowns: the dimensions its metrics are split by, as one list to edit.
  const breakdownBox = h("div", { id: "breakdowns-editor" });
  function drawBreakdowns(source, state, message) {
    const problem = h("div", { id: "breakdowns-problem" });
    const names = h("input", { name: "dimensions", "aria-label": "dimensions",
      value: state.dimensions.map((d) => d.name).join(", ") });
    const form = h("form", { class: "row", onsubmit: async (ev) => {
      ev.preventDefault();
      const list = names.value.split(",").map((n) => n.trim()).filter((n) => n);
      try {
        drawBreakdowns(source, await api("PUT", `/sources/${source.id}/breakdowns`, { dimensions: list }), "Breakdowns saved.");
      } catch (err) {
        fill(problem, errorBox(err));
      }
    } }, names, h("button", { class: "primary", type: "submit" }, "Save"));
    const refused = state.dimensions.filter((d) => !d.recording);
    fill(breakdownBox, h("div", { class: "card" }, h("h2", {}, `Breakdowns of ${source.name}`),
      h("p", { class: "muted" }, "Each metric is also counted by these dimensions, the first ", String(state.cap),
        " values of each on their own and the rest as (other). Defaults: os, app_version, library, country ",
        "(from the locale, never the IP), page_path. Add a property as properties.<key>; one whose values look ",
        "personal (emails, ids, free text, one value per user) is refused with the reason. An empty list turns ",
        "breakdowns off."),
      message ? h("div", { class: "ok" }, message) : null,
      refused.map((d) => h("div", { class: "notice" }, `${d.name} refused: ${d.refused}. Nothing is counted for it.`)),
      form, problem));
  }
  async function editBreakdowns(source) {
    try {
      drawBreakdowns(source, await api("GET", `/sources/${source.id}/breakdowns`));
    } catch (err) {
      fill(breakdownBox, errorBox(err));
    }
    breakdownBox.scrollIntoView();
  }
  const name = h("input", { name: "name", placeholder: "e.g. web-app", required: true, maxlength: 100 });
  const createForm = h("form", { class: "row", id: "create-source", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const made = await api("POST", "/sources", { name: name.value });
      name.value = "";
      fill(newKey, keyBox(`Source ${made.name} created`, made));
      drawSources(await api("GET", "/sources"));
    } catch (err) {
      fill(newKey, errorBox(err));
    }
  } }, name, h("button", { class: "primary", type: "submit" }, "Create source"));

  const slackBox = h("div", { id: "slack" });
  function drawSlack(state, message) {
    const problem = h("div", { id: "slack-problem" });
    const add = h("button", { type: "button", class: "slack", id: "add-to-slack", onclick: async () => {
      try {
        const { url } = await api("POST", "/slack/install");
        location.href = url;
      } catch (err) {
        fill(problem, errorBox(err));
      }
    } }, "Receive insights in Slack");
    const token = h("input", { name: "bot_token", placeholder: "xoxb-…", required: true });
    const channel = h("input", { name: "channel", placeholder: "#product-alerts", required: true });
    const secret = h("input", { name: "signing_secret", type: "password", autocomplete: "off",
      placeholder: "signing secret (for buttons)", "aria-label": "signing secret, optional" });
    const tokenForm = h("form", { class: "row", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const body = { bot_token: token.value, channel: channel.value };
        if (secret.value.trim()) body.signing_secret = secret.value.trim();
        drawSlack(await api("PUT", "/slack/token", body), "Slack connected.");
      } catch (err) {
        fill(problem, errorBox(err));
      }
    } }, token, channel, secret, h("button", { type: "submit" }, "Connect"));
    const url = h("code", { id: "interactivity-url" }, state.interactivity_url);
    const buttons = h("div", { id: "slack-buttons" }, state.buttons
      ? h("p", {}, "Alerts carry Useful, Not useful, Mute metric and Snooze buttons; Slack sends their clicks to ", url, ".")
      : h("p", { class: "muted" }, "Alerts carry only an “Open in Lantern” link. For Useful, Not useful, Mute and Snooze buttons, ",
        "turn on Interactivity in your Slack app with the Request URL ", url, ", then paste the app’s signing secret ",
        "(Basic Information) with its bot token below; for an Add to Slack install, set LANTERN_SLACK_SIGNING_SECRET."));
    const test = h("button", { type: "button", onclick: async () => {
      try {
        await api("POST", "/slack/test");
        drawSlack(state, "Test message sent.");
      } catch (err) {
        fill(problem, errorBox(err));
      }
    } }, "Send a test message");
    fill(slackBox,
      state.public_url_warning ? h("div", { class: "error", id: "public-url-warning" }, state.public_url_warning) : null,
      state.connected
        ? h("p", {}, "Connected", state.team_name ? ` to ${state.team_name}` : "", state.channel ? `, posting to ${state.channel_name ? "#" + state.channel_name : state.channel}` : "", ". ")
        : h("p", { class: "muted" }, "Not connected yet."),
      message ? h("div", { class: "ok" }, message) : null,
      problem,
      state.error ? h("div", { class: "error" }, state.error) : null,
      state.failed_notifications ? h("div", { class: "error" },
        `${state.failed_notifications} notification(s) could not be delivered: ${state.last_failure || ""}`) : null,
      state.add_to_slack_available ? add
        : h("p", { class: "muted" }, "“Add to Slack” needs LANTERN_SLACK_CLIENT_ID and LANTERN_SLACK_CLIENT_SECRET; or paste a bot token:"),
      h("details", { open: !state.add_to_slack_available && !state.connected },
        h("summary", {}, "Paste a bot token and channel instead"), tokenForm),
      buttons,
      state.connected ? test : null);
  }
  drawSlack(slack);

  const hookBox = h("div", { id: "webhooks" });
  const hookSaid = h("div", { id: "webhook-said" });
  function drawHooks(list) {
    fill(hookBox, list.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "URL"), h("th", {}, "Delivered"), h("th", {}, "Waiting or failed"), h("th", {}, ""))),
      h("tbody", {}, list.map((w) => h("tr", { "data-webhook": w.id },
        h("td", { class: "mono" }, w.url),
        h("td", { class: "num" }, String(w.sent)),
        h("td", {}, w.waiting || w.failed ? `${w.waiting} waiting, ${w.failed} failed: ${w.last_error || ""}` : "–"),
        h("td", { class: "row" },
          h("button", { type: "button", onclick: async () => {
            try {
              await api("POST", `/webhooks/${w.id}/test`);
              fill(hookSaid, h("div", { class: "ok" }, `Test event delivered to ${w.url}.`));
            } catch (err) {
              fill(hookSaid, errorBox(err));
            }
          } }, "Send a test"),
          h("button", { type: "button", class: "danger", onclick: async () => {
            if (!confirm(`Stop sending to ${w.url}?`)) return;
            await api("DELETE", `/webhooks/${w.id}`);
            fill(hookSaid);
            drawHooks(await api("GET", "/webhooks"));
          } }, "Remove")))))))
      : h("p", { class: "muted" }, "No webhooks: insights go to Slack only."));
  }
  drawHooks(hooks);
  const hookUrl = h("input", { name: "webhook_url", type: "url", placeholder: "https://example.com/hooks/lantern", required: true, maxlength: 500 });
  const hookForm = h("form", { class: "row", id: "add-webhook", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      const made = await api("POST", "/webhooks", { url: hookUrl.value });
      hookUrl.value = "";
      const secret = h("input", { readonly: true, value: made.secret, "aria-label": "webhook secret", id: "webhook-secret" });
      fill(hookSaid, h("div", { class: "ok" }, h("strong", {}, "Webhook added. "),
        h("p", {}, "Its secret signs every POST (X-Lantern-Signature); give it to the receiver. It is shown only once."),
        h("div", { class: "key" }, secret, h("button", { type: "button", onclick: (e) => copy(made.secret, e.target) }, "Copy"))));
      drawHooks(await api("GET", "/webhooks"));
    } catch (err) {
      fill(hookSaid, errorBox(err));
    }
  } }, hookUrl, h("button", { type: "submit" }, "Add webhook"));

  const sensitivity = h("select", { name: "sensitivity", id: "sensitivity" },
    ["low", "medium", "high"].map((s) => h("option", { value: s, selected: s === settings.sensitivity }, s)));
  const saved = h("span", { class: "muted" });
  sensitivity.addEventListener("change", async () => {
    try {
      const next = await api("PUT", "/settings", { sensitivity: sensitivity.value });
      saved.textContent = `Saved: ${next.sensitivity}.`;
    } catch (err) {
      fill(saved, errorBox(err));
    }
  });
  const delivery = settings.delivery;
  const hours = (name, value) => h("select", { name },
    h("option", { value: "" }, "–"),
    Array.from({ length: 24 }, (_, i) => h("option", { value: i, selected: value === i }, `${String(i).padStart(2, "0")}:00`)));
  const zone = h("input", { name: "time_zone", value: delivery.time_zone, maxlength: 64, "aria-label": "time zone" });
  const quietStart = hours("quiet_start", delivery.quiet_start);
  const quietEnd = hours("quiet_end", delivery.quiet_end);
  const outages = h("input", { type: "checkbox", name: "quiet_holds_outages", checked: delivery.quiet_holds_outages });
  const held = h("select", { name: "quiet_hours_delivery" },
    h("option", { value: "each", selected: delivery.quiet_hours_delivery === "each" }, "each alert on its own"),
    h("option", { value: "summary", selected: delivery.quiet_hours_delivery === "summary" }, "one summary listing them"));
  const digestHour = hours("digest_hour", delivery.digest_hour);
  const quietSaid = h("div", { id: "quiet-said" });
  const quietForm = h("form", { id: "quiet-hours", onsubmit: async (ev) => {
    ev.preventDefault();
    const hour = (s) => (s.value === "" ? null : Number(s.value));
    try {
      const next = await api("PUT", "/settings", { delivery: { time_zone: zone.value.trim(),
        quiet_start: hour(quietStart), quiet_end: hour(quietEnd), quiet_holds_outages: outages.checked,
        quiet_hours_delivery: held.value, digest_hour: hour(digestHour) } });
      const d = next.delivery;
      fill(quietSaid, h("div", { class: "ok" }, (d.quiet_start === null ? "Saved: no quiet hours"
        : `Saved: quiet from ${d.quiet_start}:00 to ${d.quiet_end}:00 (${d.time_zone}), then `
          + (d.quiet_hours_delivery === "summary" ? "one summary" : "each alert on its own"))
        + (d.digest_hour === null ? "." : `; low-severity alerts in a digest at ${d.digest_hour}:00.`)));
    } catch (err) {
      fill(quietSaid, errorBox(err));
    }
  } },
  h("div", { class: "row" },
    h("label", { class: "inline" }, "Time zone", zone),
    h("label", { class: "inline" }, "Quiet from", quietStart),
    h("label", { class: "inline" }, "to", quietEnd)),
  h("label", {}, outages, " Hold high-severity outages too"),
  h("div", { class: "row" }, h("label", { class: "inline" }, "When they end, send the alerts held", held)),
  h("div", { class: "row" }, h("label", { class: "inline" }, "Daily digest of low-severity alerts at", digestHour)),
  h("div", {}, h("button", { type: "submit" }, "Save")));

  show(h("h1", {}, "Settings"), h("p", { class: "muted" }, `Workspace ${settings.workspace.name}`),
    h("div", { class: "card" }, h("h2", {}, "Sources and API keys"), newKey, sourceList, createForm),
    breakdownBox,
    h("div", { class: "card" }, h("h2", {}, "Slack"), slackBox),
    h("div", { class: "card" }, h("h2", {}, "Webhooks"),
      h("p", { class: "muted" }, "Each insight's alert, louder update and end, as a signed JSON POST: route Lantern to Teams, PagerDuty or your own bot."),
      hookSaid, hookBox, hookForm),
    h("div", { class: "card" }, h("h2", {}, "Quiet hours and digest"),
      h("p", { class: "muted" }, "Slack messages due in these hours wait for their end, then go in order, each alert on its own or all of them in one summary (whose thread then carries their updates); high-severity outages go at once unless held too. With a digest hour, low-severity alerts are told once a day in one message. Webhooks receive everything at once."),
      quietSaid, quietForm),
    h("div", { class: "card" }, h("h2", {}, "Sensitivity"),
      h("p", { class: "muted" }, "Low tells you only about large changes; high also about smaller ones."),
      h("div", { class: "row" }, sensitivity, saved)));
}

/* ---------- start ---------- */

const PAGES = {
  login: loginPage, feed: feedPage, insight: insightPage, metrics: metricsPage,
  metric: metricPage, sources: sourcesPage, source: sourcePage, settings: settingsPage,
};

async function start() {
  for (const link of document.querySelectorAll("[data-nav]")) {
    const active = link.dataset.nav === page || (page === "insight" && link.dataset.nav === "feed")
      || (page === "metric" && link.dataset.nav === "metrics") || (page === "source" && link.dataset.nav === "sources");
    if (active) link.classList.add("active");
  }
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await api("POST", "/auth/logout");
      location.href = "/login";
    });
  }
  try {
    if (page !== "login") {
      const me = await api("GET", "/auth/me");
      csrf = me.csrf_token;
      if (logout) logout.title = me.user.email;
    }
    await PAGES[page]();
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) show(errorBox(err));
  }
  document.body.dataset.ready = "1";
}

start();
