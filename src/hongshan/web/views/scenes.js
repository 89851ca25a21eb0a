// Scenes: the list (#/scenes) and a scene's editor (#/scenes/ID, #/scenes/new) — its spec
// as JSON with the API's refusal shown under it; enable, disable, delete; its trace; a
// backtest on the same timeline as a rule's.

import { failed, say } from "../app.js";
import { ApiError, get, post, put, remove } from "../api.js";
import { backtestForm } from "./backtest.js";
import { CodeEditor } from "./code.js";
import { button, keptSearch, link, pagedTable, when } from "./listing.js";
import { showTrace } from "./trace.js";

const SHOWN = new Set(["id", "createdAt", "updatedAt", "secret", "token"]); // (not the spec's)
const EXAMPLE = { name: "", description: "", enabled: false, triggers: [], actions: [] };

export async function mount(root, context) {
  if (context.route.parts[1]) return editor(root, context, context.route.parts[1]);
  root.innerHTML = `
    <h1>Scenes</h1>
    <form class="filters" role="search">
      <label>Name has <input name="q" type="search" autocomplete="off"></label>
      <button type="submit">Search</button>
      ${context.may("operator") ? '<a class="add" href="#/scenes/new">New scene</a>' : ""}
    </form>
    <div class="rows"></div>`;
  const form = root.querySelector("form");
  const show = pagedTable(root.querySelector(".rows"), {
    path: "/api/scenes",
    noun: "scenes",
    kept: keptSearch(form, context.route.params, ["q"]),
    filters: () => ({ q: form.q.value.trim(), sort: "name" }),
    columns: [
      ["Scene", (scene) => link(`#/scenes/${scene.id}`, scene.name)],
      ["State", (scene) => (scene.enabled ? "enabled" : "disabled")],
      ["Triggers", (scene) => scene.triggers.map((t) => t.type).join(", ")],
      ["Changed", (scene) => when(scene.updatedAt)],
    ],
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show(true);
  });
  await show();
}

/** A scene's spec: its view without what the server keeps of it. */
function specOf(scene) {
  return Object.fromEntries(Object.entries(scene).filter(([key]) => !SHOWN.has(key)));
}

/** ``PK/DN`` of a trigger's device ({productKey, deviceName}), if it names one. */
function deviceOf(named) {
  return named?.productKey && named?.deviceName ? `${named.productKey}/${named.deviceName}` : null;
}

async function editor(root, { may }, id) {
  const fresh = id === "new";
  const editing = may("operator");
  root.innerHTML = `
    <p><a href="#/scenes">Scenes</a></p>
    <h1></h1>
    <p class="state"></p>
    <form class="editor">
      <span class="label">Scene (JSON)</span><div class="spec"></div>
      <div class="actions"></div>
    </form>
    <section class="trace-box"><h2>Trace</h2><div></div></section>
    <section class="backtest-box"></section>`;
  const form = root.querySelector("form");
  const text = new CodeEditor(root.querySelector(".spec"), { name: "spec", label: "Scene (JSON)", rows: 18, readOnly: !editing });
  let scene = fresh ? EXAMPLE : await get(`/api/scenes/${id}`);

  function draw() {
    root.querySelector("h1").textContent = fresh ? "New scene" : scene.name;
    root.querySelector(".state").textContent = fresh ? "" : `${scene.enabled ? "enabled" : "disabled"} · changed ${when(scene.updatedAt)}`;
    text.value = JSON.stringify(specOf(scene), null, 2);
  }

  function spec() {
    try {
      return JSON.parse(text.value);
    } catch (error) {
      text.show(error.message);
      return null;
    }
  }

  async function trace() {
    if (fresh) return;
    try {
      showTrace(root.querySelector(".trace-box div"), await get(`/api/scenes/${id}/trace`));
    } catch (error) {
      failed(error);
    }
  }

  async function act(path) {
    scene = await post(`/api/scenes/${id}/${path}`);
    draw();
    await trace();
  }

  if (editing) {
    const save = document.createElement("button");
    save.textContent = fresh ? "Create" : "Save";
    const bar = root.querySelector(".actions");
    bar.append(save);
    if (!fresh) {
      bar.append(
        button("Enable", () => act("enable")),
        button("Disable", () => act("disable")),
        button("Delete", async () => {
          if (!confirm(`Delete the scene ${scene.name}?`)) return;
          await remove(`/api/scenes/${id}`);
          location.hash = "#/scenes";
        }),
      );
    }
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const written = editing && spec();
    if (!written) return;
    try {
      const saved = fresh ? await post("/api/scenes", written) : await put(`/api/scenes/${id}`, written);
      say(`Saved ${saved.name}.`, "info");
      if (fresh) location.hash = `#/scenes/${saved.id}`;
      else {
        scene = saved;
        draw();
        await trace();
      }
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) text.show(error.message);
      else failed(error);
    }
  });
  /** The first trigger on a device's property: what a backtest draws. */
  const watched = () => (spec()?.triggers || []).find((trigger) => trigger.property);
  draw();
  await trace();
  if (fresh || !editing) return null;
  return backtestForm(root.querySelector(".backtest-box"), {
    run: ({ from, to }) => post("/api/scenes/backtest", { scene: spec() || Number(id), from, to }),
    summary: (result) => `${result.scene.ran} run(s) of ${result.scene.triggered} trigger(s), ${result.values} value(s) replayed`,
    fires: (result) =>
      result.scene.runs.map((run) => ({
        at: run.at,
        device: deviceOf(run.trigger) || deviceOf(watched()?.device),
        text: run.ran ? `ran: ${run.steps.length} step(s)` : `not run: ${run.why || run.reason}`,
      })),
    property: () => watched()?.property || "",
  });
}
