/* Per-stop and per-district figures after a round of the mobile office. */
"use strict";

const COLUMNS = ["tickets", "served", "applications", "approved", "rejected", "residents", "service_minutes"];

function figureCells(figures) {
  return COLUMNS.map((name) => el("td", { class: "num" },
    figures[name] === null || figures[name] === undefined ? "ー" : String(figures[name])));
}

function figureTable(caption, firstHeaders, rows) {
  const headers = firstHeaders.concat(COLUMNS.map((name) => T("figures." + (name === "service_minutes" ? "minutes" : name))));
  return el("div", { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" },
    el("table", {}, el("caption", {}, caption),
      el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { scope: "col", class: i >= firstHeaders.length ? "num" : null }, h)))),
      el("tbody", {}, rows)));
}

document.addEventListener("DOMContentLoaded", async () => {
  Staff.require();
  const target = document.getElementById("figures");
  const answer = await api("GET", "/mobile-office/rounds/" + target.dataset.round + "/figures");
  if (!answer.ok) { target.append(el("p", { class: "notice error", role: "alert" }, troubleText(answer.body))); return; }
  const data = answer.body;
  document.getElementById("round-name").textContent = data.name;
  target.append(
    figureTable(T("figures.by_stop"), [T("mobile.place"), T("mobile.district")],
      data.stops.map((row) => el("tr", { "data-stop": row.code },
        el("th", { scope: "row" }, row.place), el("td", {}, row.district_name), figureCells(row.figures)))),
    figureTable(T("figures.by_district"), [T("mobile.district")],
      data.districts.map((row) => el("tr", { "data-district": row.district_code },
        el("th", { scope: "row" }, row.district_name), figureCells(row.figures)))
        .concat([el("tr", { "data-total": "" }, el("th", { scope: "row" }, T("figures.total")), figureCells(data.total))])));
});
