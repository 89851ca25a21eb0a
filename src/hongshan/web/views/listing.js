// A paged list as every list of the API answers it ({items, total, limit, offset}): a table
// of the columns asked, Previous/Next, and "1–50 of 120" — the rules, scenes, products,
// users, keys and audit views all show their lists through it.

import { failed } from "../app.js";
import { get, query } from "../api.js";

const PAGE = 50;

/** A cell's content: a node as it is, anything else as text ("—" for nothing). */
function content(value) {
  if (value instanceof Node) return value;
  return value === undefined || value === null || value === "" ? "—" : String(value);
}

/** A link to a hash route. */
export function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  return a;
}

/** A button that runs ``action`` and reports its failure. */
export function button(label, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
    } catch (error) {
      failed(error);
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

export const when = (ms) => (ms ? new Date(ms).toLocaleString() : "—");

/**
 * A table of ``path``'s items in ``holder``: ``columns`` [[heading, item => content]],
 * ``filters()`` the query's other fields. Returns ``show(fromStart)`` to read it again.
 */
export function pagedTable(holder, { path, columns, filters = () => ({}), noun = "items" }) {
  holder.innerHTML = `
    <table class="list"><thead><tr></tr></thead><tbody></tbody></table>
    <nav class="pages" aria-label="Pages">
      <button type="button" data-step="-1">Previous</button>
      <span class="total" aria-live="polite"></span>
      <button type="button" data-step="1">Next</button>
    </nav>`;
  const head = holder.querySelector("thead tr");
  for (const [heading] of columns) {
    const th = document.createElement("th");
    th.textContent = heading;
    head.append(th);
  }
  const body = holder.querySelector("tbody");
  const total = holder.querySelector(".total");
  const [previous, next] = holder.querySelectorAll(".pages button");
  let offset = 0;
  let latest = 0; // (a read answered after a later one is not shown)

  async function show(fromStart = false) {
    if (fromStart) offset = 0;
    const turn = ++latest;
    try {
      const page = await get(path + query({ ...filters(), limit: PAGE, offset }));
      if (turn !== latest) return;
      body.replaceChildren(
        ...page.items.map((item) => {
          const row = document.createElement("tr");
          for (const [, cell] of columns) {
            const td = document.createElement("td");
            td.append(content(cell(item)));
            row.append(td);
          }
          return row;
        }),
      );
      const last = Math.min(offset + PAGE, page.total);
      total.textContent = page.total ? `${offset + 1}–${last} of ${page.total}` : `no ${noun}`;
      previous.disabled = offset === 0;
      next.disabled = last >= page.total;
    } catch (error) {
      failed(error);
    }
  }
  for (const b of [previous, next]) {
    b.addEventListener("click", () => {
      offset = Math.max(0, offset + Number(b.dataset.step) * PAGE);
      show();
    });
  }
  return show;
}
