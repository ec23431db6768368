/* Resident look-up for staff: entitlements and balances, rides, card bindings; suspend or end an
   entitlement with a reason (the API audits every change). */
"use strict";

const REASONS = ["moved_out", "deceased", "request", "hospital", "misuse"];

function table(caption, headers, rows) {
  if (!rows.length) return el("p", {}, T("residents.none"));
  return el("div", { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" },
    el("table", {},
      el("caption", { class: "visually-hidden" }, caption),
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", class: h.num ? "num" : null }, h.label)))),
      el("tbody", {}, rows)));
}

async function search(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const query = new URLSearchParams();
  if (form.kana.value.trim()) query.set("kana", form.kana.value.trim());
  if (form.birth.value) query.set("birth_date", form.birth.value);
  const results = clear(document.getElementById("results"));
  const found = await api("GET", "/residents?" + query.toString());
  if (!found.ok) { results.append(el("p", { class: "notice error", role: "alert" }, troubleText(found.body))); return; }
  if (!found.body.length) { results.append(el("p", { class: "notice warn", role: "alert" }, T("attested.none"))); return; }
  const list = el("ul", { class: "candidates" });
  for (const person of found.body) {
    list.append(el("li", {},
      el("p", {}, el("strong", {}, person.family_name + " " + person.given_name),
        "(" + person.family_name_kana + " " + person.given_name_kana + ")"),
      el("p", {}, formatDate(person.birth_date) + " ・ " + person.address),
      el("button", { type: "button", class: "btn", onclick: () => show(person.id) },
        T("attested.choose") + ":" + person.family_name + " " + person.given_name)));
  }
  results.append(list);
}

function reasonChooser(entitlement, status, done) {
  const name = "reason-" + entitlement.id;
  const other = el("input", { id: name + "-other", name: name + "-other", autocomplete: "off" });
  const choices = el("div", { class: "choices" });
  REASONS.forEach((reason, index) => {
    const id = name + "-" + reason;
    choices.append(el("label", { for: id },
      el("input", { type: "radio", id, name, value: T("reason." + reason), checked: index === 0 }),
      T("reason." + reason)));
  });
  const message = el("div", { role: "alert" });
  const form = el("form", { class: "panel", novalidate: true },
    el("fieldset", {}, el("legend", {}, T("residents.reason")), choices),
    el("label", { for: other.id }, T("residents.reason_other")), other,
    message,
    el("div", { class: "actions" },
      el("button", { type: "submit", class: "btn " + (status === "active" ? "go" : "danger") }, T("residents.confirm")),
      el("button", { type: "button", class: "btn secondary", onclick: () => form.remove() }, T("cancel"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const picked = form.querySelector("input[type=radio]:checked");
    const reason = other.value.trim() || (picked ? picked.value : "");
    const answer = await api("POST", "/entitlements/" + entitlement.id + "/status", {
      key: newKey(), body: { status, reason },
    });
    if (!answer.ok) { clear(message).append(el("p", { class: "notice error" }, troubleText(answer.body))); return; }
    done();
  });
  return form;
}

async function show(residentId, changed) {
  const target = clear(document.getElementById("record"));
  const answer = await api("GET", "/residents/" + residentId + "/record");
  if (!answer.ok) { target.append(el("p", { class: "notice error", role: "alert" }, troubleText(answer.body))); return; }
  const record = answer.body;
  const person = record.resident;
  history.replaceState(null, "", "?id=" + residentId);
  const heading = el("h2", { id: "record-heading" }, person.family_name + " " + person.given_name +
    "(" + person.family_name_kana + " " + person.given_name_kana + ")");
  const facts = el("dl", { class: "facts" },
    el("dt", {}, T("resident.birth")), el("dd", {}, formatDate(person.birth_date) + "(" + T("resident.age", { n: record.age }) + ")"),
    el("dt", {}, T("resident.address")), el("dd", {}, person.address),
    el("dt", {}, T("resident.district")), el("dd", {}, record.district_name || ""));
  const entitlementRows = record.entitlements.map((e) => {
    const actions = el("td", {});
    const row = el("tr", { "data-entitlement": String(e.id) },
      el("td", {}, e.program_name),
      el("td", { class: "num" }, T("unit." + e.unit, { n: e.granted.toLocaleString("ja-JP") })),
      el("td", { class: "num" }, e.balance.toLocaleString("ja-JP")),
      el("td", {}, T("status." + e.status) + (e.status_reason ? "(" + e.status_reason + ")" : "")),
      el("td", {}, formatDate(e.valid_from) + "〜" + formatDate(e.valid_to)),
      actions);
    const offer = (status, label, kind) => actions.append(el("button", {
      type: "button", class: "btn " + kind,
      onclick: () => {
        const existing = document.getElementById("reason-form");
        if (existing) existing.remove();
        const form = reasonChooser(e, status, () => show(residentId, true));
        form.id = "reason-form";
        row.after(el("tr", {}, el("td", { colspan: "6" }, form)));
        form.querySelector("input").focus();
      },
    }, label + "(" + e.program_name + ")"));
    if (e.status === "active") { offer("suspended", T("residents.suspend"), "secondary"); offer("ended", T("residents.end"), "danger"); }
    if (e.status === "suspended") { offer("active", T("residents.resume"), "go"); offer("ended", T("residents.end"), "danger"); }
    return row;
  });
  const rideRows = record.rides.map((r) => el("tr", {},
    el("td", {}, formatDateTime(r.boarded_at)),
    el("td", {}, r.program_name),
    el("td", {}, r.operator_name),
    el("td", {}, T("status." + r.status)),
    el("td", { class: "num" }, yen(r.meter_fare)),
    el("td", { class: "num" }, yen(r.subsidy_amount)),
    el("td", { class: "num" }, yen(r.rider_share))));
  const bindingRows = record.bindings.map((b) => el("tr", {},
    el("td", {}, b.cert_serial),
    el("td", {}, T("identity." + b.method)),
    el("td", {}, T("status." + b.status)),
    el("td", {}, formatDate(b.bound_at))));
  const applicationRows = record.applications.map((a) => el("tr", {},
    el("td", {}, formatDate(a.decided_at)),
    el("td", {}, a.program_name),
    el("td", {}, T("channel." + a.channel)),
    el("td", {}, T("status." + a.status)),
    el("td", {}, el("button", { type: "button", class: "btn secondary", onclick: () => printSlip(a.id) },
      T("residents.slip") + "(" + a.program_name + ")"))));
  target.append(...[heading,
    changed ? el("p", { class: "notice ok", role: "status" }, T("residents.changed")) : null,
    facts,
    el("h3", {}, T("residents.entitlements")),
    table(T("residents.entitlements"), [
      { label: T("residents.program") }, { label: T("residents.granted"), num: true },
      { label: T("residents.balance"), num: true }, { label: T("residents.status") },
      { label: T("residents.valid") }, { label: T("residents.actions") }], entitlementRows),
    el("h3", {}, T("residents.rides")),
    table(T("residents.rides"), [
      { label: T("residents.boarded") }, { label: T("residents.program") }, { label: T("residents.operator") },
      { label: T("residents.status") }, { label: T("residents.fare"), num: true },
      { label: T("residents.subsidy"), num: true }, { label: T("residents.paid"), num: true }], rideRows),
    el("h3", {}, T("residents.bindings")),
    table(T("residents.bindings"), [
      { label: T("residents.card_serial") }, { label: T("residents.method") },
      { label: T("residents.status") }, { label: T("residents.bound_at") }], bindingRows),
    el("h3", {}, T("residents.applications")),
    table(T("residents.applications"), [
      { label: T("residents.decided") }, { label: T("residents.program") }, { label: T("resident.place") },
      { label: T("residents.status") }, { label: T("residents.actions") }], applicationRows)].filter((n) => n));
  heading.setAttribute("tabindex", "-1");
  heading.focus();
}

document.addEventListener("DOMContentLoaded", () => {
  Staff.require();
  document.getElementById("search").addEventListener("submit", search);
  const id = new URLSearchParams(location.search).get("id");
  if (id) show(id);
});
