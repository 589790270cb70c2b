/* Lantern's chart: observed line, expected value with its band, anomalies shaded. SVG, no library. */
"use strict";

const LanternChart = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PAD = { left: 52, right: 12, top: 10, bottom: 26 };
  // room above the plot for the note of a range that starts after the metric's first data:
  // a line, or two on a phone's narrow chart
  const NOTE_ROOM = 28;
  const NOTE_ROOM_NARROW = 46;

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function niceTicks(lo, hi, count) {
    const span = hi - lo || 1;
    const raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || raw;
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step) ticks.push(t);
    return ticks;
  }

  function fmt(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    const a = Math.abs(v);
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    if (a >= 1e3) return (v / 1e3).toFixed(1) + "k";
    if (a >= 10 || Number.isInteger(v)) return Math.round(v).toString();
    return v.toFixed(2);
  }

  // Runs of consecutive points where every given field is a number.
  function segments(points, fields) {
    const runs = [];
    let run = [];
    for (const p of points) {
      if (fields.every((f) => typeof p[f] === "number")) run.push(p);
      else if (run.length) { runs.push(run); run = []; }
    }
    if (run.length) runs.push(run);
    return runs;
  }

  /** Draw `series` ({points, anomalies, step}) into `container`; redraws on resize. */
  function draw(container, series) {
    container.classList.add("chart");
    container.innerHTML = "";
    const daily = series.step === "day";
    let points = series.points.map((p) => ({ ...p, time: Date.parse(p.t) }));
    // the range may start before the metric's first event: begin where its data begins
    const firstData = points.findIndex((p) => typeof p.observed === "number" || typeof p.expected === "number");
    if (firstData < 0) {
      container.innerHTML = '<p class="muted">No data in this range yet.</p>';
      return;
    }
    const trimmed = firstData > 0;
    // the note sits above the plot, inside the chart's own height: nothing below moves
    const narrow = container.clientWidth < 640;
    const pad = trimmed ? { ...PAD, top: narrow ? NOTE_ROOM_NARROW : NOTE_ROOM } : PAD;
    points = points.slice(firstData);
    if (trimmed) {
      const since = new Date(points[0].time).toLocaleDateString(undefined,
        { month: "short", day: "numeric", timeZone: "UTC" });
      const note = document.createElement("p");
      note.className = "muted chart-note";
      note.textContent = `This metric has data since ${since}: the chart starts there.`;
      container.appendChild(note);
    }
    const width = Math.max(container.clientWidth, 280);
    const height = narrow ? 220 : 300;
    const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "observed and expected values" }, container);
    const tooltip = document.createElement("div");
    tooltip.className = "tooltip";
    container.appendChild(tooltip);

    const t0 = points[0].time;
    const t1 = points[points.length - 1].time || t0 + 3600e3;
    let hi = 0;
    for (const p of points) hi = Math.max(hi, p.observed ?? 0, p.upper ?? 0, p.expected ?? 0);
    hi = hi * 1.08 || 1;
    const x = (t) => pad.left + ((t - t0) / Math.max(t1 - t0, 1)) * (width - pad.left - pad.right);
    const y = (v) => height - pad.bottom - (v / hi) * (height - pad.top - pad.bottom);

    const axis = el("g", { class: "axis" }, svg);
    for (const v of niceTicks(0, hi, 4)) {
      el("line", { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v) }, axis);
      el("text", { x: pad.left - 6, y: y(v) + 4, "text-anchor": "end" }, axis).textContent = fmt(v);
    }
    const days = (t1 - t0) / 86400e3;
    // the shortest step (in days) that leaves labels ~70 px apart
    const perDay = (width - pad.left - pad.right) / Math.max(days, 1 / 24);
    const every = [0.25, 0.5, 1, 2, 7, 14, 28, 56].find((d) => d * perDay >= 70) || 91;
    const first = new Date(t0);
    first.setUTCHours(0, 0, 0, 0);
    for (let t = first.getTime(); t <= t1; t += every * 86400e3) {
      if (t < t0) continue;
      const d = new Date(t);
      const label = every < 1
        ? d.toISOString().slice(11, 16)
        : d.toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
      // a label at the right edge is right-aligned, so it is not cut off
      const anchor = x(t) > width - pad.right - 24 ? "end" : "middle";
      el("text", { x: x(t), y: height - 8, "text-anchor": anchor }, axis).textContent = label;
    }

    for (const a of series.anomalies || []) {
      const start = Math.max(Date.parse(a.start), t0);
      const end = Math.min(a.end ? Date.parse(a.end) : t1, t1);
      if (end < t0 || start > t1) continue;
      const rect = el("rect", {
        class: "anomaly", x: x(start), y: pad.top, height: height - pad.top - pad.bottom,
        width: Math.max(x(end) - x(start), 3), "data-insight": a.insight_id,
      }, svg);
      el("title", {}, rect).textContent = `${a.kind} ${a.direction}`;
    }
    for (const run of segments(points, ["lower", "upper"])) {
      const top = run.map((p) => `${x(p.time)},${y(p.upper)}`);
      const bottom = run.slice().reverse().map((p) => `${x(p.time)},${y(Math.max(p.lower, 0))}`);
      el("polygon", { class: "band", points: top.concat(bottom).join(" ") }, svg);
    }
    for (const run of segments(points, ["expected"])) {
      el("polyline", { class: "expected",
        points: run.map((p) => `${x(p.time)},${y(p.expected)}`).join(" ") }, svg);
    }
    const closed = points.filter((p) => !p.partial);
    for (const run of segments(closed, ["observed"])) {
      el("polyline", { class: "observed",
        points: run.map((p) => `${x(p.time)},${y(p.observed)}`).join(" ") }, svg);
    }
    // the hour (or day) under way: dashed to a hollow dot, as it is counted so far
    const partial = points.find((p) => p.partial && typeof p.observed === "number");
    if (partial) {
      const before = closed.filter((p) => typeof p.observed === "number").pop();
      if (before) {
        el("line", { class: "observed partial", x1: x(before.time), y1: y(before.observed),
          x2: x(partial.time), y2: y(partial.observed) }, svg);
      }
      const dot = el("circle", { class: "partial", cx: x(partial.time), cy: y(partial.observed), r: 4 }, svg);
      el("title", {}, dot).textContent = daily ? "today so far" : "this hour so far";
    }

    const cursor = el("line", { class: "cursor", y1: pad.top, y2: height - pad.bottom,
      visibility: "hidden" }, svg);
    svg.addEventListener("mousemove", (ev) => {
      const box = svg.getBoundingClientRect();
      const px = ((ev.clientX - box.left) / box.width) * width;
      const t = t0 + ((px - pad.left) / (width - pad.left - pad.right)) * (t1 - t0);
      let best = points[0];
      for (const p of points) if (Math.abs(p.time - t) < Math.abs(best.time - t)) best = p;
      cursor.setAttribute("x1", x(best.time));
      cursor.setAttribute("x2", x(best.time));
      cursor.setAttribute("visibility", "visible");
      tooltip.textContent = describe(best, daily);
      tooltip.style.display = "block";
      const left = (x(best.time) / width) * box.width;
      tooltip.style.left = Math.min(left + 8, box.width - tooltip.offsetWidth) + "px";
      tooltip.style.top = "4px";
    });
    svg.addEventListener("mouseleave", () => {
      cursor.setAttribute("visibility", "hidden");
      tooltip.style.display = "none";
    });
    if (!container.dataset.resizing) {
      container.dataset.resizing = "1";
      let last = container.clientWidth;
      window.addEventListener("resize", () => {
        if (Math.abs(container.clientWidth - last) > 20) {
          last = container.clientWidth;
          draw(container, series);
        }
      });
    }
  }

  /** One point in words, for the tooltip. */
  function describe(p, daily) {
    const band = typeof p.lower === "number"
      ? ` (normally ${fmt(Math.max(p.lower, 0))}–${fmt(p.upper)})` : "";
    const expected = typeof p.expected === "number" ? ` · expected ${fmt(p.expected)}${band}` : "";
    if (daily) {
      const day = new Date(p.time).toLocaleDateString(undefined,
        { weekday: "short", month: "short", day: "numeric", timeZone: "UTC" });
      const out = typeof p.outside === "number"
        ? ` · ${p.outside} of ${p.hours} hours outside the normal range` : "";
      const sofar = p.partial ? " (today so far)" : "";
      return `${day}${sofar} · per hour on average: observed ${fmt(p.observed)}${expected}${out}`;
    }
    const when = new Date(p.time).toISOString().slice(0, 16).replace("T", " ");
    if (p.partial) return `${when} UTC · so far this hour: ${fmt(p.observed)} (not judged until the hour ends)`;
    return `${when} UTC · observed ${fmt(p.observed)}${expected}`;
  }

  return { draw, fmt, describe };
})();
