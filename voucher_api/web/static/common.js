/* Shared by every staff page: words, the staff token, the API, the card bridge, the outbox. */
"use strict";

const CONFIG = JSON.parse(document.getElementById("page-config").textContent);
const TOKEN_KEY = "voucher.staff";
const OUTBOX_KEY = "voucher.outbox";
const RESULTS_KEY = "voucher.outbox.results";

/* --- words --------------------------------------------------------------------------------- */

function T(key, params) {
  let text = CONFIG.texts[key];
  if (text === undefined) return key;
  if (params) {
    for (const [name, value] of Object.entries(params)) text = text.split("{" + name + "}").join(String(value));
  }
  return text;
}

/** Plain words for a problem from the API or the bridge: never the code itself. */
function troubleText(problem) {
  const code = problem && problem.code;
  if (code && CONFIG.texts["trouble." + code]) return T("trouble." + code);
  if (problem && problem.title) return problem.title;
  return T("trouble.generic");
}

/* --- small DOM helpers --------------------------------------------------------------------- */

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** Put keyboard focus on a heading after the screen changes, so screen readers announce it. */
function focusHeading(container) {
  const heading = container.querySelector("h1, h2");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

const JAPAN = "Asia/Tokyo";

function formatDate(value) {
  if (!value) return "";
  const date = typeof value === "string" && value.length === 10 ? new Date(value + "T00:00:00+09:00") : new Date(value);
  return new Intl.DateTimeFormat(CONFIG.lang === "en" ? "en-GB" : "ja-JP-u-ca-japanese", {
    timeZone: JAPAN, era: CONFIG.lang === "en" ? undefined : "long", year: "numeric", month: "long", day: "numeric",
  }).format(date);
}

function formatTime(value) {
  return new Intl.DateTimeFormat(CONFIG.lang === "en" ? "en-GB" : "ja-JP", {
    timeZone: JAPAN, hour: "2-digit", minute: "2-digit",
  }).format(new Date(value));
}

function formatDateTime(value) {
  return new Intl.DateTimeFormat(CONFIG.lang === "en" ? "en-GB" : "ja-JP", {
    timeZone: JAPAN, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  }).format(new Date(value));
}

function japanToday() {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: JAPAN, year: "numeric", month: "2-digit", day: "2-digit" })
    .format(new Date());
  return parts; // YYYY-MM-DD
}

function yen(amount) {
  return amount === null || amount === undefined ? "" : amount.toLocaleString("ja-JP") + (CONFIG.lang === "en" ? " yen" : "円");
}

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/* --- the staff member ---------------------------------------------------------------------- */

const Staff = {
  get() {
    try { return JSON.parse(sessionStorage.getItem(TOKEN_KEY) || "null"); } catch (e) { return null; }
  },
  set(value) { sessionStorage.setItem(TOKEN_KEY, JSON.stringify(value)); },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
  /** Send the person to sign-in when there is no token; come back here afterwards. */
  require(expired) {
    const staff = Staff.get();
    if (!staff || !staff.token || Date.now() > staff.expiresAt) {
      Staff.clear();
      const next = location.pathname + location.search;
      location.replace(CONFIG.signIn + "?next=" + encodeURIComponent(next) + (staff || expired ? "&expired=1" : ""));
      throw new Error("sign-in required");
    }
    return staff;
  },
};

/** Whether the signed-in staff member holds one of `roles` (admin holds them all). */
function hasRole(roles) {
  const staff = Staff.get();
  const held = (staff && staff.roles) || [];
  return held.includes("admin") || roles.some((role) => held.includes(role));
}

/* --- the API ------------------------------------------------------------------------------- */

class Offline extends Error {}

/** Call the JSON API; returns {ok, status, body, headers}. Throws Offline when the network is down. */
async function api(method, path, options) {
  const opts = options || {};
  const headers = { "Accept-Language": CONFIG.lang, Accept: "application/json" };
  const staff = Staff.get();
  if (staff && staff.token && opts.auth !== false) headers.Authorization = "Bearer " + staff.token;
  if (opts.key) headers["Idempotency-Key"] = opts.key;
  let body;
  if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  let response;
  try {
    response = await fetch(CONFIG.api + path, { method, headers, body, cache: "no-store" });
  } catch (error) {
    throw new Offline(String(error));
  }
  if (opts.raw) return response;
  let parsed = null;
  const text = await response.text();
  if (text) {
    try { parsed = JSON.parse(text); } catch (e) { parsed = { title: text }; }
  }
  if (response.status === 401 && opts.auth !== false && parsed && String(parsed.code).startsWith("auth.")) {
    Staff.clear();
    Staff.require(true);
  }
  return { ok: response.ok, status: response.status, body: parsed, headers: response.headers };
}

/* --- the outbox: writes that must survive a lost network, sent once (Idempotency-Key) -------- */

const Outbox = {
  listeners: new Map(),
  flushing: false,
  entries() {
    try { return JSON.parse(localStorage.getItem(OUTBOX_KEY) || "[]"); } catch (e) { return []; }
  },
  save(entries) { localStorage.setItem(OUTBOX_KEY, JSON.stringify(entries)); Outbox.render(); },
  results() {
    try { return JSON.parse(localStorage.getItem(RESULTS_KEY) || "{}"); } catch (e) { return {}; }
  },
  /**
   * Queue a write and try to send it now. Resolves with the API's answer whenever it arrives (this page
   * may be gone by then: the answer is kept under the entry's id for whoever asks later).
   */
  send(entry) {
    const item = Object.assign({ id: newKey(), key: newKey(), queuedAt: Date.now() }, entry);
    const entries = Outbox.entries();
    if (!entries.some((e) => e.id === item.id)) entries.push(item);
    Outbox.save(entries);
    const answered = new Promise((resolve) => Outbox.listeners.set(item.id, resolve));
    Outbox.flush();
    return { id: item.id, answered };
  },
  async flush() {
    if (Outbox.flushing || !Staff.get()) return;
    Outbox.flushing = true;
    try {
      for (;;) {
        const [next] = Outbox.entries();
        if (!next) break;
        let answer;
        try {
          answer = await api(next.method, next.path, { body: next.body, key: next.key });
        } catch (error) {
          if (error instanceof Offline) { Outbox.render(true); return; }
          throw error;
        }
        // Signed out: keep it for after sign-in. Other 401s (an expired card challenge) are answers.
        if (answer.status === 401 && answer.body && String(answer.body.code).startsWith("auth.")) return;
        Outbox.save(Outbox.entries().filter((e) => e.id !== next.id));
        const results = Outbox.results();
        results[next.id] = { status: answer.status, body: answer.body };
        localStorage.setItem(RESULTS_KEY, JSON.stringify(results));
        const listener = Outbox.listeners.get(next.id);
        if (listener) { Outbox.listeners.delete(next.id); listener(answer); }
      }
      Outbox.render();
    } finally {
      Outbox.flushing = false;
    }
  },
  render(offline) {
    const count = Outbox.entries().length;
    // Pages that wait on an entry learn at once that the network is down (outbox:state).
    document.dispatchEvent(new CustomEvent("outbox:state", { detail: { offline: Boolean(offline), count } }));
    const box = document.getElementById("outbox");
    if (!box) return;
    box.textContent = count ? T("outbox.pending", { n: count }) : "";
    box.classList.toggle("offline", Boolean(offline) || count > 0);
  },
};

window.addEventListener("online", () => Outbox.flush());
setInterval(() => { if (Outbox.entries().length) Outbox.flush(); }, 2000);

/* --- the card, through the counter PC's reader bridge -------------------------------------- */

/** Call the bridge; a bridge that cannot be reached reads as reader.unavailable. */
async function bridge(method, path, body) {
  const init = { method, headers: { "Accept-Language": CONFIG.lang }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  try {
    const response = await fetch(CONFIG.bridge + path, init);
    const parsed = await response.json().catch(() => ({}));
    return { ok: response.ok, status: response.status, body: parsed };
  } catch (error) {
    return { ok: false, status: 0, body: { code: "reader.unavailable" } };
  }
}

/* --- the hand-over slip ------------------------------------------------------------------------ */

/** Fetch the slip PDF with the staff token and send it to the printer (a hidden frame's print). */
async function printSlip(applicationId, statusNode) {
  const response = await api("GET", "/applications/" + applicationId + "/slip.pdf", { raw: true });
  if (!response.ok) return false;
  const url = URL.createObjectURL(await response.blob());
  let frame = document.getElementById("slip-frame");
  if (!frame) {
    frame = el("iframe", { id: "slip-frame", class: "slip-frame", title: T("done.printing"), tabindex: "-1", "aria-hidden": "true" });
    document.body.append(frame);
  }
  frame.onload = () => {
    // Under automation there is no printer to choose, and headless Chromium's print dialog ends the tab.
    if (navigator.webdriver) { frame.dataset.printed = "skipped"; return; }
    try { frame.contentWindow.focus(); frame.contentWindow.print(); } catch (e) { /* the viewer prints by itself */ }
  };
  frame.src = url;
  frame.dataset.applicationId = String(applicationId);
  if (statusNode) statusNode.textContent = T("done.printing");
  return true;
}

/* --- the page frame ---------------------------------------------------------------------------- */

document.addEventListener("DOMContentLoaded", () => {
  const staff = Staff.get();
  const name = document.getElementById("staff-name");
  if (name && staff) name.textContent = staff.name;
  // Links for some roles only (finance pages): shown to staff who hold one of them.
  for (const item of document.querySelectorAll("[data-roles]")) {
    item.hidden = !hasRole(item.dataset.roles.split(" "));
  }
  const signOut = document.getElementById("sign-out");
  if (signOut) {
    signOut.addEventListener("click", () => { Staff.clear(); location.assign(CONFIG.signIn); });
  }
  Outbox.render();
  if (staff) Outbox.flush();
});
