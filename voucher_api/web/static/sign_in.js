/* Sign-in: the only page where staff type (once per shift). */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("sign-in");
  const message = document.getElementById("sign-in-message");
  const params = new URLSearchParams(location.search);
  if (params.get("expired")) message.append(el("p", { class: "notice warn", text: T("signin.expired") }));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clear(message);
    let answer;
    try {
      answer = await api("POST", "/auth/token", {
        auth: false,
        body: { username: form.username.value.trim(), password: form.password.value },
      });
    } catch (error) {
      message.append(el("p", { class: "notice error", text: T("network.offline") }));
      return;
    }
    if (!answer.ok) {
      message.append(el("p", { class: "notice error", text: troubleText(answer.body) }));
      form.password.value = "";
      form.password.focus();
      return;
    }
    const body = answer.body;
    Staff.set({
      token: body.access_token,
      name: body.display_name,
      roles: body.roles,
      expiresAt: Date.now() + (body.expires_in - 30) * 1000,
    });
    const next = params.get("next");
    // Finance staff and operator admins start on the settlement page; everyone else on today's queue.
    const counter = (body.roles || []).some((role) => ["counter", "mobile_office", "admin"].includes(role));
    const home = counter || !hasRole(["finance", "finance_approver", "auditor", "operator_admin"])
      ? "/staff/queue" : "/staff/finance";
    location.assign(next && next.startsWith("/staff/") ? next : home);
  });
});
