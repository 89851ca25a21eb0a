// A product's alarm conditions on its page: listed, and for an operator one at a time in a
// JSON editor (new, changed, deleted) with the API's refusal shown under it.

import { failed, say } from "../app.js";
import { ApiError, post, put, remove } from "../api.js";
import { CodeEditor } from "./code.js";
import { button, pagedTable } from "./listing.js";

const KEPT = new Set(["id", "productKey", "createdAt", "updatedAt"]); // (not the spec's)
const EXAMPLE = { type: "", description: "", enabled: true, create: [{ severity: "major", predicates: [{ property: "", op: ">", value: 0 }] }], clear: null };

/** A condition's predicates as read: "Voltage > 260 and …" (its kind when not simple). */
function predicatesOf(part) {
  const predicates = part.predicates.map((p) => `${p.property} ${p.op} ${p.value ?? `tag ${p.tag}`}`).join(" and ");
  return part.kind && part.kind !== "simple" ? `${predicates} (${part.kind})` : predicates;
}

/** The conditions of the product at ``path`` (``/api/products/PK``) in ``holder``. */
export function conditions(holder, path, editing) {
  holder.innerHTML = `<div class="rows"></div>
    ${editing ? '<form class="editor condition"><span class="label">Condition (JSON)</span><div class="spec"></div><div class="actions"></div></form>' : ""}`;
  let chosen = null; // (the condition in the editor; null: a new one)
  const columns = [
    ["Type", (c) => c.type],
    ["Description", (c) => c.description],
    ["Enabled", (c) => (c.enabled ? "yes" : "no")],
    ["Raised when", (c) => c.create.map((part) => `${part.severity}: ${predicatesOf(part)}`).join("; ")],
    ["Cleared when", (c) => (c.clear ? predicatesOf(c.clear) : "")],
  ];
  if (editing) columns.push(["", (c) => button("Edit", () => choose(c))]);
  const show = pagedTable(holder.querySelector(".rows"), { path: `${path}/alarm-conditions`, noun: "alarm conditions", columns });
  if (!editing) return show;

  const form = holder.querySelector("form");
  const text = new CodeEditor(form.querySelector(".spec"), { name: "condition", label: "Condition (JSON)", rows: 10 });
  const save = document.createElement("button");
  save.textContent = "Save condition";
  const erase = button("Delete condition", async () => {
    if (!chosen || !confirm(`Delete the condition ${chosen.type}?`)) return;
    await remove(`/api/alarm-conditions/${chosen.id}`);
    choose(null);
    await show();
  });
  form.querySelector(".actions").append(save, button("New condition", () => choose(null)), erase);

  function choose(condition) {
    chosen = condition;
    const spec = condition ? Object.fromEntries(Object.entries(condition).filter(([key]) => !KEPT.has(key))) : EXAMPLE;
    text.value = JSON.stringify(spec, null, 2);
    erase.hidden = !condition;
    if (condition) text.area.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let spec;
    try {
      spec = JSON.parse(text.value);
    } catch (error) {
      return text.show(error.message);
    }
    try {
      const saved = chosen ? await put(`/api/alarm-conditions/${chosen.id}`, spec) : await post(`${path}/alarm-conditions`, spec);
      say(`Saved the condition ${saved.type}.`, "info");
      choose(saved);
      await show();
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) text.show(error.message);
      else failed(error);
    }
  });
  choose(null);
  return show;
}
