/* One statement: its stage (draft → confirmed → approved → paid) and the step the signed-in person may take,
   totals, files, its lines a page at a time, the operator's answer (acknowledge or dispute, answered by an
   adjustment) and a check against the operator's own ride log. The API decides every rule; refusals are
   shown in plain words. */
"use strict";

const PAGE = 25; // lines a page: large rows for touch; the CSV has every line
const view = { id: null, offset: 0, statement: null, programs: new Map(), vehicles: new Map(), me: null };

function fact(label, value) {
  return [el("dt", {}, label), el("dd", {}, value === null || value === undefined || value === "" ? "ー" : value)];
}

function when(at, byId, byName) {
  if (!at) return null;
  const who = byId && byId === view.me ? T("statement.by_you") : byName ? byName : "";
  return formatDateTime(at) + (who ? " " + who : "");
}

function stageSteps(status) {
  const current = STAGES.indexOf(status);
  return el("ol", { class: "steps", "aria-label": T("statement.life") },
    STAGES.map((stage, index) => el("li", {
      class: index < current ? "done" : null, "aria-current": index === current ? "step" : null,
    }, T("st." + stage))));
}

/** The buttons for the step this person may take now; the API still checks roles and the four eyes. */
function signOff(st) {
  const message = el("div", { id: "signoff-message", role: "status", "aria-live": "polite" });
  const box = el("section", { class: "panel", "aria-labelledby": "signoff-heading" },
    el("h2", { id: "signoff-heading" }, T("statement.actions")));
  const step = (action, label, note, kind) => {
    if (note) box.append(el("p", { class: "note" }, note));
    box.append(el("div", { class: "actions" }, el("button", {
        type: "button", class: "btn " + (kind || ""), "data-action": action,
        onclick: (event) => transition(action, event.currentTarget, message),
      }, label)));
  };
  if (st.status === "draft" && hasRole(["finance"])) step("confirm", T("statement.confirm"), T("statement.confirm_note"), "go");
  if (st.status === "confirmed" && hasRole(["finance_approver"])) step("approve", T("statement.approve"), null, "go");
  if (st.status === "approved" && hasRole(["finance", "finance_approver"])) step("pay", T("statement.pay"), T("statement.pay_note"));
  if (box.querySelectorAll("button").length === 0) box.append(el("p", {}, T("statement.no_action")));
  box.append(message);
  return box;
}

async function transition(action, button, message) {
  button.disabled = true;
  clear(message);
  let answer;
  try {
    answer = await api("POST", "/statements/" + view.id + "/" + action);
  } catch (error) {
    message.append(el("p", { class: "notice error", role: "alert" }, T("network.offline")));
    button.disabled = false;
    return;
  }
  if (!answer.ok) {
    message.append(refusal(answer.body));
    button.disabled = false;
    return;
  }
  await load(T("statement.done." + answer.body.status));
}

function files() {
  const status = el("div", { role: "status", "aria-live": "polite" });
  const number = view.statement.number;
  return el("section", { class: "panel", "aria-labelledby": "files-heading" },
    el("h2", { id: "files-heading" }, T("statement.downloads")),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "btn secondary", id: "statement-csv",
        onclick: () => downloadFile("GET", "/statements/" + view.id + "/csv", "statement-" + number + ".csv", status) },
      T("statement.csv")),
      el("button", { type: "button", class: "btn secondary", id: "statement-pdf",
        onclick: () => downloadFile("GET", "/statements/" + view.id + "/pdf", "statement-" + number + ".pdf", status) },
      T("statement.pdf"))),
    status);
}

function linesSection(st) {
  const section = el("section", { id: "lines", "aria-labelledby": "lines-heading" },
    el("h2", { id: "lines-heading" }, T("statement.lines")));
  const total = st.lines_total || 0;
  if (!total) { section.append(el("p", {}, T("statement.lines_none"))); return section; }
  const first = st.lines_offset + 1;
  const last = st.lines_offset + st.lines.length;
  const range = T("statement.lines_range", { total: total.toLocaleString("ja-JP"), from: first, to: last });
  const rows = st.lines.map((line) => el("tr", { "data-line": String(line.line_no), "data-kind": line.kind },
    el("td", { class: "num" }, String(line.line_no)),
    el("td", {}, T("kind." + line.kind)),
    el("td", {}, line.boarded_at ? formatDateTime(line.boarded_at) : "ー"),
    el("td", {}, view.programs.get(line.program_id) || "ー"),
    el("td", {}, view.vehicles.get(line.vehicle_id) || "ー"),
    el("td", { class: "num" }, yen(line.meter_fare)),
    el("td", { class: "num" }, yen(line.rider_share)),
    el("td", { class: "num" }, yen(line.subsidy_amount)),
    el("td", {}, line.note || "")));
  const pager = el("div", { class: "actions pager" },
    el("button", { type: "button", class: "btn secondary", disabled: st.lines_offset === 0 ? true : null,
      onclick: () => turn(Math.max(0, st.lines_offset - PAGE)) }, T("statement.prev", { n: PAGE })),
    el("button", { type: "button", class: "btn secondary", disabled: last >= total ? true : null,
      onclick: () => turn(st.lines_offset + PAGE) }, T("statement.next", { n: PAGE })));
  section.append(el("p", { id: "lines-range", role: "status" }, range),
    tableOf(T("statement.lines") + " " + range, [
      { label: T("line.no"), num: true }, { label: T("line.kind") }, { label: T("line.boarded") },
      { label: T("line.program") }, { label: T("line.vehicle") }, { label: T("line.fare"), num: true },
      { label: T("line.rider_share"), num: true }, { label: T("line.subsidy"), num: true },
      { label: T("line.note") }], rows, { id: "lines-table" }),
    pager);
  return section;
}

async function turn(offset) {
  const answer = await api("GET", "/statements/" + view.id + "?limit=" + PAGE + "&offset=" + offset);
  if (!answer.ok) return;
  view.offset = offset;
  view.statement = answer.body;
  const fresh = linesSection(answer.body);
  document.getElementById("lines").replaceWith(fresh);
  focusHeading(fresh);
}

/* --- the operator's answer and the city's adjustment ------------------------------------------ */

function responseSection(st) {
  if (!("operator_response" in st)) return null; // an API without operator answers
  const section = el("section", { class: "panel", id: "operator-response", "aria-labelledby": "response-heading" },
    el("h2", { id: "response-heading" }, T("response.title")));
  const message = el("div", { id: "response-message", role: "status", "aria-live": "polite" });
  const at = st.operator_response_at ? "(" + formatDateTime(st.operator_response_at) + ")" : "";
  if (st.operator_response === "acknowledged") {
    section.append(el("p", { class: "notice ok", id: "response-state" }, T("response.acknowledged") + at));
  } else if (st.operator_response === "disputed") {
    section.append(el("p", { class: "notice warn", id: "response-state" }, T("response.disputed") + at),
      el("dl", { class: "facts" },
        fact(T("response.reason"), el("span", { id: "dispute-reason-text" }, st.dispute_reason)),
        fact(T("finance.state"), st.dispute_answered ? T("response.answered") : T("response.not_answered"))));
  } else {
    section.append(el("p", { id: "response-state" }, T("response.none")));
  }
  const answerable = st.status !== "draft";
  if (hasRole(["operator_admin"]) && answerable && st.operator_response !== "acknowledged") {
    section.append(operatorButtons(message));
  }
  if (hasRole(["finance"]) && answerable) section.append(adjustmentForm(message));
  section.append(message, el("div", { id: "adjustments" }));
  return section;
}

function operatorButtons(message) {
  const reason = el("textarea", { id: "dispute-reason", name: "reason", rows: "3", maxlength: "500" });
  const form = el("form", { class: "dispute-form", novalidate: true, hidden: true },
    el("label", { for: "dispute-reason" }, T("response.dispute_reason")), reason,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "btn danger" }, T("response.send_dispute"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await respond("dispute", { reason: reason.value.trim() }, message);
  });
  return el("div", {},
    el("div", { class: "actions" },
      el("button", { type: "button", class: "btn go", onclick: () => respond("acknowledge", undefined, message) },
        T("response.acknowledge")),
      el("button", { type: "button", class: "btn secondary", "aria-expanded": "false",
        onclick: (event) => { form.hidden = false; event.currentTarget.setAttribute("aria-expanded", "true"); reason.focus(); } },
      T("response.dispute"))),
    form);
}

async function respond(action, body, message) {
  let answer;
  try {
    answer = await api("POST", "/statements/" + view.id + "/" + action, { body, key: newKey() });
  } catch (error) {
    clear(message).append(el("p", { class: "notice error", role: "alert" }, T("network.offline")));
    return;
  }
  if (!answer.ok) { clear(message).append(refusal(answer.body)); return; }
  await load(T("response.sent"));
}

function adjustmentForm(message) {
  const key = newKey(); // one key per form: a retried submit records the adjustment once
  const amount = el("input", { id: "adjust-amount", name: "amount", type: "number", step: "1", inputmode: "numeric", required: true });
  const note = el("input", { id: "adjust-note", name: "note", maxlength: "200", required: true, autocomplete: "off" });
  const form = el("form", { class: "adjust-form", novalidate: true },
    el("h3", {}, T("adjust.title")),
    el("label", { for: "adjust-amount" }, T("adjust.amount")), amount,
    el("label", { for: "adjust-note" }, T("adjust.note")), note,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "btn" }, T("adjust.submit"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let answer;
    try {
      answer = await api("POST", "/statements/" + view.id + "/adjustments", {
        key, body: { amount: Number(amount.value), note: note.value.trim() },
      });
    } catch (error) {
      clear(message).append(el("p", { class: "notice error", role: "alert" }, T("network.offline")));
      return;
    }
    if (!answer.ok) { clear(message).append(refusal(answer.body)); return; }
    const target = answer.body.target_statement || {};
    await load(T("adjust.done", { number: target.number || "" }));
  });
  return form;
}

async function loadAdjustments() {
  const target = document.getElementById("adjustments");
  if (!target) return;
  const answer = await api("GET", "/statements/" + view.id + "/adjustments");
  if (!answer.ok || !Array.isArray(answer.body)) return;
  const rows = answer.body.map((a) => el("tr", { "data-adjustment": String(a.adjustment_id) },
    el("td", { class: "num" }, yen(a.amount)),
    el("td", {}, a.note || ""),
    el("td", {}, el("a", { href: "/staff/finance/statements/" + a.target_statement_id },
      T("adjust.open_target", { id: a.target_statement_id }))),
    el("td", {}, a.created_at ? formatDateTime(a.created_at) : "")));
  clear(target).append(el("h3", {}, T("adjust.list")), rows.length ? tableOf(T("adjust.list"), [
    { label: T("adjust.amount_short"), num: true }, { label: T("adjust.note") },
    { label: T("adjust.target") }, { label: T("adjust.at") }], rows, { id: "adjustments-table" }) : el("p", {}, T("adjust.none")));
}

/* --- the check against the operator's own ride log -------------------------------------------- */

const RECON_SHOWN = 100; // rows shown per group; the CSV has them all

function reconciliationSection() {
  if (!hasRole(["finance", "finance_approver", "auditor", "operator_admin"])) return null;
  const file = el("input", { id: "recon-file", name: "file", type: "file", accept: ".csv,.txt,text/csv" });
  const message = el("div", { id: "recon-message", role: "status", "aria-live": "polite" });
  const result = el("div", { id: "recon-result" });
  const send = async (asCsv) => {
    clear(message);
    if (!file.files.length) { message.append(el("p", { class: "notice warn", role: "alert" }, T("recon.choose"))); return; }
    const path = "/statements/" + view.id + "/reconciliation";
    if (asCsv) {
      const form = new FormData();
      form.append("file", file.files[0]);
      await downloadFile("POST", path + "?format=csv", "reconciliation-" + view.statement.number + ".csv", message, form);
      return;
    }
    let answer;
    try { answer = await uploadFile(path, file.files[0]); } catch (error) {
      message.append(el("p", { class: "notice error", role: "alert" }, T("network.offline")));
      return;
    }
    if (!answer.ok) { message.append(refusal(answer.body)); return; }
    showReconciliation(result, answer.body);
    focusHeading(result);
  };
  return el("section", { class: "panel", id: "reconciliation", "aria-labelledby": "recon-heading" },
    el("h2", { id: "recon-heading" }, T("recon.title")),
    el("p", { class: "note" }, T("recon.help")),
    el("label", { for: "recon-file" }, T("recon.file")), file,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "btn", id: "recon-submit", onclick: () => send(false) }, T("recon.submit")),
      el("button", { type: "button", class: "btn secondary", onclick: () => send(true) }, T("recon.csv"))),
    message, result);
}

function money(value) {
  return value === null || value === undefined ? "ー" : yen(value);
}

function reconGroup(target, group, items, count, subsidy, headers, cells) {
  // The count comes from the totals: the API may send a shortened list (e.g. missing_truncated).
  const heading = el("h3", { "data-group": group },
    T("recon." + group) + " " + T("recon.count", { n: count }) + " ・ " + T("recon.subsidy_sum", { amount: money(subsidy) }));
  target.append(heading);
  if (!items.length) { target.append(el("p", {}, T("recon.none"))); return; }
  const table = tableOf(T("recon." + group), headers,
    items.slice(0, RECON_SHOWN).map((item) => el("tr", { "data-recon": group }, cells(item))), { id: "recon-" + group });
  const more = count > RECON_SHOWN ? el("p", { class: "note" }, T("recon.more", { n: count - RECON_SHOWN })) : null;
  // Matched rides are the expected case: folded away, so what differs stands out.
  if (group === "matched") target.append(el("details", {}, el("summary", {}, T("recon.show_matched", { n: count })), table, more));
  else target.append(...[table, more].filter((node) => node));
}

function showReconciliation(target, body) {
  const totals = body.totals || {};
  const when = (at) => (at ? formatDateTime(at) : "ー");
  clear(target).append(el("h2", {}, T("recon.result", { number: body.number || "" })),
    el("dl", { class: "facts", id: "recon-totals" },
      fact(T("recon.our_subsidy"), money(totals.our_subsidy)),
      fact(T("recon.their_subsidy"), money(totals.their_subsidy)),
      fact(T("recon.difference"), money(totals.difference)),
      fact(T("recon.differing"), T("recon.count", { n: totals.differing || 0 }))));
  reconGroup(target, "matched", body.matched || [], totals.matched ?? (body.matched || []).length, totals.matched_our_subsidy, [
    { label: T("recon.line"), num: true }, { label: T("line.boarded") }, { label: T("line.vehicle") },
    { label: T("recon.fare_ours_theirs"), num: true }, { label: T("recon.subsidy_ours_theirs"), num: true },
    { label: T("recon.diff"), num: true }], (m) => [
    el("td", { class: "num" }, String(m.line_no)), el("td", {}, when(m.boarded_at)), el("td", {}, m.vehicle || "ー"),
    el("td", { class: "num" }, money(m.our_meter_fare) + " / " + money(m.their_meter_fare)),
    el("td", { class: "num" }, money(m.our_subsidy) + " / " + money(m.their_subsidy)),
    el("td", { class: "num" }, m.subsidy_difference ? yen(m.subsidy_difference) : "ー")]);
  reconGroup(target, "missing", body.missing || [], totals.missing ?? (body.missing || []).length, totals.missing_subsidy, [
    { label: T("recon.line"), num: true }, { label: T("line.boarded") }, { label: T("line.vehicle") },
    { label: T("line.fare"), num: true }, { label: T("line.subsidy"), num: true }], (m) => [
    el("td", { class: "num" }, String(m.line_no)), el("td", {}, when(m.boarded_at)), el("td", {}, m.vehicle || "ー"),
    el("td", { class: "num" }, money(m.our_meter_fare)), el("td", { class: "num" }, money(m.our_subsidy))]);
  reconGroup(target, "extra", body.extra || [], totals.extra ?? (body.extra || []).length, totals.extra_subsidy, [
    { label: T("recon.row"), num: true }, { label: T("line.boarded") }, { label: T("line.vehicle") },
    { label: T("line.fare"), num: true }, { label: T("line.subsidy"), num: true }, { label: T("recon.reason") }], (x) => [
    el("td", { class: "num" }, String(x.row)), el("td", {}, when(x.boarded_at)), el("td", {}, x.vehicle || "ー"),
    el("td", { class: "num" }, money(x.their_meter_fare)), el("td", { class: "num" }, money(x.their_subsidy)),
    el("td", {}, x.reason || "")]);
  const errors = body.errors || [];
  if (errors.length) {
    target.append(el("h3", {}, T("recon.errors") + " " + T("recon.count", { n: errors.length })),
      tableOf(T("recon.errors"), [{ label: T("recon.row"), num: true }, { label: T("recon.reason") }],
        errors.slice(0, RECON_SHOWN).map((e) => el("tr", {}, el("td", { class: "num" }, String(e.row)), el("td", {}, e.reason || "")))));
  }
}

/* --- the page ----------------------------------------------------------------------------------- */

async function names(st) {
  if (!view.programs.size) {
    const programs = await api("GET", "/programs");
    if (programs.ok) for (const p of programs.body) view.programs.set(p.id, CONFIG.lang === "en" ? p.name_en : p.name);
  }
  if (!view.vehicles.size) {
    const vehicles = await api("GET", "/operators/" + st.operator_id + "/vehicles");
    if (vehicles.ok) for (const v of vehicles.body) view.vehicles.set(v.id, v.registration);
  }
}

async function load(done) {
  const target = document.getElementById("statement");
  const answer = await api("GET", "/statements/" + view.id + "?limit=" + PAGE + "&offset=" + view.offset);
  if (!answer.ok) { clear(target).append(refusal(answer.body)); return; }
  const st = answer.body;
  view.statement = st;
  await names(st);
  const month = formatMonth(st.period);
  clear(document.getElementById("back")).append(
    el("a", { class: "back", href: "/staff/finance/" + st.period }, T("statement.back", { month })));
  const heading = el("h1", { id: "statement-heading" }, T("statement.title", { number: st.number }));
  document.title = heading.textContent + " | " + T("app.title");
  clear(target).append(...[
    heading,
    el("p", { class: "lead" }, st.operator_name + " ・ " + month + " ・ ", stageBadge(st.status)),
    stageSteps(st.status),
    done ? el("p", { class: "notice ok", role: "status" }, done) : null,
    el("dl", { class: "facts totals" },
      fact(T("statement.period"), month),
      fact(T("statement.operator"), st.operator_name + "(" + st.operator_code + ")"),
      fact(T("statement.rides"), st.ride_count.toLocaleString("ja-JP")),
      fact(T("statement.fare"), yen(st.fare_total)),
      fact(T("statement.rider_share"), yen(st.rider_share_total)),
      fact(T("statement.subsidy"), yen(st.subsidy_total)),
      fact(T("statement.adjustment"), yen(st.adjustment_total)),
      fact(T("statement.due"), el("strong", { id: "amount-due" }, yen(st.amount_due))),
      fact(T("statement.generated"), formatDateTime(st.generated_at)),
      fact(T("statement.confirmed_at"), when(st.confirmed_at, st.confirmed_by_id, st.confirmed_by_name)),
      fact(T("statement.approved_at"), when(st.approved_at, st.approved_by_id, st.approved_by_name)),
      fact(T("statement.paid_at"), when(st.paid_at, st.paid_by_id, st.paid_by_name))),
    signOff(st),
    files(),
    responseSection(st),
    reconciliationSection(),
    linesSection(st)].filter((node) => node));
  loadAdjustments();
  if (done) focusHeading(target);
}

document.addEventListener("DOMContentLoaded", () => {
  Staff.require();
  view.id = document.getElementById("statement").dataset.statement;
  view.me = ownStaffId();
  load();
});
