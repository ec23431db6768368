// The kiosk's screens. Plain script, no library: everything is served by the terminal itself.
"use strict";

(() => {
  const TEXTS = JSON.parse(document.getElementById("texts").textContent);
  let lang = localStorage.getItem("kiosk-lang") || document.documentElement.lang || "ja";
  let state = null;
  let screen = null;
  let busy = false;
  let waitForRemoval = false;
  let pin = "";
  let fare = "";
  let fareTarget = null;
  let driverCode = "";
  let voidPick = null;

  const $ = (id) => document.getElementById(id);

  function t(key, params) {
    let value = (TEXTS[lang] && TEXTS[lang][key]) || key;
    for (const [name, v] of Object.entries(params || {})) value = value.replaceAll(`{${name}}`, String(v));
    return value;
  }

  function applyTexts() {
    document.documentElement.lang = lang;
    document.title = t("title");
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  }

  async function api(path, body) {
    const options = { method: body === undefined ? "GET" : "POST", headers: { "X-Kiosk-Lang": lang } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    return response.json();
  }

  function show(name) {
    for (const section of document.querySelectorAll(".screen")) section.hidden = section.id !== `screen-${name}`;
    screen = name;
    document.body.dataset.screen = name;
  }

  function yen(amount) {
    return lang === "en" ? `¥${amount.toLocaleString("en-US")}` : `${amount.toLocaleString("ja-JP")}円`;
  }

  function withName(name) {
    const suffix = t("name_suffix");
    return suffix ? `${name} ${suffix}` : name;
  }

  function chip(el, confirmed) {
    el.textContent = confirmed ? t("chip_confirmed") : t("chip_pending");
    el.className = confirmed ? "chip confirmed" : "chip pending";
  }

  // --- the bar and the state -------------------------------------------------------------------------

  function renderBar() {
    const net = $("net");
    const online = state ? state.online : true;
    net.textContent = online ? t("online") : t("offline");
    net.className = online ? "net online" : "net offline";
    $("driver").textContent = state && state.shift ? `${t("driver")}: ${state.shift.driver_name}` : "";
    const pending = state && state.enrolled ? state.pending : 0;
    $("pending").hidden = !pending;
    $("pending").textContent = t("pending_count", { n: pending });
    const attention = state && state.attention ? state.attention.length : 0;
    $("attention").hidden = !attention;
    $("attention").textContent = t("attention_count", { n: attention });
    $("clock").textContent = state && state.now ? state.now : "";
  }

  async function refresh() {
    try {
      state = await api("/api/state");
    } catch (error) {
      return;
    }
    renderBar();
    if (!state.enrolled) {
      if (screen !== "setup") show("setup");
      return;
    }
    if (!state.shift) {
      if (!["signin", "bye"].includes(screen)) openSignin();
      return;
    }
    if (screen === null || screen === "setup" || screen === "signin") show("home");
    if (screen === "home") renderHome();
    if (screen === "sync") renderSync();
  }

  // --- set-up and shifts -----------------------------------------------------------------------------

  $("setup-go").addEventListener("click", async () => {
    const result = await api("/api/enrol", { code: $("setup-code").value });
    $("setup-message").textContent = result.refusal ? result.refusal.message : result.message;
    if (!result.refusal) await refresh();
  });

  const KEYBOARD = ["1234567890", "QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM"];

  function buildKeyboard() {
    const board = $("signin-keys");
    board.replaceChildren();
    for (const row of KEYBOARD) {
      const line = document.createElement("div");
      line.className = "row";
      for (const key of row) line.append(padKey(key, key, () => typeDriver(key)));
      board.append(line);
    }
    const last = document.createElement("div");
    last.className = "row";
    last.append(padKey("delete", t("delete"), () => typeDriver(null), "wide"));
    last.append(padKey("ok", t("signin_button"), () => startShift(driverCode), "wide primary"));
    board.append(last);
  }

  function padKey(key, label, action, extra) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = `key ${extra || ""}`.trim();
    button.dataset.padKey = key;
    button.textContent = label;
    button.addEventListener("click", action);
    return button;
  }

  function typeDriver(key) {
    driverCode = key === null ? driverCode.slice(0, -1) : (driverCode + key).slice(0, 20);
    $("signin-code").textContent = driverCode;
  }

  function openSignin() {
    driverCode = "";
    $("signin-code").textContent = "";
    $("signin-message").textContent = "";
    buildKeyboard();
    const again = $("signin-again");
    again.hidden = !(state && state.last_driver);
    if (state && state.last_driver) again.textContent = t("signin_again", { name: state.last_driver });
    show("signin");
  }

  $("signin-again").addEventListener("click", () => startShift(state.last_driver));

  async function startShift(code) {
    if (!code) return;
    const result = await api("/api/shift/start", { driver_code: code });
    if (result.refusal) {
      $("signin-message").textContent = result.refusal.message;
      return;
    }
    show("home");
    await refresh();
  }

  $("signout-open").addEventListener("click", () => {
    const pending = state ? state.pending : 0;
    $("signout-pending").textContent = pending ? t("signout_pending", { n: pending }) : "";
    show("signout");
  });
  $("signout-back").addEventListener("click", () => show("home"));
  $("signout-go").addEventListener("click", async () => {
    const result = await api("/api/shift/end", {});
    $("bye-summary").textContent = result.summary || "";
    $("bye-pending").textContent = result.pending || "";
    show("bye");
  });
  $("bye-ok").addEventListener("click", async () => {
    screen = null;
    await refresh();
  });

  // --- waiting for a card ----------------------------------------------------------------------------

  function riderItem(ride, button) {
    const item = document.createElement("li");
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = `${ride.boarded_at}  ${withName(ride.given_name)}`;
    const mark = document.createElement("span");
    chip(mark, ride.confirmed);
    item.append(who, mark);
    if (button) item.append(button);
    return item;
  }

  function renderHome() {
    const list = $("on-board");
    list.replaceChildren();
    const trip = state.open_trip;
    $("shared-banner").hidden = !trip;
    $("shared-toggle").textContent = trip ? t("shared_end") : t("shared_start");
    const riders = state.on_board || [];
    if (!riders.length) {
      const empty = document.createElement("li");
      empty.className = "empty";
      empty.textContent = t("nobody");
      list.append(empty);
    }
    const tripRiders = {};
    for (const ride of riders) if (ride.trip_ref) (tripRiders[ride.trip_ref] = tripRiders[ride.trip_ref] || []).push(ride);
    for (const ride of riders) {
      const shared = ride.trip_ref && tripRiders[ride.trip_ref].length > 1;
      let button = null;
      if (!shared || tripRiders[ride.trip_ref][0] === ride) {
        button = document.createElement("button");
        button.type = "button";
        button.className = "alight";
        button.textContent = shared ? t("alight_trip") : t("alight");
        button.addEventListener("click", () =>
          openFare(shared ? { trip_ref: ride.trip_ref, riders: tripRiders[ride.trip_ref] } : { sequence: ride.sequence, riders: [ride] }),
        );
      }
      list.append(riderItem(ride, button));
    }
  }

  $("shared-toggle").addEventListener("click", async () => {
    await api("/api/trip", { open: !state.open_trip });
    await refresh();
  });

  async function pollReader() {
    if (screen !== "home" || busy) return;
    let reader;
    try {
      reader = await api("/api/reader");
    } catch (error) {
      return;
    }
    document.body.dataset.card = reader.present ? "on" : "off";
    if (!reader.present) {
      waitForRemoval = false;
      return;
    }
    if (waitForRemoval || screen !== "home" || busy) return;
    busy = true;
    try {
      await startBoarding();
    } finally {
      busy = false;
    }
  }

  async function startBoarding() {
    show("checking");
    const check = await api("/api/board/check", {});
    if (check.refusal) return refused(check.refusal);
    if (check.pin_needed) return openPin("");
    return submitBoarding(null);
  }

  // --- PIN -------------------------------------------------------------------------------------------

  function buildPad(container, onKey, okLabel) {
    container.replaceChildren();
    for (const key of ["1", "2", "3", "4", "5", "6", "7", "8", "9", "delete", "0", "ok"]) {
      const label = key === "delete" ? t("delete") : key === "ok" ? okLabel : key;
      const extra = key === "ok" ? "primary" : key === "delete" ? "quiet-key" : "";
      container.append(padKey(key, label, () => onKey(key), extra));
    }
  }

  function renderPin() {
    const dots = $("pin-dots");
    dots.replaceChildren();
    for (let i = 0; i < 4; i += 1) {
      const dot = document.createElement("span");
      dot.className = i < pin.length ? "dot filled" : "dot";
      dots.append(dot);
    }
    dots.setAttribute("aria-label", `${pin.length} / 4`);
  }

  function openPin(message) {
    pin = "";
    $("pin-message").textContent = message || "";
    buildPad($("pin-pad"), pinKey, t("enter"));
    renderPin();
    show("pin");
  }

  function pinKey(key) {
    if (key === "delete") pin = pin.slice(0, -1);
    else if (key === "ok") {
      if (pin.length === 4) {
        const entered = pin;
        pin = "";
        submitBoarding(entered);
      }
      return;
    } else if (pin.length < 4) pin += key;
    renderPin();
  }

  $("pin-cancel").addEventListener("click", () => {
    pin = "";
    waitForRemoval = true;
    show("home");
  });

  async function submitBoarding(enteredPin) {
    show("checking");
    const result = await api("/api/board", { pin: enteredPin });
    if (result.refusal) {
      if (result.refusal.retry_pin) return openPin(result.refusal.message);
      return refused(result.refusal);
    }
    boarded(result);
  }

  // --- results ---------------------------------------------------------------------------------------

  function boarded(result) {
    const ride = result.ride;
    const heading = { confirmed: "boarded_confirmed", pending: "boarded_pending", already: "boarded_already" }[result.outcome];
    $("boarded-heading").textContent = t(heading);
    chip($("boarded-chip"), ride.confirmed);
    $("boarded-name").textContent = withName(ride.given_name);
    $("boarded-age").textContent = ride.age_band;
    $("boarded-program").textContent = ride.program_name;
    $("boarded-balance-label").textContent = ride.confirmed ? t("balance") : t("balance_provisional");
    $("boarded-balance").textContent = ride.balance;
    $("boarded-pending-help").hidden = ride.confirmed;
    refresh();
    document.getElementById("screen-boarded").className = `screen result ${ride.confirmed ? "is-confirmed" : "is-pending"}`;
    waitForRemoval = true;
    show("boarded");
  }

  function refused(refusal) {
    $("refused-message").textContent = refusal.message;
    $("refused-code").textContent = refusal.code;
    $("refused-retry").hidden = true;
    waitForRemoval = true;
    show("refused");
    refresh();
  }

  for (const id of ["boarded-ok", "refused-ok", "pay-ok"]) {
    $(id).addEventListener("click", async () => {
      show("home");
      await refresh();
    });
  }

  // --- fare ------------------------------------------------------------------------------------------

  function openFare(target) {
    fareTarget = target;
    fare = "";
    const names = target.riders.map((r) => withName(r.given_name)).join("、");
    $("fare-who").textContent = names;
    $("fare-trip-help").textContent = target.trip_ref ? t("fare_trip_help", { n: target.riders.length }) : "";
    buildPad($("fare-pad"), fareKey, t("enter"));
    renderFare();
    show("fare");
  }

  function renderFare() {
    $("fare-display").textContent = fare ? yen(Number(fare)) : lang === "en" ? "¥ —" : "— 円";
  }

  function fareKey(key) {
    if (key === "delete") fare = fare.slice(0, -1);
    else if (key === "ok") {
      if (fare) submitFare(Number(fare));
      return;
    } else if (fare.length < 7 && !(fare === "" && key === "0")) fare += key;
    renderFare();
  }

  $("fare-cancel").addEventListener("click", () => show("home"));

  async function submitFare(amount) {
    show("checking");
    const body = fareTarget.trip_ref ? { trip_ref: fareTarget.trip_ref, meter_fare: amount } : { sequence: fareTarget.sequence, meter_fare: amount };
    const result = await api("/api/alight", body);
    if (result.refusal) return refused(result.refusal);
    showPay(result.rides);
  }

  function showPay(rides) {
    const list = $("pay-list");
    list.replaceChildren();
    const provisional = rides.some((r) => r.fare_provisional || !r.confirmed);
    const unknown = rides.some((r) => r.rider_share === null);
    $("pay-heading").textContent = rides.length > 1 ? t("pay_each") : t("pay_heading");
    for (const ride of rides) {
      const item = document.createElement("li");
      const amount = document.createElement("span");
      amount.className = "amount";
      amount.textContent = yen(ride.rider_share === null ? ride.meter_fare : ride.rider_share);
      const detail = document.createElement("span");
      detail.className = "detail";
      const split = ride.subsidy === null ? "" : ` − ${t("subsidy")} ${yen(ride.subsidy)}`;
      detail.textContent = `${rides.length > 1 ? withName(ride.given_name) + "  " : ""}${t("meter")} ${yen(ride.meter_fare)}${split}`;
      item.append(amount, detail);
      list.append(item);
    }
    chip($("pay-chip"), !provisional);
    $("pay-note").textContent = unknown ? t("pay_unknown") : provisional ? t("pay_provisional") : "";
    document.getElementById("screen-pay").className = `screen result ${provisional ? "is-pending" : "is-confirmed"}`;
    show("pay");
    refresh();
  }

  // --- void ------------------------------------------------------------------------------------------

  $("void-open").addEventListener("click", async () => {
    voidPick = null;
    $("void-reasons").hidden = true;
    $("void-message").textContent = "";
    const result = await api("/api/voidable");
    const list = $("void-list");
    list.replaceChildren();
    $("void-none").hidden = result.rides.length > 0;
    for (const ride of result.rides.slice(0, 4)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "pick";
      button.textContent = t("void_button");
      button.addEventListener("click", () => {
        voidPick = ride.sequence;
        for (const other of list.querySelectorAll("li")) other.classList.remove("picked");
        button.closest("li").classList.add("picked");
        $("void-reasons").hidden = false;
      });
      list.append(riderItem(ride, button));
    }
    show("void");
  });

  for (const button of document.querySelectorAll("[data-reason]")) {
    button.addEventListener("click", async () => {
      if (voidPick === null) return;
      const result = await api("/api/void", { sequence: voidPick, reason: t(button.dataset.reason) });
      if (result.refusal) {
        $("void-message").textContent = result.refusal.message;
        return;
      }
      $("void-message").textContent = `${t("voided")}: ${withName(result.ride.given_name)}`;
      $("void-reasons").hidden = true;
      $("void-list").replaceChildren();
      voidPick = null;
    });
  }
  $("void-back").addEventListener("click", async () => {
    show("home");
    await refresh();
  });

  // --- sending and what to check ---------------------------------------------------------------------

  function renderSync() {
    $("sync-pending").textContent = t("sync_pending", { n: state.pending });
    $("sync-last").textContent = state.last_sync ? t("sync_last", { at: state.last_sync }) : t("sync_never");
    $("sync-snapshot").textContent = state.snapshot_until ? t("sync_snapshot", { until: state.snapshot_until }) : t("sync_snapshot_none");
    const list = $("attention-list");
    list.replaceChildren();
    $("attention-none").hidden = state.attention.length > 0;
    for (const item of state.attention) {
      const entry = document.createElement("li");
      entry.className = `attention-item ${item.status}`;
      const heading = document.createElement("h3");
      heading.textContent = item.heading;
      const ride = document.createElement("p");
      ride.textContent = `${t("sequence")} ${item.sequence}  ${item.ride}`;
      const title = document.createElement("p");
      title.className = "tell";
      title.textContent = item.title;
      const advice = document.createElement("p");
      advice.textContent = item.advice;
      const ack = document.createElement("button");
      ack.type = "button";
      ack.className = "big";
      ack.textContent = t("attention_ack");
      ack.addEventListener("click", async () => {
        await api("/api/attention/ack", { sequences: [item.sequence] });
        await refresh();
      });
      entry.append(heading, ride, title, advice, ack);
      list.append(entry);
    }
  }

  async function openSync() {
    show("sync");
    await refresh();
  }

  $("sync-open").addEventListener("click", openSync);
  $("pending").addEventListener("click", openSync);
  $("attention").addEventListener("click", openSync);
  $("sync-now").addEventListener("click", async () => {
    await api("/api/sync", {});
    setTimeout(refresh, 800);
  });
  $("sync-back").addEventListener("click", async () => {
    show("home");
    await refresh();
  });

  // --- language --------------------------------------------------------------------------------------

  $("lang").addEventListener("click", async () => {
    lang = lang === "ja" ? "en" : "ja";
    localStorage.setItem("kiosk-lang", lang);
    applyTexts();
    if (screen === "signin") buildKeyboard();
    await refresh();
  });

  applyTexts();
  refresh();
  setInterval(refresh, 2000);
  setInterval(pollReader, 300);
})();
