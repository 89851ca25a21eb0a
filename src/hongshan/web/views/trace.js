// A rule's or a scene's trace as read: its counters on one line, its last error, and the
// last runs, non-runs and failures as JSON under a disclosure.

import { when } from "./listing.js";

const words = (key) => key.replace(/[A-Z]/g, (letter) => ` ${letter.toLowerCase()}`);

/** The trace (``GET /api/rules/ID/trace`` or the scene's) drawn in ``holder``. */
export function showTrace(holder, trace) {
  const counters = trace.counters || {};
  const counted = Object.entries(counters).filter(([, value]) => typeof value === "number");
  holder.innerHTML = `<p class="counters"></p><p class="last-error" hidden></p>
    <details><summary>Last runs, non-runs and failures</summary><pre class="trace"></pre></details>`;
  holder.querySelector(".counters").textContent =
    `${trace.running ? "running" : "not running"} · ` + counted.map(([key, value]) => `${words(key)} ${value}`).join(" · ");
  if (counters.lastError) {
    const last = holder.querySelector(".last-error");
    last.hidden = false;
    last.textContent = `Last error (${when(counters.lastErrorAt)}): ${counters.lastError}`;
  }
  const { counters: _, ...rest } = trace;
  holder.querySelector(".trace").textContent = JSON.stringify(rest, null, 2);
}
