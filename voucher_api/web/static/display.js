/* The residents' display in the vehicle (待たない): the number being served, how many wait, the wait. */
"use strict";

async function refresh(stopId) {
  let answer;
  try {
    answer = await api("GET", "/mobile-office/stops/" + stopId + "/display", { auth: false });
  } catch (error) {
    return; // keep showing the last figures until the network is back
  }
  if (!answer.ok) return;
  const queue = answer.body;
  document.getElementById("display-place").textContent = queue.place;
  document.getElementById("display-calling").textContent =
    queue.calling.length ? queue.calling.map((n) => T("queue.number", { n })).join(" ") : T("display.none");
  document.getElementById("display-waiting").textContent = T("queue.people", { n: queue.waiting });
  document.getElementById("display-wait").textContent = T("queue.minutes", { n: queue.estimated_wait_minutes });
  const note = document.getElementById("display-note");
  note.textContent = queue.status === "closed" ? T("display.closed") : T("display.note");
}

document.addEventListener("DOMContentLoaded", () => {
  const stopId = document.getElementById("display").dataset.stop;
  refresh(stopId);
  setInterval(() => refresh(stopId), 5000);
});
