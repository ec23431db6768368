/* The mobile office's route: rounds of stops (place, district, time window); open and close a stop. */
"use strict";

let districts = [];

function message(text, kind) {
  const box = clear(document.getElementById("mobile-message"));
  if (text) box.append(el("p", { class: "notice " + (kind || "error") }, text));
}

function stopForm(round) {
  const prefix = "stop-" + round.id + "-";
  const ids = { place: prefix + "place", district: prefix + "district", date: prefix + "date", start: prefix + "start", end: prefix + "end" };
  const district = el("select", { id: ids.district, name: "district" },
    districts.map((d) => el("option", { value: String(d.id) }, d.name)));
  const form = el("form", { class: "panel", novalidate: true },
    el("h3", {}, T("mobile.add_stop")),
    el("label", { for: ids.place }, T("mobile.place")), el("input", { id: ids.place, name: "place", required: true, maxlength: "100" }),
    el("label", { for: ids.district }, T("mobile.district")), district,
    el("label", { for: ids.date }, T("mobile.date")), el("input", { id: ids.date, name: "date", type: "date", required: true, value: japanToday() }),
    el("label", { for: ids.start }, T("mobile.start")), el("input", { id: ids.start, name: "start", type: "time", required: true, value: "09:30" }),
    el("label", { for: ids.end }, T("mobile.end")), el("input", { id: ids.end, name: "end", type: "time", required: true, value: "10:15" }),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "btn" }, T("mobile.add"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const day = form.date.value;
    const answer = await api("POST", "/mobile-office/rounds/" + round.id + "/stops", {
      body: {
        place: form.place.value.trim(),
        district_id: Number(form.district.value),
        starts_at: day + "T" + form.start.value + ":00+09:00",
        ends_at: day + "T" + form.end.value + ":00+09:00",
      },
    });
    if (!answer.ok) { message(troubleText(answer.body)); return; }
    message("");
    render();
  });
  return form;
}

function stopRow(stop) {
  const actions = el("td", {});
  const act = async (what) => {
    const answer = await api("POST", "/mobile-office/stops/" + stop.id + "/" + what);
    if (!answer.ok) { message(troubleText(answer.body)); return; }
    message("");
    render();
  };
  if (stop.status === "planned") {
    actions.append(el("button", { type: "button", class: "btn go", onclick: () => act("open") }, T("mobile.open") + "(" + stop.place + ")"));
  }
  if (stop.status === "open") {
    actions.append(el("button", { type: "button", class: "btn danger", onclick: () => act("close") }, T("mobile.close") + "(" + stop.place + ")"));
  }
  if (stop.status !== "planned") {
    actions.append(" ", el("a", { href: "/display/stops/" + stop.id, target: "_blank", rel: "noopener" }, T("mobile.display") + "(" + stop.place + ")"));
  }
  return el("tr", { "data-stop": String(stop.id) },
    el("td", {}, String(stop.position)),
    el("td", {}, stop.place),
    el("td", {}, stop.district_name),
    el("td", {}, formatDate(stop.starts_at) + " " + formatTime(stop.starts_at) + "〜" + formatTime(stop.ends_at)),
    el("td", {}, T("queue." + stop.status)),
    actions);
}

async function render() {
  const target = clear(document.getElementById("rounds"));
  const answer = await api("GET", "/mobile-office/rounds");
  if (!answer.ok) { message(troubleText(answer.body)); return; }
  if (!answer.body.length) { target.append(el("p", {}, T("mobile.none"))); return; }
  for (const round of answer.body) {
    const headingId = "round-" + round.id;
    const rows = round.stops.map(stopRow);
    target.append(el("section", { class: "panel", "aria-labelledby": headingId },
      el("h3", { id: headingId }, round.name),
      el("p", {}, el("a", { href: "/staff/mobile-office/rounds/" + round.id + "/figures" }, T("mobile.figures") + "(" + round.name + ")")),
      rows.length ? el("div", { class: "table-wrap", role: "region", "aria-label": round.name, tabindex: "0" }, el("table", {},
        el("caption", { class: "visually-hidden" }, T("mobile.stops")),
        el("thead", {}, el("tr", {},
          ["#", T("mobile.place"), T("mobile.district"), T("mobile.window"), T("residents.status"), T("residents.actions")]
            .map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows))) : null,
      el("details", {}, el("summary", {}, T("mobile.add_stop") + "(" + round.name + ")"), stopForm(round))));
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  Staff.require();
  const answer = await api("GET", "/mobile-office/districts");
  districts = answer.ok ? answer.body : [];
  document.getElementById("new-round").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const created = await api("POST", "/mobile-office/rounds", { body: { name: form.name.value.trim() } });
    if (!created.ok) { message(troubleText(created.body)); return; }
    form.reset();
    render();
  });
  render();
});
