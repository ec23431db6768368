/* Today's queue: pick the stop the vehicle is at, hand out numbers, call the next person. */
"use strict";

const STOP_KEY = "voucher.stop";

function statusLabel(status) {
  return T("queue." + status);
}

function windowText(stop) {
  return formatTime(stop.starts_at) + "〜" + formatTime(stop.ends_at);
}

async function loadStops() {
  const answer = await api("GET", "/mobile-office/stops?today=true");
  return answer.ok ? answer.body : [];
}

async function renderStops(stops, selected, refresh) {
  const list = clear(document.getElementById("stops"));
  if (!stops.length) {
    list.append(el("li", {}, T("queue.no_stop")));
    return;
  }
  for (const stop of stops) {
    const item = el("li", { "data-stop": String(stop.id) },
      el("strong", {}, stop.place),
      el("span", {}, stop.district_name),
      el("span", {}, windowText(stop)),
      el("span", { class: "status" }, statusLabel(stop.status)));
    if (stop.status === "planned") {
      item.append(el("button", {
        type: "button", class: "btn secondary",
        onclick: async () => {
          const answer = await api("POST", "/mobile-office/stops/" + stop.id + "/open");
          if (!answer.ok) { say(troubleText(answer.body), "error"); return; }
          sessionStorage.setItem(STOP_KEY, String(stop.id));
          refresh();
        },
      }, T("mobile.open") + "(" + stop.place + ")"));
    } else if (String(stop.id) !== String(selected)) {
      item.append(el("button", {
        type: "button", class: "btn secondary",
        onclick: () => { sessionStorage.setItem(STOP_KEY, String(stop.id)); refresh(); },
      }, T("queue.select") + "(" + stop.place + ")"));
    }
    list.append(item);
  }
}

function say(text, kind) {
  const box = clear(document.getElementById("queue-message"));
  if (text) box.append(el("p", { class: "notice " + (kind || "ok") }, text));
}

function counter(label, value, id) {
  return el("div", { class: "counter" }, el("p", { class: "label" }, label), el("p", { class: "value", id }, value));
}

async function renderQueue(stop) {
  const body = clear(document.getElementById("queue-body"));
  document.getElementById("queue-place").textContent = stop ? stop.place + "(" + stop.district_name + ")" : T("queue.counter");
  if (!stop) {
    body.append(el("p", {}, T("queue.no_stop")));
    body.append(el("div", { class: "actions" },
      el("a", { class: "btn big", href: "/staff/apply" }, T("queue.start"))));
    return;
  }
  const answer = await api("GET", "/mobile-office/stops/" + stop.id + "/queue");
  if (!answer.ok) { say(troubleText(answer.body), "error"); return; }
  const queue = answer.body;
  body.append(el("div", { class: "counters" },
    counter(T("queue.waiting"), T("queue.people", { n: queue.waiting }), "waiting-count"),
    counter(T("queue.calling"), queue.calling.length ? queue.calling.map((n) => T("queue.number", { n })).join(" ") : "ー", "calling"),
    counter(T("queue.wait"), T("queue.minutes", { n: queue.estimated_wait_minutes }), "wait-minutes")));
  if (queue.status === "closed") body.append(el("p", { class: "notice warn" }, T("queue.closed_note")));
  const handout = el("p", { class: "handout", id: "handout", "aria-live": "assertive" });
  const actions = el("div", { class: "actions" });
  if (queue.status === "open") {
    actions.append(el("button", {
      type: "button", class: "btn big secondary", id: "issue-ticket",
      onclick: async () => {
        const issued = await api("POST", "/mobile-office/stops/" + stop.id + "/tickets", { key: newKey() });
        if (!issued.ok) { say(troubleText(issued.body), "error"); return; }
        await renderQueue(stop);
        document.getElementById("handout").textContent = T("queue.issued", { n: issued.body.number });
      },
    }, T("queue.issue")));
  }
  actions.append(el("button", {
    type: "button", class: "btn big", id: "call-next",
    onclick: async () => {
      const called = await api("POST", "/mobile-office/stops/" + stop.id + "/call-next", { key: newKey() });
      if (!called.ok) { say(troubleText(called.body), "error"); return; }
      if (!called.body.ticket) { say(T("queue.nobody"), "warn"); return; }
      const ticket = called.body.ticket;
      location.assign("/staff/apply?stop=" + stop.id + "&ticket=" + ticket.id + "&number=" + ticket.number);
    },
  }, T("queue.call_next")));
  actions.append(el("a", { class: "btn secondary", href: "/display/stops/" + stop.id, target: "_blank", rel: "noopener" },
    T("queue.display")));
  actions.append(el("a", { class: "btn secondary", href: "/staff/apply?stop=" + stop.id }, T("queue.start")));
  body.append(handout, actions);
}

document.addEventListener("DOMContentLoaded", async () => {
  Staff.require();
  const refresh = async () => {
    const stops = await loadStops();
    // The stop chosen here if it is open; else the open one; else the chosen one, closed but still
    // serving the people who hold a number.
    const chosen = stops.find((s) => String(s.id) === sessionStorage.getItem(STOP_KEY) && s.status !== "planned");
    const open = stops.find((s) => s.status === "open");
    const stop = chosen && chosen.status === "open" ? chosen : open || chosen || null;
    if (stop) sessionStorage.setItem(STOP_KEY, String(stop.id));
    else sessionStorage.removeItem(STOP_KEY);
    const selected = stop ? stop.id : null;
    await renderQueue(stop || null);
    await renderStops(stops, selected, refresh);
  };
  await refresh();
});
