/* One month's statements, with the month's files: every line as CSV, the summary CSV, the Zengin file. */
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  Staff.require();
  const heading = document.getElementById("month-heading");
  const period = heading.dataset.period;
  const month = formatMonth(period);
  heading.textContent = T("month.title", { month });
  document.title = heading.textContent + " | " + T("app.title");
  const target = document.getElementById("statements");
  const answer = await api("GET", "/statements?period=" + encodeURIComponent(period));
  if (!answer.ok) { clear(target).append(refusal(answer.body)); return; }
  const list = answer.body;
  const rows = list.map((st) => el("tr", { "data-statement": String(st.statement_id), "data-status": st.status },
    el("th", { scope: "row" }, st.operator_name),
    el("td", {}, st.number),
    el("td", {}, stageBadge(st.status)),
    el("td", { class: "num" }, st.ride_count.toLocaleString("ja-JP")),
    el("td", { class: "num" }, yen(st.subsidy_total)),
    el("td", { class: "num" }, yen(st.adjustment_total)),
    el("td", { class: "num" }, yen(st.amount_due)),
    el("td", {}, el("a", { class: "btn secondary", href: "/staff/finance/statements/" + st.statement_id },
      T("month.open", { name: st.operator_name })))));
  const sum = (name) => list.reduce((total, st) => total + st[name], 0);
  const foot = el("tr", {},
    el("th", { scope: "row" }, T("month.total")), el("td", {}), el("td", {}),
    el("td", { class: "num" }, sum("ride_count").toLocaleString("ja-JP")),
    el("td", { class: "num" }, yen(sum("subsidy_total"))),
    el("td", { class: "num" }, yen(sum("adjustment_total"))),
    el("td", { class: "num" }, yen(sum("amount_due"))),
    el("td", {}));
  clear(target).append(list.length ? tableOf(T("month.title", { month }), [
    { label: T("finance.operator") }, { label: T("month.number") }, { label: T("month.status") },
    { label: T("month.rides"), num: true }, { label: T("month.subsidy"), num: true },
    { label: T("month.adjustment"), num: true }, { label: T("month.due"), num: true },
    { label: T("finance.actions") }], rows, { foot, id: "statements-table" }) : el("p", {}, T("finance.none")));

  // The month's files are for the city's finance staff and auditors; the transfer file for finance only.
  if (!hasRole(RUN_READERS)) return;
  const files = document.getElementById("month-files");
  files.hidden = false;
  const status = document.getElementById("files-message");
  document.getElementById("lines-csv").addEventListener("click", () =>
    downloadFile("GET", "/statements/export/lines.csv?period=" + period, "statement-lines-" + period + ".csv", status));
  document.getElementById("summary-csv").addEventListener("click", () =>
    downloadFile("GET", "/statements/export/summary.csv?period=" + period, "statements-" + period + ".csv", status));
  const zengin = document.getElementById("zengin-box");
  if (!hasRole(["finance", "finance_approver"])) { zengin.hidden = true; return; }
  document.getElementById("zengin").addEventListener("click", () => {
    const day = document.getElementById("payment-date").value;
    const query = "?period=" + period + (day ? "&payment_date=" + day : "");
    downloadFile("GET", "/payment-files/zengin" + query, "zengin-" + period + ".txt", status);
  });
});
