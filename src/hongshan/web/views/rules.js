// Rules: the list (#/rules) and a rule's editor (#/rules/ID, #/rules/new) — its SQL with
// line numbers and a syntax error put at its line and column, its actions as JSON; save,
// enable (live or in shadow), disable, delete; its trace; a backtest on a timeline.

import { failed, say } from "../app.js";
import { ApiError, get, post, put, remove } from "../api.js";
import { backtestForm } from "./backtest.js";
import { CodeEditor } from "./code.js";
import { button, keptSearch, link, pagedTable, when } from "./listing.js";
import { showTrace } from "./trace.js";

const EXAMPLE = `SELECT deviceName() AS device, items.temperature.value AS t
FROM "/+/+/thing/event/property/post"
WHERE items.temperature.value > 30`;

/** The first property the rule reads (``items.X.value``, ``values.X``), drawn by a backtest. */
export function readProperty(text) {
  return (/\b(?:items|values)\.(\w+)/.exec(text) || [])[1] || "";
}

export async function mount(root, context) {
  if (context.route.parts[1]) return editor(root, context, context.route.parts[1]);
  root.innerHTML = `
    <h1>Rules</h1>
    <form class="filters" role="search">
      <label>Name has <input name="q" type="search" autocomplete="off"></label>
      <button type="submit">Search</button>
      ${context.may("operator") ? '<a class="add" href="#/rules/new">New rule</a>' : ""}
    </form>
    <div class="rows"></div>`;
  const form = root.querySelector("form");
  const show = pagedTable(root.querySelector(".rows"), {
    path: "/api/rules",
    noun: "rules",
    kept: keptSearch(form, context.route.params, ["q"]),
    filters: () => ({ q: form.q.value.trim(), sort: "name" }),
    columns: [
      ["Rule", (rule) => link(`#/rules/${rule.id}`, rule.name)],
      ["State", (rule) => (rule.enabled ? (rule.shadow ? "shadow" : "live") : "disabled")],
      ["Actions", (rule) => rule.actions.map((a) => a.type).join(", ")],
      ["Changed", (rule) => when(rule.updatedAt)],
    ],
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show(true);
  });
  await show();
}

async function editor(root, { may }, id) {
  const fresh = id === "new";
  const editing = may("operator");
  root.innerHTML = `
    <p><a href="#/rules">Rules</a></p>
    <h1></h1>
    <p class="state"></p>
    <form class="editor">
      <label>Name <input name="name" required></label>
      <span class="label">SQL</span><div class="sql"></div>
      <span class="label">Actions (JSON)</span><div class="actions-json"></div>
      <label>At most <input name="maxPerSecond" type="number" step="any" min="0"> fires a second</label>
      <div class="actions"></div>
    </form>
    <section class="trace-box"><h2>Trace</h2><div></div></section>
    <section class="backtest-box"></section>`;
  const form = root.querySelector("form");
  const sql = new CodeEditor(root.querySelector(".sql"), { name: "sql", label: "SQL", readOnly: !editing });
  const actions = new CodeEditor(root.querySelector(".actions-json"), { name: "actions", label: "Actions (JSON)", rows: 6, readOnly: !editing });
  form.name.readOnly = !editing;
  form.maxPerSecond.readOnly = !editing;
  let rule = fresh ? { name: "", sql: EXAMPLE, actions: [], maxPerSecond: 10, enabled: false, shadow: false } : await get(`/api/rules/${id}`);

  function draw() {
    root.querySelector("h1").textContent = fresh ? "New rule" : rule.name;
    root.querySelector(".state").textContent = fresh ? "" : `${rule.enabled ? (rule.shadow ? "enabled in shadow mode" : "enabled, live") : "disabled"} · changed ${when(rule.updatedAt)}`;
    form.name.value = rule.name;
    sql.value = rule.sql;
    actions.value = JSON.stringify(rule.actions, null, 2);
    form.maxPerSecond.value = rule.maxPerSecond;
  }

  /** The rule as written, or null (the JSON's error shown). */
  function spec() {
    let parsed;
    try {
      parsed = JSON.parse(actions.value || "[]");
    } catch (error) {
      actions.show(`Actions: ${error.message}`);
      return null;
    }
    actions.clear();
    // (what the editor does not show is kept as it is: a save is the whole rule again)
    const kept = { errorAction: rule.errorAction ?? null, enabled: rule.enabled, shadow: rule.shadow };
    return { name: form.name.value.trim(), sql: sql.value, actions: parsed, maxPerSecond: Number(form.maxPerSecond.value || 10), ...kept };
  }

  /** A refusal under the SQL: a syntax error at its line and column, anything else as said. */
  function refused(error) {
    if (!(error instanceof ApiError) || error.status !== 400) return failed(error);
    sql.show(error.message, error.body.line, error.body.column);
  }

  async function act(path) {
    rule = await post(`/api/rules/${id}/${path}`);
    draw();
    await trace();
  }

  async function trace() {
    if (fresh) return;
    try {
      showTrace(root.querySelector(".trace-box div"), await get(`/api/rules/${id}/trace`));
    } catch (error) {
      failed(error);
    }
  }

  const bar = root.querySelector(".actions");
  if (editing) {
    const save = document.createElement("button");
    save.textContent = fresh ? "Create" : "Save";
    bar.append(
      button("Check", async () => {
        const written = spec();
        if (!written) return;
        try {
          await post("/api/rules/check", written);
          sql.clear();
          say("The rule is good.", "info");
        } catch (error) {
          refused(error);
        }
      }),
      save,
    );
    if (!fresh) {
      bar.append(
        button("Enable", () => act("enable")),
        button("Shadow on", () => act("enable?mode=shadow")),
        button("Shadow off", () => act("enable?mode=live")),
        button("Disable", () => act("disable")),
        button("Delete", async () => {
          if (!confirm(`Delete the rule ${rule.name}?`)) return;
          await remove(`/api/rules/${id}`);
          location.hash = "#/rules";
        }),
      );
    }
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const written = spec();
      if (!written) return;
      try {
        const saved = fresh ? await post("/api/rules", written) : await put(`/api/rules/${id}`, written);
        say(`Saved ${saved.name}.`, "info");
        if (fresh) location.hash = `#/rules/${saved.id}`;
        else {
          rule = saved;
          draw();
          await trace();
        }
      } catch (error) {
        refused(error);
      }
    });
  } else {
    form.addEventListener("submit", (event) => event.preventDefault());
  }
  draw();
  await trace();
  if (fresh || !editing) return null;
  return backtestForm(root.querySelector(".backtest-box"), {
    // (the rule as written: a change is tried before it is saved)
    run: ({ from, to, device }) => post("/api/rules/backtest", { rule: spec() || Number(id), from, to, device }),
    summary: (result) => `${result.rule.fired} would-be fire(s) of ${result.rule.matched} matched message(s), ${result.values} value(s) replayed`,
    fires: (result) => result.rule.fires.map((fire) => ({ at: fire.at, device: fire.device, text: JSON.stringify(fire.output) })),
    property: () => readProperty(sql.value),
  });
}
