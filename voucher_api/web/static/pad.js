/* The resident's on-screen pads: the 4-digit PIN and the signature password (A-Z, 0-9).
   What is entered stays in this closure, is shown only as dots, and is handed once to `onSubmit`. */
"use strict";

const DIGIT_ROWS = [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"]];
const KEY_ROWS = ["1234567890", "QWERTYUIOP", "ASDFGHJKL", "ZXCVBNM"];

/**
 * A pad element. options: {kind: "pin"|"password", min, max, onSubmit(value)}.
 * Each key is a real button (screen readers, switch access); keys carry data-pad-key.
 */
function makePad(options) {
  const kind = options.kind || "pin";
  const min = options.min || 4;
  const max = options.max || 4;
  let value = "";
  const dots = el("div", { class: "pad-entry", "aria-hidden": "true" });
  const spoken = el("p", { class: "visually-hidden", "aria-live": "polite" });
  const ok = el("button", { type: "button", class: "ok wide", "data-pad-key": "ok", disabled: true }, T("pad.ok"));

  function render() {
    clear(dots);
    const slots = kind === "pin" ? max : Math.max(value.length, min);
    for (let i = 0; i < slots; i += 1) dots.append(el("span", {}, i < value.length ? "●" : "○"));
    spoken.textContent = T("pin.entered", { n: value.length });
    ok.disabled = value.length < min;
  }
  function press(key) {
    if (value.length < max) value += key;
    render();
  }
  function key(label) {
    return el("button", { type: "button", "data-pad-key": label, onclick: () => press(label) }, label);
  }
  const remove = el("button", {
    type: "button", class: "fn", "data-pad-key": "delete", "aria-label": T("pad.delete"),
    onclick: () => { value = value.slice(0, -1); render(); },
  }, "⌫ " + T("pad.delete"));
  const wipe = el("button", {
    type: "button", class: "fn", "data-pad-key": "clear",
    onclick: () => { value = ""; render(); },
  }, T("pad.clear"));
  ok.addEventListener("click", () => {
    if (value.length < min) return;
    const entered = value;
    value = "";
    render();
    ok.disabled = true;
    options.onSubmit(entered);
  });

  let keys;
  if (kind === "pin") {
    keys = el("div", { class: "pad", role: "group", "aria-label": T("pad.label") });
    for (const row of DIGIT_ROWS) for (const digit of row) keys.append(key(digit));
    keys.append(wipe, key("0"), remove);
    ok.classList.add("wide");
    keys.append(ok);
  } else {
    keys = el("div", { class: "keyboard", role: "group", "aria-label": T("pad.keyboard") });
    for (const row of KEY_ROWS) for (const letter of row) keys.append(key(letter));
    remove.classList.add("row-end");
    wipe.classList.add("row-end");
    ok.classList.add("row-end");
    keys.append(remove, wipe, ok);
  }
  render();
  return el("div", { class: "pad-wrap" }, el("div", { role: "img", "aria-label": T("pad.entry") }, dots), spoken, keys);
}
