// A backtest's form and its result on a timeline, for rules and scenes alike: the range
// (and a device), the property's recorded values over it drawn with uPlot, a red mark at
// each would-be fire, and the list of fires under the chart.

import { failed } from "../app.js";
import { devicePath, get, query } from "../api.js";
import { when } from "./listing.js";

const HOUR = 3_600_000;

/** A datetime-local input's value for ``ms`` (the browser's own time zone). */
function local(ms) {
  const date = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return date.toISOString().slice(0, 16);
}

/** [times, values, marks] as uPlot takes them (s): the marks sit on the value at each fire. */
export function timeline(points, fireTimes) {
  const times = [...new Set([...points.map((p) => p[0]), ...fireTimes])].sort((a, b) => a - b);
  const byTime = new Map(points.map((p) => [p[0], p[1]]));
  const fired = new Set(fireTimes);
  const values = [];
  const marks = [];
  let last = null;
  for (const t of times) {
    if (byTime.has(t)) last = byTime.get(t);
    values.push(byTime.has(t) ? byTime.get(t) : null);
    marks.push(fired.has(t) ? last : null);
  }
  return [times.map((t) => t / 1000), values, marks];
}

function chart(holder, label, data, bounds) {
  const width = Math.max(280, holder.clientWidth || 600);
  const plot = new uPlot(
    {
      width,
      height: 220,
      scales: { x: { time: true, range: () => bounds } },
      series: [
        {},
        { label, stroke: "#2f6fb0", width: 2, spanGaps: true },
        { label: "would fire", stroke: "#c0392b", width: 0, paths: () => null, points: { show: true, size: 10, fill: "#c0392b" } },
      ],
      axes: [{}, { size: 60 }],
    },
    data,
    holder,
  );
  const resize = new ResizeObserver(() => plot.setSize({ width: Math.max(280, holder.clientWidth), height: 220 }));
  resize.observe(holder);
  return () => {
    resize.disconnect();
    plot.destroy();
  };
}

/**
 * The form in ``holder``. ``run({from, to, device})`` asks the API; ``fires(result)`` lists
 * [{at, device, text}]; ``property(result)`` guesses the property to draw.
 */
export function backtestForm(holder, { run, fires, property = () => "", summary }) {
  const now = Date.now();
  holder.innerHTML = `
    <h2>Backtest</h2>
    <form class="filters backtest">
      <label>From <input name="from" type="datetime-local" step="1" required></label>
      <label>To <input name="to" type="datetime-local" step="1" required></label>
      <label>Device <input name="device" placeholder="PK/DN (optional)"></label>
      <label>Property <input name="property" placeholder="drawn (optional)"></label>
      <button type="submit">Run backtest</button>
    </form>
    <p class="summary" aria-live="polite"></p>
    <div class="timeline"></div>
    <ol class="fires"></ol>`;
  const form = holder.querySelector("form");
  const plot = holder.querySelector(".timeline");
  const list = holder.querySelector(".fires");
  form.from.value = local(now - HOUR);
  form.to.value = local(now + 60_000);
  let destroy = () => {};

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const from = new Date(form.from.value).getTime();
    const to = new Date(form.to.value).getTime();
    try {
      const result = await run({ from, to, device: form.device.value.trim() || undefined });
      const found = fires(result);
      holder.querySelector(".summary").textContent = summary(result);
      list.replaceChildren(
        ...found.map((fire) => {
          const li = document.createElement("li");
          li.textContent = `${when(fire.at)} · ${fire.device || "—"} · ${fire.text}`;
          return li;
        }),
      );
      const device = form.device.value.trim() || found.find((f) => f.device)?.device;
      const identifier = form.property.value.trim() || property(result);
      destroy();
      destroy = () => {};
      plot.replaceChildren();
      if (!device || !identifier) {
        plot.textContent = "Name a device and a property to draw the history.";
        return;
      }
      const [pk, dn] = device.split("/");
      const page = await get(`${devicePath(pk, dn)}/history/${encodeURIComponent(identifier)}` + query({ from, to, limit: 10000 }));
      const data = timeline(page.points, found.map((f) => f.at));
      destroy = chart(plot, `${identifier} of ${device}`, data, [from / 1000, to / 1000]);
    } catch (error) {
      failed(error);
    }
  });
  return () => destroy();
}
