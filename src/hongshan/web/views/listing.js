// A paged list as every list of the API answers it ({items, total, limit, offset}): a table
// of the columns asked, Previous/Next, and "1–50 of 120" — the rules, scenes, products,
// users, keys and audit views all show their lists through it. A list's search and page kept
// in the route's query (keptSearch), so that a reload shows the same — the devices, rules,
// scenes and products lists keep theirs. A page past the end (a stale URL, items deleted
// since) shows the last page that exists instead, and the URL says that page.

import { failed, replaceQuery } from "../app.js";
import { get, query } from "../api.js";

export const PAGE = 50;

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
 * A search form's fields (``names``, the form's controls named as in the query) and a list's
 * offset, kept in the route's query ``params`` (``#/rules?q=lamp&offset=50``): the form is
 * filled from it at once (fill a select's options first); ``offset`` is the page to show
 * first; ``remember(offset)`` writes the form's values and the offset back (an empty one
 * left out), with no reload and no new history entry.
 */
export function keptSearch(form, params, names) {
  for (const name of names) form[name].value = params.get(name) || "";
  const asked = Number(params.get("offset"));
  return {
    offset: Number.isSafeInteger(asked) && asked > 0 ? asked : 0,
    remember(offset) {
      const values = names.map((name) => [name, form[name].value.trim()]);
      for (const [key, value] of [...values, ["offset", offset ? String(offset) : ""]]) {
        if (value) params.set(key, value);
        else params.delete(key);
      }
      replaceQuery(params);
    },
  };
}

/**
 * The offset to show of a list of ``total`` items when ``offset`` was asked: itself, or,
 * past the end (a stale URL, items deleted since), the last page that exists (0: nothing).
 */
export function existingOffset(offset, total) {
  return offset < total ? offset : Math.max(0, Math.ceil(total / PAGE) - 1) * PAGE;
}

/**
 * A table of ``path``'s items in ``holder``: ``columns`` [[heading, item => content]],
 * ``filters()`` the query's other fields; ``kept`` (a keptSearch), where the search and the
 * page are kept: the first page shown is its offset, and each read remembers the search
 * and the page. Returns ``show(fromStart)`` to read it again.
 */
export function pagedTable(holder, { path, columns, filters = () => ({}), noun = "items", kept = null }) {
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
  let offset = kept ? kept.offset : 0;
  let latest = 0; // (a read answered after a later one is not shown)

  async function show(fromStart = false) {
    if (fromStart) offset = 0;
    const turn = ++latest;
    if (kept) kept.remember(offset);
    try {
      const page = await get(path + query({ ...filters(), limit: PAGE, offset }));
      if (turn !== latest) return;
      if (offset > 0 && offset >= page.total) {
        offset = existingOffset(offset, page.total); // (the URL too: a reload shows it)
        return show();
      }
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
