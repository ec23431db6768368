/* 精算: every month with its latest close and its statements; start or re-run a close and follow it
   operator by operator (the run is polled until it has finished). */
"use strict";

const ACTIVE = ["queued", "running"];
const POLL_MS = 1000;
let polling = null;

function statementSummary(list) {
  if (!list.length) return T("finance.none");
  const counts = STAGES.filter((s) => list.some((st) => st.status === s))
    .map((s) => T("st." + s) + " " + list.filter((st) => st.status === s).length);
  return T("finance.count", { n: list.length }) + "(" + counts.join("・") + ")";
}

function runSummary(run) {
  if (!run) return T("finance.never_run");
  const when = run.finished_at || run.started_at || run.created_at;
  return T("run." + run.status) + " ・ " + formatDateTime(when);
}

async function loadMonths() {
  const target = document.getElementById("months");
  const readsRuns = hasRole(RUN_READERS);
  const closes = hasRole(["finance", "finance_approver"]);
  const [runs, statements] = await Promise.all([
    readsRuns ? api("GET", "/settlement-runs") : Promise.resolve({ ok: true, body: [] }),
    api("GET", "/statements"),
  ]);
  if (!runs.ok || !statements.ok) { clear(target).append(refusal(runs.ok ? statements.body : runs.body)); return []; }
  const periods = new Set();
  if (readsRuns) for (let back = 1; back <= 12; back += 1) periods.add(monthsAgo(back));
  for (const run of runs.body) periods.add(run.period);
  for (const st of statements.body) periods.add(st.period);
  const rows = [...periods].sort().reverse().map((period) => {
    const run = runs.body.find((r) => r.period === period); // newest first
    const list = statements.body.filter((st) => st.period === period);
    const due = list.reduce((sum, st) => sum + st.amount_due, 0);
    const month = formatMonth(period);
    const actions = el("div", { class: "row-actions" });
    if (list.length) {
      actions.append(el("a", { class: "btn secondary", href: "/staff/finance/" + period }, T("finance.open_month", { month })));
    }
    if (closes) {
      actions.append(el("button", {
        type: "button", class: "btn", "data-close": period,
        disabled: run && ACTIVE.includes(run.status) ? true : null,
        onclick: () => startClose(period),
      }, T(run ? "finance.rerun" : "finance.start", { month })));
    }
    return el("tr", { "data-period": period },
      el("th", { scope: "row" }, month),
      readsRuns ? el("td", { "data-run-status": run ? run.status : "" }, runSummary(run)) : null,
      el("td", {}, statementSummary(list)),
      el("td", { class: "num" }, list.length ? yen(due) : "ー"),
      el("td", {}, actions));
  });
  const headers = [{ label: T("finance.month") }]
    .concat(readsRuns ? [{ label: T("finance.run") }] : [])
    .concat([{ label: T("finance.statements") }, { label: T("finance.amount_due"), num: true }, { label: T("finance.actions") }]);
  clear(target).append(tableOf(T("finance.months"), headers, rows, { id: "months-table" }));
  document.getElementById("rerun-note").hidden = !closes;
  return runs.body;
}

async function startClose(period) {
  const message = clear(document.getElementById("finance-message"));
  let answer;
  try {
    answer = await api("POST", "/settlement-runs", { key: newKey(), body: { period } });
  } catch (error) {
    message.append(el("p", { class: "notice error", role: "alert" }, T("network.offline")));
    return;
  }
  if (!answer.ok) {
    message.append(refusal(answer.body));
    if (answer.body && answer.body.run_id) follow(answer.body.run_id);
    return;
  }
  message.append(el("p", { class: "notice ok" }, T("finance.started", { month: formatMonth(period) })));
  follow(answer.body.run_id);
  loadMonths();
}

function renderProgress(run) {
  const section = document.getElementById("progress");
  section.hidden = false;
  section.dataset.run = String(run.run_id);
  section.dataset.status = run.status;
  document.getElementById("progress-heading").textContent = T("finance.progress", { month: formatMonth(run.period) });
  const done = (run.operators || []).filter((o) => o.state !== "waiting").length;
  const total = (run.operators || []).length || run.operators_total;
  const body = clear(document.getElementById("progress-body"));
  body.append(
    el("p", { class: "run-status" }, el("strong", {}, T("run." + run.status)), " ・ ",
      el("span", { id: "progress-count" }, T("finance.progress_count", { done, total }))),
    el("progress", { max: String(Math.max(total, 1)), value: String(done), "aria-label": T("finance.progress_label") }));
  if (run.status === "failed") {
    body.append(el("p", { class: "notice error", role: "alert" }, T("run.failed_note", { error: run.error || "" })));
  }
  const rows = (run.operators || []).map((o) => el("tr", { "data-operator": o.operator_code, "data-state": o.state },
    el("th", { scope: "row" }, o.operator_name + "(" + o.operator_code + ")"),
    el("td", {}, el("span", { class: "badge state-" + o.state }, T("progress." + o.state))),
    el("td", {}, o.statement_id && o.state !== "waiting"
      ? el("a", { href: "/staff/finance/statements/" + o.statement_id }, T("month.open", { name: o.operator_name }))
      : "ー")));
  body.append(tableOf(T("finance.progress_label"), [
    { label: T("finance.operator") }, { label: T("finance.state") }, { label: T("finance.statement") }], rows));
}

function follow(runId) {
  if (polling) clearTimeout(polling);
  const tick = async () => {
    let answer;
    try {
      answer = await api("GET", "/settlement-runs/" + runId);
    } catch (error) {
      polling = setTimeout(tick, POLL_MS * 3); // the network dropped: keep trying, more slowly
      return;
    }
    if (!answer.ok) { clear(document.getElementById("finance-message")).append(refusal(answer.body)); return; }
    renderProgress(answer.body);
    if (ACTIVE.includes(answer.body.status)) {
      polling = setTimeout(tick, POLL_MS);
    } else {
      polling = null;
      loadMonths();
    }
  };
  tick();
}

document.addEventListener("DOMContentLoaded", async () => {
  Staff.require();
  if (!hasRole(RUN_READERS)) {
    document.querySelector("h1").after(el("p", { class: "note" }, T("finance.operator_only")));
  }
  const runs = await loadMonths();
  const active = runs.find((run) => ACTIVE.includes(run.status));
  if (active) follow(active.run_id);
});
