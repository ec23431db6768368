/* The application flow at the no-writing counter.

   card on the reader -> the resident's PIN on the pad (user certificate signs the API's challenge)
   -> the resident's password (signature certificate: the four facts find the resident) -> the form
   filled from the card and the registry, eligibility for every program -> one tap grants -> the slip
   prints. The clerk types nothing; only the resident enters the PIN and the password, on the pads.
   Face-recognition cards and forgotten or locked passwords go through the staff-attested path.

   A lost network never loses what the resident already did: the card's signed proof (the enrolment
   request) goes through the page's outbox with its Idempotency-Key, is kept in the tablet's storage
   (across a reload or a restart), and is sent once when the network returns. If the card's challenge
   expired meanwhile, the clerk is told so and the resident redoes the PIN and password. */
"use strict";

/** The application kept while the network is down: which outbox entry, and where it was taken. */
const KEPT_KEY = "voucher.apply.kept";
const Kept = {
  get() {
    try { return JSON.parse(localStorage.getItem(KEPT_KEY) || "null"); } catch (e) { return null; }
  },
  set(value) { localStorage.setItem(KEPT_KEY, JSON.stringify(value)); },
  clear() { localStorage.removeItem(KEPT_KEY); },
};

const flow = {
  stop: null,
  ticket: null,
  replaceExisting: false,
  challenge: null,
  userProof: null,
  enrolment: null,
  resident: null,
  keys: {},
  pollTimer: null,
};

const box = () => document.getElementById("flow");

function showStep(step) {
  const order = ["card", "pin", "password", "resident", "done"];
  const index = order.indexOf(step);
  for (const item of document.querySelectorAll("#steps li")) {
    const at = order.indexOf(item.dataset.step);
    item.classList.toggle("done", index >= 0 && at < index);
    if (at === index) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  }
}

function screen(step, title, ...children) {
  stopPolling();
  showStep(step);
  const container = clear(box());
  container.append(el("h1", {}, title), ...children.filter((child) => child));
  focusHeading(container);
  return container;
}

function stopPolling() {
  if (flow.pollTimer) { clearTimeout(flow.pollTimer); flow.pollTimer = null; }
}

function notice(kind, text, attrs) {
  return el("div", Object.assign({ class: "notice " + kind }, attrs || {}), el("p", {}, text));
}

function restartButton() {
  return el("button", { type: "button", class: "btn secondary", onclick: () => restart() }, T("restart"));
}

function restart() {
  Kept.clear(); // an entry still in the outbox is sent anyway (the card check is the resident's own)
  flow.replaceExisting = false;
  flow.challenge = null;
  flow.userProof = null;
  flow.enrolment = null;
  flow.resident = null;
  renderCard();
}

/* --- 1. the card ------------------------------------------------------------------------------ */

async function renderCard(message) {
  const waiting = el("div", { class: "card-wait" },
    el("p", { class: "big-text" }, T("card.place")),
    el("p", { id: "card-status" }, T("card.waiting")));
  const mock = el("div", { id: "mock-cards" });
  const container = screen("card", T("apply.step.card"),
    message ? notice("ok", message) : null,
    waiting,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "btn secondary", onclick: () => renderAttested("forgotten_password") },
        T("card.no_card_help"))),
    mock);
  const cards = await bridge("GET", "/reader/cards");
  if (cards.ok && cards.body.cards && cards.body.cards.length) {
    const list = el("div", { class: "actions" });
    for (const name of cards.body.cards) {
      list.append(el("button", {
        type: "button", class: "btn secondary",
        onclick: () => bridge("POST", "/reader/insert", { card: name }).then(poll),
      }, name));
    }
    mock.append(el("details", {}, el("summary", {}, T("card.mock")), list));
  }
  const poll = async () => {
    if (!container.isConnected || box() !== container) return;
    const status = await bridge("GET", "/reader");
    const line = document.getElementById("card-status");
    if (!line) return;
    if (!status.ok) {
      line.textContent = troubleText(status.body);
    } else if (status.body.card_present) {
      cardPresent(status.body);
      return;
    } else {
      line.textContent = T("card.waiting");
    }
    flow.pollTimer = setTimeout(poll, 1000);
  };
  poll();
}

function cardPresent(status) {
  if (status.has_user_pin === false) { renderAttested("face_recognition_card"); return; }
  if (status.user_pin_tries_left === 0) { renderLocked(); return; }
  renderPin(status.user_pin_tries_left);
}

/* --- 2. the PIN (the resident) ------------------------------------------------------------------ */

function renderPin(triesLeft, message) {
  const pad = makePad({ kind: "pin", min: 4, max: 4, onSubmit: checkPin });
  screen("pin", T("pin.title"),
    message ? notice("ok", message) : null,
    el("p", { class: "resident-prompt" }, T("pin.prompt")),
    triesLeft !== undefined && triesLeft !== null && triesLeft < 3
      ? notice("warn", T("pin.tries", { n: triesLeft }), { role: "alert" }) : null,
    pad,
    el("div", { class: "actions" }, restartButton()));
}

function renderChecking(step) {
  screen(step, T("checking"), el("p", { role: "status" }, T("checking")));
}

async function checkPin(pin) {
  renderChecking("pin");
  let challenge;
  try {
    challenge = await api("POST", "/card-challenges", { body: { purpose: "enrol" } });
  } catch (error) {
    renderTrouble({ code: "network" }, T("network.no_challenge"));
    return;
  }
  if (!challenge.ok) { renderTrouble(challenge.body); return; }
  const certificate = await bridge("GET", "/card/user-certificate");
  if (!certificate.ok) { cardTrouble(certificate.body); return; }
  const signed = await bridge("POST", "/card/user-signature", { message: challenge.body.message, pin });
  if (!signed.ok) { cardTrouble(signed.body); return; }
  flow.challenge = challenge.body;
  flow.userProof = {
    certificate: certificate.body.certificate,
    chain: certificate.body.chain,
    nonce: challenge.body.nonce,
    signature: signed.body.signature,
  };
  renderPassword();
}

/** What the bridge said about the card, turned into the next screen. */
function cardTrouble(problem) {
  switch (problem.code) {
    case "pin.wrong": renderPin(problem.tries_left, null); return;
    case "pin.locked": renderLocked(); return;
    case "card.no_pin":
    case "card.no_signature_certificate": renderAttested("face_recognition_card"); return;
    case "password.wrong": renderPassword(problem.tries_left); return;
    case "password.locked": renderAttested("password_locked"); return;
    default: renderTrouble(problem);
  }
}

/* --- 3. the signature password (the resident) -------------------------------------------------- */

function renderPassword(triesLeft) {
  const pad = makePad({ kind: "password", min: 6, max: 16, onSubmit: checkPassword });
  screen("password", T("password.title"),
    el("p", { class: "resident-prompt" }, T("password.prompt")),
    triesLeft !== undefined && triesLeft !== null
      ? notice("warn", T("pin.tries", { n: triesLeft }), { role: "alert" }) : null,
    pad,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "btn secondary", onclick: () => renderAttested("forgotten_password") },
        T("password.forgot")),
      restartButton()));
}

async function checkPassword(password) {
  renderChecking("password");
  const certificate = await bridge("POST", "/card/signature-certificate", { password });
  if (!certificate.ok) { cardTrouble(certificate.body); return; }
  const signed = await bridge("POST", "/card/signature", { message: flow.challenge.message, password });
  if (!signed.ok) { cardTrouble(signed.body); return; }
  const key = newKey();
  const id = "enrolment:" + key;
  // Kept before it is sent: a reload or a restart finds it and goes on where it stopped.
  Kept.set({ id, stop: flow.stop, ticket: flow.ticket, replaceExisting: flow.replaceExisting });
  const sent = Outbox.send({
    id,
    key,
    method: "POST",
    path: "/enrolments",
    kind: "enrolment",
    body: {
      card: flow.userProof,
      signature_certificate: certificate.body.certificate,
      signature_chain: certificate.body.chain,
      signature: signed.body.signature,
      replace_existing: flow.replaceExisting,
    },
  });
  const first = await answeredOrOffline(sent.answered);
  if (first.offline) {
    renderKept();
    enrolmentAnswered(await sent.answered, true);
    return;
  }
  enrolmentAnswered(first.answer, false);
}

/** The outbox's answer, or {offline: true} as soon as the outbox finds the network down. */
function answeredOrOffline(answered) {
  return new Promise((resolve) => {
    const onState = (event) => {
      if (!event.detail || !event.detail.offline) return;
      document.removeEventListener("outbox:state", onState);
      resolve({ offline: true });
    };
    document.addEventListener("outbox:state", onState);
    answered.then((answer) => {
      document.removeEventListener("outbox:state", onState);
      resolve({ answer });
    });
  });
}

/** The enrolment's answer, now or after the network came back (`kept`): the form, or what to do. */
async function enrolmentAnswered(answer, kept) {
  const mine = Kept.get();
  if (mine) forgetResult(mine.id);
  Kept.clear();
  const code = answer.body && answer.body.code;
  if (!answer.ok && kept && ["challenge.expired", "challenge.unknown", "challenge.replayed"].includes(code)) {
    renderKeptExpired();
    return;
  }
  if (!answer.ok) { renderTrouble(answer.body); return; }
  flow.enrolment = answer.body;
  await loadResident(answer.body.resident.id);
}

function forgetResult(id) {
  const results = Outbox.results();
  if (!(id in results)) return;
  delete results[id];
  localStorage.setItem(RESULTS_KEY, JSON.stringify(results));
}

/* --- kept while the network is down ---------------------------------------------------------- */

function renderKept() {
  screen("password", T("kept.title"),
    notice("warn", T("kept.enrolment"), { role: "status", "data-kept": "enrolment" }),
    el("p", {}, T("kept.limit")),
    el("div", { class: "actions" }, restartButton()));
}

function renderKeptExpired() {
  screen("pin", T("kept.expired.title"),
    notice("error", T("kept.expired"), { role: "alert", "data-trouble": "kept-expired" }),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "btn big", id: "redo", onclick: () => renderCard() }, T("kept.redo")),
      restartButton()));
}

/** After a reload (or a restart): the application kept in this tablet goes on where it stopped. */
function resumeKept(kept) {
  flow.stop = kept.stop || null;
  flow.ticket = kept.ticket || null;
  flow.replaceExisting = Boolean(kept.replaceExisting);
  const waiting = Outbox.entries().some((entry) => entry.id === kept.id);
  if (waiting) {
    const answered = new Promise((resolve) => Outbox.listeners.set(kept.id, resolve));
    renderKept();
    answered.then((answer) => enrolmentAnswered(answer, true));
    Outbox.flush();
    return true;
  }
  const result = Outbox.results()[kept.id];
  if (result) {
    // Sent from another page after the network came back: show where it got to.
    enrolmentAnswered({ ok: result.status < 400, status: result.status, body: result.body }, true);
    return true;
  }
  Kept.clear();
  return false;
}

/* --- PIN locked: the counter resets it with the resident's new PIN ------------------------------- */

function renderLocked() {
  screen("pin", T("locked.title"),
    notice("error", T("locked.guide"), { role: "alert" }),
    el("div", { class: "actions" },
      el("button", { type: "button", class: "btn big", onclick: () => newPin() }, T("locked.reset")),
      restartButton()));
}

function newPin() {
  const first = makePad({
    kind: "pin", min: 4, max: 4,
    onSubmit: (pin) => {
      const again = makePad({
        kind: "pin", min: 4, max: 4,
        onSubmit: async (repeat) => {
          if (repeat !== pin) {
            screen("pin", T("locked.title"), notice("error", T("locked.mismatch"), { role: "alert" }));
            setTimeout(newPin, 1500);
            return;
          }
          const reset = await bridge("POST", "/card/reset-pin", { new_pin: pin });
          if (!reset.ok) { cardTrouble(reset.body); return; }
          renderPin(3, T("locked.done"));
        },
      });
      screen("pin", T("locked.title"), el("p", { class: "resident-prompt" }, T("locked.again")), again);
    },
  });
  screen("pin", T("locked.title"), el("p", { class: "resident-prompt" }, T("locked.new")), first,
    el("div", { class: "actions" }, restartButton()));
}

/* --- the staff-attested path (face-recognition cards, forgotten or locked passwords) ------------- */

async function renderAttested(reason) {
  const results = el("div", { id: "candidates" });
  const kana = el("input", { id: "kana", name: "kana", autocomplete: "off", lang: "ja" });
  const birth = el("input", { id: "birth", name: "birth", type: "date", min: "1900-01-01" });
  const form = el("form", { class: "panel", novalidate: true },
    el("h2", {}, T("attested.search")),
    el("label", { for: "kana" }, T("attested.kana")), kana,
    el("label", { for: "birth" }, T("attested.birth")), birth,
    el("div", { class: "actions" }, el("button", { type: "submit", class: "btn" }, T("attested.find"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (kana.value.trim()) query.set("kana", kana.value.trim());
    if (birth.value) query.set("birth_date", birth.value);
    const found = await api("GET", "/residents?" + query.toString());
    clear(results);
    if (!found.ok) { results.append(notice("error", troubleText(found.body), { role: "alert" })); return; }
    if (!found.body.length) { results.append(notice("warn", T("attested.none"), { role: "alert" })); return; }
    const list = el("ul", { class: "candidates" });
    for (const person of found.body) {
      list.append(el("li", {},
        el("p", {}, el("strong", {}, person.family_name + " " + person.given_name),
          "(" + person.family_name_kana + " " + person.given_name_kana + ")"),
        el("p", {}, formatDate(person.birth_date) + " ・ " + person.address),
        el("button", {
          type: "button", class: "btn",
          onclick: () => confirmAttested(person, reason),
        }, T("attested.choose") + ":" + person.family_name + " " + person.given_name)));
    }
    results.append(list);
  });
  screen("card", T("attested.title"),
    notice("warn", T("attested." + reason)),
    form, results,
    el("div", { class: "actions" }, restartButton()));
}

async function confirmAttested(person, reason) {
  const container = screen("resident", T("attested.title"),
    el("dl", { class: "facts" },
      el("dt", {}, T("resident.name")), el("dd", {}, person.family_name + " " + person.given_name),
      el("dt", {}, T("resident.birth")), el("dd", {}, formatDate(person.birth_date)),
      el("dt", {}, T("resident.address")), el("dd", {}, person.address)));
  const actions = el("div", { class: "actions" });
  actions.append(el("button", {
    type: "button", class: "btn big go",
    onclick: async () => {
      const certificate = await bridge("GET", "/card/user-certificate");
      if (!certificate.ok) { renderTrouble(certificate.body); return; }
      const enrolled = await api("POST", "/enrolments/attested", {
        key: newKey(),
        body: {
          resident_id: person.id,
          certificate: certificate.body.certificate,
          chain: certificate.body.chain,
          reason,
          replace_existing: flow.replaceExisting,
        },
      });
      if (!enrolled.ok) { renderTrouble(enrolled.body, null, { attested: false }); return; }
      flow.enrolment = enrolled.body;
      await loadResident(person.id);
    },
  }, T("attested.confirm")), restartButton());
  container.append(actions);
}

/* --- 4. the form, filled from the card and the registry; eligibility for every program ---------- */

async function loadResident(residentId) {
  renderChecking("resident");
  let record;
  let decisions;
  for (;;) {
    try {
      [record, decisions] = await Promise.all([
        api("GET", "/residents/" + residentId + "/record?rides=0"),
        api("GET", "/residents/" + residentId + "/eligibility"),
      ]);
      break;
    } catch (error) {
      if (!(error instanceof Offline)) throw error;
      // Only reading here: nothing to keep; go on by itself when the network is back.
      screen("resident", T("resident.title"), notice("warn", T("network.reading"), { role: "status" }));
      await networkBack();
    }
  }
  if (!record.ok) { renderTrouble(record.body); return; }
  if (!decisions.ok) { renderTrouble(decisions.body); return; }
  flow.resident = record.body;
  renderResident(record.body, decisions.body);
}

/** Resolves when the browser says it is online again, or after a short wait, whichever comes first. */
function networkBack() {
  return new Promise((resolve) => {
    const done = () => { window.removeEventListener("online", done); clearTimeout(timer); resolve(); };
    const timer = setTimeout(done, 3000);
    window.addEventListener("online", done);
  });
}

function licenceText(value) {
  const text = T("licence." + value);
  return text.startsWith("licence.") ? value : text;
}

function disabilityText(certificates) {
  if (!certificates || !certificates.length) return T("disability.none");
  return certificates.map((c) => T("disability.grade", { kind: T("disability." + c.kind), grade: c.grade })).join("、");
}

function amountText(entitlement) {
  return T("unit." + entitlement.unit, { n: entitlement.granted.toLocaleString("ja-JP") });
}

function renderResident(record, decisions) {
  const person = record.resident;
  const method = flow.enrolment && flow.enrolment.binding ? flow.enrolment.binding.method : "pin_signature";
  const facts = el("dl", { class: "facts", id: "resident-facts" },
    el("dt", {}, T("resident.name")), el("dd", {}, person.family_name + " " + person.given_name),
    el("dt", {}, T("resident.kana")), el("dd", {}, person.family_name_kana + " " + person.given_name_kana),
    el("dt", {}, T("resident.birth")), el("dd", {}, formatDate(person.birth_date) + "(" + T("resident.age", { n: record.age }) + ")"),
    el("dt", {}, T("resident.sex")), el("dd", {}, T("sex." + person.sex)),
    el("dt", {}, T("resident.address")), el("dd", {}, person.address),
    el("dt", {}, T("resident.district")), el("dd", {}, record.district_name || ""),
    el("dt", {}, T("resident.licence")), el("dd", {}, licenceText(person.car_licence)),
    el("dt", {}, T("resident.disability")), el("dd", {}, disabilityText(person.disability_certificates)),
    el("dt", {}, T("resident.identity")), el("dd", {}, T("identity." + method)),
    el("dt", {}, T("resident.place")),
    el("dd", {}, flow.stop ? T("channel.mobile_office") + "(" + flow.stop.place + ")" : T("channel.counter")));
  const known = record.entitlements.length > 0 || record.applications.length > 0;
  const programs = el("div", { class: "programs" });
  for (const decision of decisions) {
    const entitled = record.entitlements.find((e) => e.program_id === decision.program_id);
    const state = entitled ? "entitled" : decision.eligible ? "eligible" : "ineligible";
    const verdict = entitled ? T("eligibility.entitled") : decision.eligible ? T("eligibility.yes") : T("eligibility.no");
    const reasons = el("ul", { class: "reasons" });
    for (const reason of decision.reasons) {
      reasons.append(el("li", { class: reason.met ? "met" : "unmet" },
        el("span", { class: "visually-hidden" }, (reason.met ? T("eligibility.met") : T("eligibility.unmet")) + ": "),
        CONFIG.lang === "en" ? reason.en : reason.ja));
    }
    const card = el("section", { class: "program " + state, "data-program": decision.program_code, "aria-label": decision.program_name },
      el("h3", {}, decision.program_name),
      el("p", { class: "verdict" }, verdict),
      entitled ? el("p", {}, amountText(entitled) + " ・ " + T("residents.balance") + " " + entitled.balance) : null,
      reasons);
    if (decision.eligible && !entitled) {
      card.append(el("button", {
        type: "button", class: "btn big go", "data-grant": decision.program_code,
        onclick: (event) => grant(decision, event.currentTarget),
      }, T("grant.button", { name: decision.program_name })));
    }
    programs.append(card);
  }
  screen("resident", T("resident.title"),
    known ? notice("warn", T("already.enrolled"), { role: "status" }) : null,
    facts,
    el("h2", {}, T("eligibility.title")),
    el("div", { id: "grant-status", role: "alert" }),
    programs,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "btn secondary", id: "next-person", onclick: () => nextPerson() }, T("done.next"))));
}

/* --- 5. one tap grants; the slip prints ------------------------------------------------------- */

async function grant(decision, button) {
  const person = flow.resident.resident;
  for (const other of document.querySelectorAll("[data-grant]")) other.disabled = true;
  const status = document.getElementById("grant-status");
  status.textContent = T("grant.sending");
  const key = flow.keys[decision.program_id] || (flow.keys[decision.program_id] = newKey());
  const sent = Outbox.send({
    id: "application:" + key,
    key,
    method: "POST",
    path: "/applications",
    kind: "application",
    body: {
      resident_id: person.id,
      program_id: decision.program_id,
      channel: flow.stop ? "mobile_office" : "counter",
      mobile_stop: flow.stop ? flow.stop.code : null,
    },
  });
  const showPending = () => clear(status).append(notice("warn", T("grant.pending")));
  const pending = setTimeout(showPending, 1200);
  const first = await answeredOrOffline(sent.answered);
  if (first.offline) showPending();
  const answer = first.offline ? await sent.answered : first.answer;
  clearTimeout(pending);
  if (answer.status === 409 && answer.body && answer.body.code === "application.already_entitled") {
    await loadResident(person.id);
    return;
  }
  if (!answer.ok) {
    button.disabled = false;
    renderTrouble(answer.body);
    return;
  }
  renderDone(decision, answer.body);
}

function renderDone(decision, result) {
  const entitlement = result.entitlement;
  const printStatus = el("p", { id: "print-status", role: "status" });
  const approved = result.application.status === "approved" && entitlement;
  screen("done", approved ? T("done.title") : T("done.rejected"),
    approved ? notice("ok", T("done.summary", {
      name: flow.resident.resident.family_name + " " + flow.resident.resident.given_name,
      program: decision.program_name,
      amount: amountText(entitlement),
    })) : null,
    approved ? el("p", {}, T("done.valid", { from: formatDate(entitlement.valid_from), to: formatDate(entitlement.valid_to) })) : null,
    printStatus,
    el("div", { class: "actions" },
      el("button", { type: "button", class: "btn secondary", onclick: () => printSlip(result.application.id, printStatus) },
        T("done.print")),
      el("button", { type: "button", class: "btn big", id: "next-person", onclick: () => nextPerson() }, T("done.next"))));
  box().dataset.applicationId = String(result.application.id);
  printSlip(result.application.id, printStatus);
}

/** Finish the number (if any) and go back for the next person. */
function nextPerson() {
  if (flow.ticket) {
    const residentId = flow.resident ? flow.resident.resident.id : null;
    Outbox.send({
      id: "ticket:" + flow.ticket.id,
      key: "ticket-" + flow.ticket.id + "-" + newKey(),
      method: "POST",
      path: "/mobile-office/tickets/" + flow.ticket.id + "/finish",
      body: { outcome: residentId ? "done" : "skipped", resident_id: residentId },
    });
  }
  const back = flow.stop ? "/staff/queue" : "/staff/apply";
  setTimeout(() => location.assign(back), 50);
}

/* --- troubles: plain words and what to do next ------------------------------------------------ */

function renderTrouble(problem, text, options) {
  const opts = options || {};
  const code = problem && problem.code;
  const actions = el("div", { class: "actions" });
  if (code === "card.already_bound") {
    actions.append(el("button", {
      type: "button", class: "btn big", id: "rebind",
      onclick: () => { flow.replaceExisting = true; renderPin(null); },
    }, T("trouble.rebind")));
  }
  if (code === "challenge.expired" || code === "challenge.replayed" || code === "signature.invalid") {
    actions.append(el("button", { type: "button", class: "btn big", onclick: () => renderPin(null) }, T("apply.step.pin")));
  }
  if (opts.attested !== false && ["enrolment.facts_mismatch", "card.error"].includes(code)) {
    actions.append(el("button", { type: "button", class: "btn secondary", onclick: () => renderAttested("forgotten_password") },
      T("trouble.attested")));
  }
  actions.append(restartButton());
  screen("card", T("trouble.title"),
    el("div", { class: "notice error", role: "alert", "data-trouble": code || "" }, el("p", {}, text || troubleText(problem))),
    actions);
}

/* --- start ------------------------------------------------------------------------------------ */

function showContext() {
  const where = flow.stop ? T("channel.mobile_office") + "(" + flow.stop.place + ")" : T("channel.counter");
  document.getElementById("apply-context").textContent =
    where + (flow.ticket ? " ・ " + T("apply.ticket", { n: flow.ticket.number }) : "");
}

document.addEventListener("DOMContentLoaded", async () => {
  Staff.require();
  const kept = Kept.get();
  if (kept && resumeKept(kept)) { showContext(); return; }
  const params = new URLSearchParams(location.search);
  if (params.get("stop")) {
    const stop = await api("GET", "/mobile-office/stops/" + encodeURIComponent(params.get("stop")));
    if (stop.ok) flow.stop = stop.body;
  }
  if (params.get("ticket")) flow.ticket = { id: params.get("ticket"), number: params.get("number") };
  showContext();
  renderCard();
});
