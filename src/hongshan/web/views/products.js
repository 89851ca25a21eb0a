// Products: the list (#/products) and a product's page (#/products/PK) — its thing model
// (TSL) in an editor with Import (an Alibaba TSL JSON file) and Export (the same file back),
// a table of its properties, events and services, and its alarm conditions (edited by an
// operator).

import { failed, say } from "../app.js";
import { ApiError, get, put } from "../api.js";
import { CodeEditor } from "./code.js";
import { conditions } from "./conditions.js";
import { keptSearch, link, pagedTable, when } from "./listing.js";

export async function mount(root, context) {
  if (context.route.parts[1]) return product(root, context, context.route.parts[1]);
  root.innerHTML = `
    <h1>Products</h1>
    <form class="filters" role="search">
      <label>Name has <input name="q" type="search" autocomplete="off"></label>
      <button type="submit">Search</button>
    </form>
    <div class="rows"></div>`;
  const form = root.querySelector("form");
  const show = pagedTable(root.querySelector(".rows"), {
    path: "/api/products",
    noun: "products",
    kept: keptSearch(form, context.route.params, ["q"]),
    filters: () => ({ q: form.q.value.trim() }),
    columns: [
      ["Product", (p) => link(`#/products/${encodeURIComponent(p.productKey)}`, p.name)],
      ["Product key", (p) => p.productKey],
      ["Description", (p) => p.description],
      ["Created", (p) => when(p.createdAt)],
    ],
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    show(true);
  });
  await show();
}

/** The readable line of a feature's data type (or a service's / event's parameters). */
function typeOf(feature) {
  if (feature.dataType) {
    const { type, specs = {} } = feature.dataType;
    if (type === "bool" || type === "enum") return `${type}: ${Object.entries(specs).map(([k, v]) => `${k} ${v}`).join(", ")}`;
    const range = specs.min !== undefined ? ` ${specs.min}…${specs.max}` : "";
    return `${type}${range}${specs.unit ? ` ${specs.unit}` : ""}`;
  }
  const ins = (feature.inputData || feature.outputData || []).map((p) => p.identifier);
  return ins.length ? `(${ins.join(", ")})` : "";
}

function features(holder, model) {
  const rows = [];
  for (const [kind, list] of [["property", model.properties], ["event", model.events], ["service", model.services]]) {
    for (const feature of list || []) {
      const row = document.createElement("tr");
      for (const text of [kind, feature.identifier, feature.name, typeOf(feature), feature.accessMode || feature.type || feature.callType || ""]) {
        const td = document.createElement("td");
        td.textContent = text || "—";
        row.append(td);
      }
      rows.push(row);
    }
  }
  holder.replaceChildren(...rows);
}

async function product(root, { may }, pk) {
  const path = `/api/products/${encodeURIComponent(pk)}`;
  const editing = may("admin");
  const found = await get(path);
  root.innerHTML = `
    <p><a href="#/products">Products</a></p>
    <h1></h1>
    <h2>Thing model</h2>
    <div class="actions">
      ${editing ? '<label class="file">Import TSL file <input type="file" name="tsl" accept=".json,application/json"></label><button type="button" class="save">Save</button>' : ""}
      <button type="button" class="export">Export</button>
    </div>
    <div class="tsl"></div>
    <table class="list features"><thead><tr><th>Kind</th><th>Identifier</th><th>Name</th><th>Type</th><th>Access / call</th></tr></thead><tbody></tbody></table>
    <h2>Alarm conditions</h2>
    <div class="conditions"></div>`;
  root.querySelector("h1").textContent = `${found.name} (${pk})`;
  const text = new CodeEditor(root.querySelector(".tsl"), { name: "tsl", label: "Thing model (JSON)", rows: 14, readOnly: !editing });

  // (the first read may answer after an import made meanwhile: only the latest is shown)
  let latest = 0;

  async function read() {
    const turn = ++latest;
    let model = {};
    try {
      model = await get(`${path}/thing-model`);
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) throw error;
    }
    if (turn === latest) show(model);
  }

  function show(model) {
    text.value = JSON.stringify(model, null, 2);
    features(root.querySelector(".features tbody"), model);
  }

  async function store(document) {
    const turn = ++latest;
    try {
      const model = await put(`${path}/thing-model`, document);
      if (turn === latest) show(model);
      say("The thing model is saved.", "info");
    } catch (error) {
      if (error instanceof ApiError && error.status === 400) text.show(error.message);
      else failed(error);
    }
  }

  if (editing) {
    const file = root.querySelector("input[type=file]");
    file.addEventListener("change", async () => {
      if (!file.files.length) return;
      const content = await file.files[0].text();
      file.value = "";
      try {
        await store(JSON.parse(content));
      } catch (error) {
        text.show(`The file is no JSON: ${error.message}`);
      }
    });
    root.querySelector(".save").addEventListener("click", () => {
      try {
        store(JSON.parse(text.value));
      } catch (error) {
        text.show(error.message);
      }
    });
  }
  root.querySelector(".export").addEventListener("click", async () => {
    try {
      const model = await get(`${path}/thing-model`);
      const url = URL.createObjectURL(new Blob([JSON.stringify(model, null, 2)], { type: "application/json" }));
      const anchor = document.createElement("a");
      anchor.href = url;
      anchor.download = `${pk}.tsl.json`;
      anchor.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (error) {
      failed(error);
    }
  });
  await read();
  await conditions(root.querySelector(".conditions"), path, may("operator"))();
}
