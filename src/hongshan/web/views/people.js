// People (#/people, admins only): users (add with a role and groups, change the role, the
// groups, disable, reset the password, delete), API keys (create — the key shown once, in a
// dialog with a copy button —, revoke) and the audit log (filters, pages, its CSV).

import { failed, say } from "../app.js";
import { patch, post, put, query, remove } from "../api.js";
import { button, pagedTable, when } from "./listing.js";

const ROLES = ["viewer", "operator", "admin"];
const roleOptions = ROLES.map((r) => `<option>${r}</option>`).join("");

/** "a, b" as a list of groups; blank: not limited to groups (null). */
function groups(text) {
  const names = text.split(",").map((g) => g.trim()).filter(Boolean);
  return names.length ? names : null;
}

function control(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstChild;
}

export async function mount(root, { may }) {
  if (!may("admin")) {
    root.innerHTML = "<h1>People</h1><p>Only an admin sees the users, the keys and the audit log.</p>";
    return null;
  }
  root.innerHTML = `
    <h1>People</h1>
    <section class="users"><h2>Users</h2>
      <form class="filters add-user">
        <label>Name <input name="name" required autocomplete="off"></label>
        <label>Password <input name="password" type="password" required autocomplete="new-password"></label>
        <label>Role <select name="role">${roleOptions}</select></label>
        <label>Groups <input name="groups" placeholder="a, b (blank: all)"></label>
        <button type="submit">Add user</button>
      </form>
      <div class="rows"></div>
    </section>
    <section class="keys"><h2>API keys</h2>
      <form class="filters add-key">
        <label>Name <input name="name" required autocomplete="off"></label>
        <label>Role <select name="role">${roleOptions}</select></label>
        <label>Groups <input name="groups" placeholder="a, b (blank: all)"></label>
        <label>Expires in <input name="days" type="number" min="1" step="1"> days</label>
        <button type="submit">Create key</button>
      </form>
      <div class="rows"></div>
    </section>
    <section class="audit"><h2>Audit log</h2>
      <form class="filters" role="search">
        <label>Actor <input name="actor" autocomplete="off"></label>
        <label>Action <input name="action" placeholder="POST /api/keys"></label>
        <label>Status <input name="status" type="number" min="100" max="599"></label>
        <label>Since <input name="since" type="datetime-local"></label>
        <label>Until <input name="until" type="datetime-local"></label>
        <button type="submit">Filter</button>
        <a class="csv" download="audit.csv">CSV</a>
      </form>
      <div class="rows"></div>
    </section>
    <dialog class="new-key" aria-labelledby="new-key-title">
      <h2 id="new-key-title">The new key</h2>
      <p>Copy it now: it is shown this once.</p>
      <input class="secret" readonly aria-label="The new key">
      <button type="button" class="copy">Copy</button>
      <button type="button" class="close">Close</button>
    </dialog>`;
  const audit = auditTable(root.querySelector(".audit"));
  // (a change to a user shows in the audit log: both are read again)
  const changed = () => Promise.all([users(), audit(true)]);
  const users = userTable(root.querySelector(".users"), changed);
  const keys = keyTable(root.querySelector(".keys"), root.querySelector("dialog"), audit);
  root.querySelector(".add-user").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      await post("/api/users", { name: form.name.value.trim(), password: form.password.value, role: form.role.value, groups: groups(form.groups.value) });
      say(`Added ${form.name.value.trim()}.`, "info");
      form.reset();
      await changed();
    } catch (error) {
      failed(error);
    }
  });
  await Promise.all([users(), keys(), audit()]);
}

function userTable(section, changed) {
  const path = (name) => `/api/users/${encodeURIComponent(name)}`;
  const show = pagedTable(section.querySelector(".rows"), {
    path: "/api/users",
    noun: "users",
    columns: [
      ["User", (u) => u.name],
      ["Role", (u) => {
        const select = control(`<select aria-label="Role of ${u.name}">${roleOptions}</select>`);
        select.value = u.role;
        select.addEventListener("change", () => change(u, { role: select.value }));
        return select;
      }],
      ["Groups", (u) => {
        const input = control(`<input aria-label="Groups of ${u.name}" placeholder="all">`);
        input.value = (u.groups || []).join(", ");
        input.addEventListener("change", () => change(u, { groups: groups(input.value) }));
        return input;
      }],
      ["Disabled", (u) => {
        const box = control(`<input type="checkbox" aria-label="${u.name} disabled">`);
        box.checked = u.disabled;
        box.addEventListener("change", () => change(u, { disabled: box.checked }));
        return box;
      }],
      ["Created", (u) => when(u.createdAt)],
      ["", (u) => {
        const cell = document.createElement("span");
        cell.append(
          button("Reset password", async () => {
            const password = prompt(`A new password for ${u.name}`);
            if (!password) return;
            await put(`${path(u.name)}/password`, { password });
            say(`${u.name}'s password is reset.`, "info");
            await changed();
          }),
          button("Delete", async () => {
            if (!confirm(`Delete the user ${u.name}?`)) return;
            await remove(path(u.name));
            await changed();
          }),
        );
        return cell;
      }],
    ],
  });
  async function change(user, fields) {
    try {
      await patch(path(user.name), fields);
      say(`${user.name} changed.`, "info");
    } catch (error) {
      failed(error);
    }
    await changed();
  }
  return show;
}

function keyTable(section, dialog, audit) {
  const show = pagedTable(section.querySelector(".rows"), {
    path: "/api/keys",
    noun: "keys",
    columns: [
      ["Key", (k) => k.name],
      ["Role", (k) => k.role],
      ["Groups", (k) => (k.groups || []).join(", ") || "all"],
      ["Made by", (k) => k.createdBy],
      ["Created", (k) => when(k.createdAt)],
      ["Expires", (k) => (k.expiresAt ? when(k.expiresAt) : "never")],
      ["Last used", (k) => when(k.usedAt)],
      ["", (k) => (k.revokedAt ? `revoked ${when(k.revokedAt)}` : button("Revoke", async () => {
        if (!confirm(`Revoke the key ${k.name}?`)) return;
        await remove(`/api/keys/${k.id}`);
        await Promise.all([show(), audit(true)]);
      }))],
    ],
  });
  const secret = dialog.querySelector(".secret");
  dialog.querySelector(".copy").addEventListener("click", async () => {
    secret.select();
    try {
      await navigator.clipboard.writeText(secret.value);
      say("The key is copied.", "info");
    } catch {
      say("Press Ctrl+C: the key is selected.", "info"); // (no clipboard without permission)
    }
  });
  dialog.querySelector(".close").addEventListener("click", () => {
    secret.value = ""; // (shown once)
    dialog.close();
  });
  section.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const made = await post("/api/keys", {
        name: form.name.value.trim(),
        role: form.role.value,
        groups: groups(form.groups.value),
        expiresInDays: form.days.value ? Number(form.days.value) : null,
      });
      form.reset();
      secret.value = made.key;
      dialog.showModal();
      await Promise.all([show(), audit(true)]);
    } catch (error) {
      failed(error);
    }
  });
  return show;
}

function auditTable(section) {
  const form = section.querySelector("form");
  const csv = section.querySelector(".csv");
  const moment = (value) => (value ? String(new Date(value).getTime()) : "");
  const filters = () => ({
    actor: form.actor.value.trim(),
    action: form.action.value.trim(),
    status: form.status.value,
    since: moment(form.since.value),
    until: moment(form.until.value),
  });
  const show = pagedTable(section.querySelector(".rows"), {
    path: "/api/audit",
    noun: "entries",
    filters,
    columns: [
      ["When", (e) => when(e.at)],
      ["Actor", (e) => `${e.actor} (${e.actorKind})`],
      ["Action", (e) => e.action],
      ["Target", (e) => e.target],
      ["Status", (e) => e.status],
      ["From", (e) => e.address],
      ["Detail", (e) => (e.detail ? JSON.stringify(e.detail) : "")],
    ],
  });
  const read = (fromStart) => {
    csv.href = "/api/audit" + query({ ...filters(), format: "csv" });
    return show(fromStart);
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    read(true);
  });
  return read;
}
