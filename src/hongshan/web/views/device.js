// One device's page, drawn from its product's thing model: live values, a history chart,
// a form to set its writable properties and one per service (with the device's reply),
// enable/disable, its shadow, events, open alarms and commands.

import { failed, replaceQuery } from "../app.js";
import { devicePath, get, post, query } from "../api.js";
import { AGGREGATIONS, RANGES, draw, series } from "./chart.js";
import { display, field, numeric, values } from "./form.js";

const BUILT_IN = new Set(["set", "get"]); // (property set and get: the property form does them)

function section(root, title, id) {
  const part = document.createElement("section");
  part.id = id;
  part.setAttribute("aria-labelledby", `${id}-title`);
  const heading = document.createElement("h2");
  heading.id = `${id}-title`;
  heading.textContent = title;
  part.append(heading);
  root.append(part);
  return part;
}

function cell(row, content, className) {
  const td = document.createElement("td");
  td.append(content ?? "—");
  if (className) td.className = className;
  row.append(td);
  return td;
}

const when = (ms) => (ms ? new Date(ms).toLocaleString() : "—");

export async function mount(root, { route, may, live }) {
  const [, pk, dn] = route.parts;
  const params = route.params;
  const path = devicePath(pk, dn);
  const [device, model] = await Promise.all([
    get(path),
    get(`/api/products/${encodeURIComponent(pk)}/thing-model`).catch(() => ({})),
  ]);
  const properties = model.properties || [];
  const byId = new Map(properties.map((p) => [p.identifier, p]));
  const stops = [];

  // -- the header: name, state, enable/disable --------------------------------------------
  const head = document.createElement("div");
  head.className = "device-head";
  const title = document.createElement("h1");
  title.textContent = device.nickname ? `${device.deviceName} · ${device.nickname}` : device.deviceName;
  const state = document.createElement("span");
  const showState = (value) => {
    state.textContent = value;
    state.className = `state s-${value}`;
  };
  showState(device.state);
  const facts = document.createElement("p");
  facts.textContent = `Product ${pk}` + (device.location ? ` · ${device.location.lat.toFixed(5)}, ${device.location.lon.toFixed(5)}` : "");
  head.append(title, state, facts);
  if (may("admin")) {
    // (enabling and disabling a device is an admin's change; an operator controls it)
    const toggle = document.createElement("button");
    toggle.type = "button";
    const label = () => (toggle.textContent = state.textContent === "disabled" ? "Enable" : "Disable");
    label();
    toggle.addEventListener("click", async () => {
      try {
        const changed = await post(`${path}/${state.textContent === "disabled" ? "enable" : "disable"}`);
        showState(changed.state);
        label();
      } catch (error) {
        failed(error);
      }
    });
    head.append(toggle);
  }
  root.append(head);

  // -- live values ----------------------------------------------------------------------------
  const valuesPart = section(root, "Values", "values");
  const table = document.createElement("table");
  table.className = "list values";
  table.innerHTML = "<thead><tr><th>Property</th><th>Value</th><th>Time</th></tr></thead><tbody></tbody>";
  valuesPart.append(table);
  const rows = new Map();
  const row = (identifier) => {
    if (!rows.has(identifier)) {
      const tr = document.createElement("tr");
      tr.dataset.property = identifier;
      const spec = byId.get(identifier);
      cell(tr, spec ? `${spec.name} (${identifier})` : identifier);
      cell(tr, "—", "value");
      cell(tr, "—", "time");
      table.tBodies[0].append(tr);
      rows.set(identifier, tr);
    }
    return rows.get(identifier);
  };
  for (const spec of properties) row(spec.identifier);
  const showValue = (identifier, value, time) => {
    const tr = row(identifier);
    tr.querySelector(".value").textContent = display(byId.get(identifier), value);
    tr.querySelector(".time").textContent = when(time);
  };
  const readValues = async () => {
    try {
      for (const [identifier, v] of Object.entries(await get(`${path}/properties`))) {
        showValue(identifier, v.value, v.time);
      }
    } catch (error) {
      failed(error);
    }
  };
  await readValues();
  stops.push(
    live.subscribe(
      { topic: "properties", device: `${pk}/${dn}` },
      (message) => {
        for (const [identifier, value] of Object.entries(message.values)) {
          showValue(identifier, value?.value !== undefined && typeof value === "object" ? value.value : value, message.ts);
        }
      },
      readValues,
    ),
    live.subscribe(
      { topic: "status", device: `${pk}/${dn}` },
      (message) => state.textContent !== "disabled" && showState(message.online ? "online" : "offline"),
      async () => showState((await get(path).catch(() => device)).state),
    ),
  );

  // -- history ---------------------------------------------------------------------------------
  const charted = properties.filter(numeric);
  if (charted.length) {
    const part = section(root, "History", "history");
    const controls = document.createElement("form");
    controls.className = "filters";
    controls.innerHTML = `
      <label>Property <select name="prop">${charted.map((p) => `<option value="${p.identifier}"></option>`).join("")}</select></label>
      <label>Range <select name="range">${Object.keys(RANGES).map((r) => `<option>${r}</option>`).join("")}</select></label>
      <label>Aggregation <select name="agg">${AGGREGATIONS.map((a) => `<option>${a}</option>`).join("")}</select></label>`;
    charted.forEach((p, i) => (controls.prop.options[i].textContent = p.name || p.identifier));
    const holder = document.createElement("div");
    holder.className = "chart";
    part.append(controls, holder);
    controls.prop.value = params.get("prop") || charted[0].identifier;
    controls.range.value = params.get("range") || "24h";
    controls.agg.value = params.get("agg") || "avg";
    let undraw = null;
    const chart = async () => {
      try {
        const data = await series(path, controls.prop.value, controls.range.value, controls.agg.value);
        if (undraw) undraw();
        undraw = draw(holder, controls.prop.value, data);
      } catch (error) {
        failed(error);
      }
    };
    controls.addEventListener("change", () => {
      for (const name of ["prop", "range", "agg"]) params.set(name, controls[name].value);
      replaceQuery(params);
      chart();
    });
    controls.addEventListener("submit", (event) => event.preventDefault());
    await chart();
    stops.push(() => undraw && undraw());
  }

  // -- property set and services ----------------------------------------------------------
  const writable = properties.filter((p) => p.accessMode === "rw");
  const services = (model.services || []).filter((s) => !BUILT_IN.has(s.identifier));
  let afterCall = () => {}; // (the commands list, drawn below, shows the call made)
  if (may("operator") && (writable.length || services.length)) {
    const part = section(root, "Control", "control");
    const forms = [];
    if (writable.length) forms.push(["Set properties", "set", writable, `${path}/properties`]);
    for (const s of services) {
      forms.push([`${s.name || s.identifier} (${s.identifier})`, s.identifier, s.inputData || [], `${path}/services/${encodeURIComponent(s.identifier)}`]);
    }
    for (const [name, id, inputs, target] of forms) {
      const form = document.createElement("form");
      form.className = "call";
      form.dataset.service = id;
      const legend = document.createElement("h3");
      legend.textContent = name;
      form.append(legend, ...inputs.filter((i) => typeof i === "object").map((i) => field(i)));
      const button = document.createElement("button");
      button.type = "submit";
      button.textContent = id === "set" ? "Set" : "Call";
      const answer = document.createElement("output");
      answer.className = "answer";
      form.append(button, answer);
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        button.disabled = true;
        answer.textContent = "…";
        try {
          const params = values(form);
          const body = id === "set" ? { params, wait: 5 } : { params, timeout: 5 };
          const reply = await post(target, body);
          answer.dataset.outcome = reply.outcome;
          answer.textContent =
            `${reply.outcome} · code ${reply.code}` +
            (reply.data !== null && reply.data !== undefined ? ` · ${JSON.stringify(reply.data)}` : "") +
            (reply.message ? ` · ${reply.message}` : "");
        } catch (error) {
          answer.textContent = error.message;
          answer.dataset.outcome = "error";
          if (!(error instanceof SyntaxError)) failed(error);
        } finally {
          button.disabled = false;
          afterCall();
        }
      });
      part.append(form);
    }
  }

  // -- alarms, commands, events, shadow -------------------------------------------------------
  const alarmsPart = section(root, "Open alarms", "device-alarms");
  const alarmList = document.createElement("ul");
  alarmList.className = "plain";
  alarmsPart.append(alarmList);
  const readAlarms = async () => {
    try {
      const page = await get("/api/alarms" + query({ status: "ACTIVE", productKey: pk, deviceName: dn }));
      alarmList.replaceChildren(
        ...page.items.map((a) => {
          const li = document.createElement("li");
          li.className = `sev-${a.severity}`;
          li.textContent = `${a.severity} · ${a.type} · ${a.status} · since ${when(a.firstRaisedAt)}`;
          return li;
        }),
      );
      if (!page.items.length) alarmList.textContent = "None.";
    } catch (error) {
      failed(error);
    }
  };
  await readAlarms();
  stops.push(live.subscribe({ topic: "alarms", device: `${pk}/${dn}` }, readAlarms, readAlarms));

  const commandsPart = section(root, "Commands", "commands");
  const commandTable = document.createElement("table");
  commandTable.className = "list";
  commandTable.innerHTML = "<thead><tr><th>When</th><th>Kind</th><th>Service</th><th>State</th><th>Outcome</th><th>Origin</th></tr></thead><tbody></tbody>";
  commandsPart.append(commandTable);
  const readCommands = async () => {
    try {
      const page = await get("/api/commands" + query({ productKey: pk, deviceName: dn, limit: 20 }));
      commandTable.tBodies[0].replaceChildren(
        ...page.items.map((c) => {
          const tr = document.createElement("tr");
          for (const v of [when(c.createdAt), c.kind, c.service, c.state, c.outcome + (c.code !== null ? ` (${c.code})` : ""), c.origin]) cell(tr, v);
          return tr;
        }),
      );
    } catch (error) {
      failed(error);
    }
  };
  await readCommands();
  afterCall = readCommands;
  stops.push(live.subscribe({ topic: "commands", device: `${pk}/${dn}` }, readCommands, readCommands));

  const eventsPart = section(root, "Events (24 h)", "events");
  const eventList = document.createElement("ul");
  eventList.className = "plain log";
  eventsPart.append(eventList);
  try {
    const log = await get(`${path}/log` + query({ kind: "event", limit: 100 }));
    eventList.replaceChildren(
      ...log.entries.reverse().map((e) => {
        const li = document.createElement("li");
        li.textContent = `${when(e.ts)} · ${e.identifier} · ${JSON.stringify(e.body)}`;
        return li;
      }),
    );
    if (!log.entries.length) eventList.textContent = "None.";
  } catch (error) {
    failed(error);
  }

  const shadowPart = section(root, "Shadow", "shadow");
  const shadow = document.createElement("pre");
  shadowPart.append(shadow);
  try {
    const doc = await get(`${path}/shadow`);
    shadow.textContent = JSON.stringify({ state: doc.state, version: doc.version, delta: doc.delta }, null, 2);
  } catch (error) {
    shadow.textContent = error.message;
  }

  return () => {
    for (const stop of stops) stop();
  };
}
