// Alarms: one live list across all devices, worst first — acknowledge, clear, assign and
// annotate each; the status and least severity shown are in the URL.

import { failed, replaceQuery } from "../app.js";
import { get, post, query } from "../api.js";

const SEVERITIES = ["critical", "major", "minor", "warning", "indeterminate"];
const STATUSES = { ACTIVE: "open", UNACK: "unacknowledged", CLEARED: "cleared", "": "all" };

const when = (ms) => (ms ? new Date(ms).toLocaleString() : "—");

/** Worst first, then the latest raised first. */
export function order(a, b) {
  return SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) || b.lastRaisedAt - a.lastRaisedAt;
}

export async function mount(root, { route, may, user, live }) {
  const params = route.params;
  root.innerHTML = `
    <h1>Alarms</h1>
    <form class="filters">
      <label>Status <select name="status">${Object.entries(STATUSES).map(([v, t]) => `<option value="${v}">${t}</option>`).join("")}</select></label>
      <label>At least <select name="minSeverity"><option value="">any severity</option>${SEVERITIES.map((s) => `<option>${s}</option>`).join("")}</select></label>
      <span class="total" aria-live="polite"></span>
    </form>
    <ol class="alarms"></ol>`;
  const form = root.querySelector("form");
  const list = root.querySelector("ol");
  const total = root.querySelector(".total");
  form.status.value = params.has("status") ? params.get("status") : "ACTIVE";
  form.minSeverity.value = params.get("minSeverity") || "";

  function action(label, run) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await run();
        await read();
      } catch (error) {
        failed(error);
        button.disabled = false;
      }
    });
    return button;
  }

  function small(label, name, run) {
    const box = document.createElement("form");
    box.className = "inline";
    const input = document.createElement("input");
    input.name = name;
    input.setAttribute("aria-label", label);
    input.placeholder = label;
    const button = document.createElement("button");
    button.textContent = label.split(" ")[0];
    box.append(input, button);
    box.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await run(input.value.trim());
        await read();
      } catch (error) {
        failed(error);
      }
    });
    return box;
  }

  function item(alarm) {
    const li = document.createElement("li");
    li.className = `alarm sev-${alarm.severity}`;
    li.dataset.alarm = alarm.id;
    li.dataset.status = alarm.status;
    const top = document.createElement("div");
    top.className = "alarm-head";
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = alarm.severity;
    const type = document.createElement("strong");
    type.textContent = alarm.type;
    const device = document.createElement("a");
    device.href = `#/devices/${encodeURIComponent(alarm.productKey)}/${encodeURIComponent(alarm.deviceName)}`;
    device.textContent = alarm.deviceName;
    const status = document.createElement("span");
    status.className = "status";
    status.textContent = alarm.status.replace("_", " ").toLowerCase();
    const facts = document.createElement("span");
    facts.className = "facts";
    facts.textContent =
      `raised ${when(alarm.lastRaisedAt)}` +
      (alarm.repeats ? ` · ${alarm.repeats} repeats` : "") +
      (alarm.assignee ? ` · assigned to ${alarm.assignee}` : "");
    top.append(badge, type, device, status, facts);
    li.append(top);
    const path = `/api/alarms/${alarm.id}`;
    if (may("operator")) {
      const actions = document.createElement("div");
      actions.className = "actions";
      if (alarm.status.endsWith("UNACK")) {
        actions.append(action("Acknowledge", () => post(`${path}/ack`, { by: user.name })));
      }
      if (alarm.status.startsWith("ACTIVE")) {
        actions.append(action("Clear", () => post(`${path}/clear`, { by: user.name })));
      }
      actions.append(
        small("Assign to", "assignee", (who) => post(`${path}/assign`, { assignee: who || null, by: user.name })),
        small("Note text", "note", (text) => post(`${path}/notes`, { text, by: user.name })),
      );
      li.append(actions);
    }
    if (alarm.notes && alarm.notes.length) {
      const notes = document.createElement("details");
      const summary = document.createElement("summary");
      summary.textContent = `${alarm.notes.length} note(s)`;
      notes.append(summary);
      for (const note of alarm.notes) {
        const p = document.createElement("p");
        p.textContent = `${when(note.at)} · ${note.by}: ${note.text}`;
        notes.append(p);
      }
      li.append(notes);
    }
    return li;
  }

  async function read() {
    try {
      const page = await get(
        "/api/alarms" + query({ status: form.status.value, minSeverity: form.minSeverity.value, limit: 500 }),
      );
      page.items.sort(order);
      list.replaceChildren(...page.items.map(item));
      total.textContent = `${page.total} alarm(s)` + (page.total > page.items.length ? `, the ${page.items.length} latest shown` : "");
    } catch (error) {
      failed(error);
    }
  }

  form.addEventListener("change", () => {
    for (const name of ["status", "minSeverity"]) params.set(name, form[name].value);
    replaceQuery(params);
    read();
  });
  form.addEventListener("submit", (event) => event.preventDefault());
  await read();
  let pending = null;
  const soon = () => {
    clearTimeout(pending);
    pending = setTimeout(read, 300); // (a burst of changes: one read)
  };
  const stop = live.subscribe({ topic: "alarms" }, soon, read);
  return () => {
    clearTimeout(pending);
    stop();
  };
}
