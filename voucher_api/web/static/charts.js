/* Monthly rides and subsidy by operator, district or program, from /reports/monthly: small bar charts
   drawn here as inline SVG (one per key, the same scale for all keys, the total first), each a list of its
   bars (month, then value), and the same figures as tables. */
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const METRICS = [
  { name: "rides", label: "charts.rides", format: number },
  { name: "subsidy", label: "charts.subsidy", format: (n) => yen(n) },
];

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function monthRange(from, to) {
  const months = [];
  let [year, month] = from.split("-").map(Number);
  const [lastYear, lastMonth] = to.split("-").map(Number);
  while (year * 12 + month <= lastYear * 12 + lastMonth && months.length < 36) {
    months.push(year + "-" + String(month).padStart(2, "0"));
    month += 1;
    if (month > 12) { month = 1; year += 1; }
  }
  return months;
}

function shortMonth(period) {
  const [year, month] = period.split("-").map(Number);
  return CONFIG.lang === "en"
    ? new Intl.DateTimeFormat("en-GB", { month: "short", timeZone: "UTC" }).format(new Date(Date.UTC(year, month - 1, 15)))
    : month + "月";
}

/** Counts and amounts in the bars and tables: with thousands separators (3,071), as everywhere on the page. */
function number(n) {
  return n.toLocaleString("ja-JP");
}

/**
 * One bar chart: a bar per month, its value written above it, months below; `max` is the shared scale.
 * Each bar is a list item whose text reads month then value ("9月 60"), so read aloud or copied as text
 * a value never runs into the next month; the drawing order is left to the coordinates. Sizes are SVG
 * attributes only, never a style attribute (the Content-Security-Policy allows no inline style).
 */
function barChart(title, metric, months, values, max) {
  const bar = 44;
  const gap = Math.max(20, number(max).length * 9 + 8 - bar); // room for the longest value (15px bold digits)
  const top = 28;
  const plot = 120;
  const width = months.length * (bar + gap) + gap;
  const height = top + plot + 34;
  const chart = svg("svg", {
    viewBox: "0 0 " + width + " " + height, width: Math.max(width * 1.5, 320), role: "list",
    "aria-label": T(metric.label) + (CONFIG.lang === "en" ? " (" + title + ")" : "(" + title + ")"),
    class: "bar-chart", preserveAspectRatio: "xMinYMin meet",
  });
  chart.append(svg("line", { x1: 0, x2: width, y1: top + plot, y2: top + plot, class: "axis", "aria-hidden": "true" }));
  months.forEach((month, i) => {
    const x = gap + i * (bar + gap);
    const h = max > 0 ? Math.round((values[i] / max) * plot) : 0;
    chart.append(svg("g", {
      role: "listitem", class: "bar-unit", "data-month": month,
      "aria-label": formatMonth(month) + " " + metric.format(values[i]),
    },
    svg("text", { x: x + bar / 2, y: top + plot + 24, "text-anchor": "middle", class: "month" }, shortMonth(month)),
    svg("text", { x: x + bar / 2, y: top + plot - h - 6, "text-anchor": "middle", class: "value" }, number(values[i])),
    svg("rect", { x, y: top + plot - h, width: bar, height: Math.max(h, values[i] > 0 ? 2 : 0), class: "bar", "data-value": values[i] })));
  });
  return chart;
}

function render(report) {
  const target = clear(document.getElementById("charts"));
  // One short sentence is announced, not the whole drawing: the charts area itself is not live.
  const status = document.getElementById("chart-status");
  const shown = T("charts.shown", { from: formatMonth(report.from), to: formatMonth(report.to), by: T("charts.by." + report.by) });
  status.className = report.rows.length ? "note" : "notice warn";
  status.textContent = report.rows.length ? shown : shown + " " + T("charts.empty");
  const months = monthRange(report.from, report.to);
  const keys = [];
  for (const row of report.rows) {
    if (!keys.some((k) => k.key === row.key)) keys.push({ key: row.key, label: row.key === null ? T("charts.no_district") : row.label });
  }
  const value = (metric, key, month) => report.rows
    .filter((r) => r.period === month && (key === undefined || r.key === key))
    .reduce((sum, r) => sum + r[metric], 0);
  if (!report.rows.length) return;
  for (const metric of METRICS) {
    const totals = months.map((m) => value(metric.name, undefined, m));
    const perKey = keys.map((k) => months.map((m) => value(metric.name, k.key, m)));
    const shared = Math.max(0, ...perKey.flat());
    const section = el("section", { class: "chart-group", "data-metric": metric.name, "aria-labelledby": "chart-" + metric.name },
      el("h2", { id: "chart-" + metric.name }, T(metric.label)));
    const figures = el("div", { class: "small-multiples" });
    figures.append(el("figure", { class: "chart total", "data-key": "total" },
      el("figcaption", {}, T("charts.total")), barChart(T("charts.total"), metric, months, totals, Math.max(0, ...totals))));
    keys.forEach((k, i) => figures.append(el("figure", { class: "chart", "data-key": k.key === null ? "none" : k.key },
      el("figcaption", {}, k.label), barChart(k.label, metric, months, perKey[i], shared))));
    const rows = keys.map((k, i) => el("tr", {},
      el("th", { scope: "row" }, k.label),
      perKey[i].map((n) => el("td", { class: "num" }, metric.format(n))),
      el("td", { class: "num" }, metric.format(perKey[i].reduce((a, b) => a + b, 0)))));
    const foot = el("tr", {}, el("th", { scope: "row" }, T("charts.total")),
      totals.map((n) => el("td", { class: "num" }, metric.format(n))),
      el("td", { class: "num" }, metric.format(totals.reduce((a, b) => a + b, 0))));
    section.append(figures,
      el("h3", {}, T("charts.table", { what: T(metric.label) })),
      tableOf(T("charts.table", { what: T(metric.label) }),
        [{ label: T("charts.by." + report.by) }].concat(months.map((m) => ({ label: formatMonth(m), num: true })),
          [{ label: T("charts.total"), num: true }]),
        rows, { foot, id: "table-" + metric.name }));
    target.append(section);
  }
}

async function show(event) {
  if (event) event.preventDefault();
  const form = document.getElementById("chart-form");
  const message = clear(document.getElementById("chart-message"));
  const by = form.querySelector("input[name=by]:checked").value;
  const query = new URLSearchParams({ from: form.from.value, to: form.to.value, by });
  const answer = await api("GET", "/reports/monthly?" + query.toString());
  if (!answer.ok) {
    message.append(refusal(answer.body));
    clear(document.getElementById("charts"));
    document.getElementById("chart-status").textContent = "";
    return;
  }
  history.replaceState(null, "", "?" + query.toString());
  render(answer.body);
}

document.addEventListener("DOMContentLoaded", () => {
  Staff.require();
  const form = document.getElementById("chart-form");
  const asked = new URLSearchParams(location.search);
  form.from.value = asked.get("from") || monthsAgo(5);
  form.to.value = asked.get("to") || monthsAgo(0);
  const by = form.querySelector("input[name=by][value='" + (asked.get("by") || "operator") + "']");
  if (by) by.checked = true;
  form.addEventListener("submit", show);
  show();
});
