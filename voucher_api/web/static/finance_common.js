/* Shared by the finance pages: months in the Japanese era, statement stages, files saved with the token. */
"use strict";

const STAGES = ["draft", "confirmed", "approved", "paid"];
const RUN_READERS = ["finance", "finance_approver", "auditor"];

/** "2026-09" → 令和8年9月 (Japanese) or September 2026 (English). */
function formatMonth(period) {
  const [year, month] = period.split("-").map(Number);
  const middle = new Date(Date.UTC(year, month - 1, 15, 3));
  const ja = CONFIG.lang !== "en";
  return new Intl.DateTimeFormat(ja ? "ja-JP-u-ca-japanese" : "en-GB", {
    timeZone: JAPAN, era: ja ? "long" : undefined, year: "numeric", month: "long",
  }).format(middle);
}

/** "2026-09": `back` months before this month (1: last month), by the city's clock (Japan time). */
function monthsAgo(back) {
  const [year, month] = (CONFIG.today || japanToday()).split("-").map(Number);
  const index = year * 12 + (month - 1) - back;
  return Math.floor(index / 12) + "-" + String((index % 12) + 1).padStart(2, "0");
}

function stageBadge(status) {
  return el("span", { class: "badge stage-" + status }, T("st." + status));
}

/** A notice for an API refusal, in plain words (never the code). */
function refusal(body) {
  return el("p", { class: "notice error", role: "alert" }, troubleText(body));
}

function tableOf(caption, headers, rows, options) {
  const opts = options || {};
  return el("div", { class: "table-wrap", role: "region", "aria-label": caption, tabindex: "0" },
    el("table", { id: opts.id || null },
      el("caption", { class: opts.showCaption ? null : "visually-hidden" }, caption),
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col", class: h.num ? "num" : null }, h.label)))),
      el("tbody", {}, rows),
      opts.foot ? el("tfoot", {}, opts.foot) : null));
}

/**
 * Fetch a file from the API with the staff token and save it under the name the API gives
 * (Content-Disposition). Reports what happened in `statusNode`. Returns true when saved.
 */
async function downloadFile(method, path, fallbackName, statusNode, body) {
  const headers = { "Accept-Language": CONFIG.lang };
  const staff = Staff.get();
  if (staff && staff.token) headers.Authorization = "Bearer " + staff.token;
  let response;
  try {
    response = await fetch(CONFIG.api + path, { method, headers, body, cache: "no-store" });
  } catch (error) {
    if (statusNode) clear(statusNode).append(el("p", { class: "notice error" }, T("network.offline")));
    return false;
  }
  if (!response.ok) {
    const problem = await response.json().catch(() => ({}));
    let reason = troubleText(problem);
    const detail = problem.errors && (problem.errors.payment_file || problem.errors.file);
    if (detail) reason = [].concat(detail).join(" ");
    if (statusNode) clear(statusNode).append(el("p", { class: "notice error", role: "alert" }, T("download.failed", { reason })));
    return false;
  }
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const name = match ? match[1] : fallbackName;
  const url = URL.createObjectURL(await response.blob());
  const link = el("a", { href: url, download: name, class: "visually-hidden", tabindex: "-1" }, name);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  if (statusNode) clear(statusNode).append(el("p", { class: "notice ok" }, T("download.saved", { name })));
  return true;
}

/** Send a file (multipart, field `file`) to the API with the staff token; same answer shape as api(). */
async function uploadFile(path, file, key) {
  const headers = { "Accept-Language": CONFIG.lang, Accept: "application/json" };
  const staff = Staff.get();
  if (staff && staff.token) headers.Authorization = "Bearer " + staff.token;
  if (key) headers["Idempotency-Key"] = key;
  const form = new FormData();
  form.append("file", file);
  let response;
  try {
    response = await fetch(CONFIG.api + path, { method: "POST", headers, body: form, cache: "no-store" });
  } catch (error) {
    throw new Offline(String(error));
  }
  const text = await response.text();
  let parsed = null;
  if (text) {
    try { parsed = JSON.parse(text); } catch (e) { parsed = { title: text }; }
  }
  return { ok: response.ok, status: response.status, body: parsed };
}

/** The staff member's own id from the token (only to say "you" on the page; the API decides). */
function ownStaffId() {
  const staff = Staff.get();
  try {
    const payload = JSON.parse(atob(staff.token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    const [kind, id] = String(payload.sub).split(":");
    return kind === "staff" ? Number(id) : null;
  } catch (e) {
    return null;
  }
}
