// Devices: a searchable, paged list (name prefix, product, state), its query in the URL.

import { failed } from "../app.js";
import { get, query } from "../api.js";
import { existingOffset, keptSearch, PAGE } from "./listing.js";

export async function mount(root, { route }) {
  root.innerHTML = `
    <h1>Devices</h1>
    <form class="filters" role="search">
      <label>Name starts with <input name="q" type="search" autocomplete="off"></label>
      <label>Product <select name="product"><option value="">all</option></select></label>
      <label>State <select name="state"><option value="">all</option>
        <option>online</option><option>offline</option><option>inactive</option><option>disabled</option>
      </select></label>
      <button type="submit">Search</button>
    </form>
    <table class="list">
      <thead><tr><th>Device</th><th>Nickname</th><th>Product</th><th>State</th><th>Last online</th></tr></thead>
      <tbody></tbody>
    </table>
    <nav class="pages" aria-label="Pages">
      <button type="button" data-step="-1">Previous</button>
      <span class="total" aria-live="polite"></span>
      <button type="button" data-step="1">Next</button>
    </nav>`;
  const form = root.querySelector("form");
  const body = root.querySelector("tbody");
  const total = root.querySelector(".total");
  const [previous, next] = root.querySelectorAll(".pages button");
  const products = new Map();
  try {
    for (const product of (await get("/api/products?limit=1000")).items) {
      products.set(product.productKey, product.name);
      const option = document.createElement("option");
      option.value = product.productKey;
      option.textContent = `${product.name} (${product.productKey})`;
      form.product.append(option);
    }
  } catch (error) {
    failed(error);
  }
  const kept = keptSearch(form, route.params, ["q", "product", "state"]); // (its options filled)
  let offset = kept.offset;

  async function show() {
    try {
      const page = await get(
        "/api/devices" +
          query({
            namePrefix: form.q.value.trim(),
            productKey: form.product.value,
            state: form.state.value,
            limit: PAGE,
            offset,
          }),
      );
      if (offset > 0 && offset >= page.total) {
        offset = existingOffset(offset, page.total); // (the last page that exists)
        kept.remember(offset);
        return show();
      }
      body.replaceChildren(
        ...page.items.map((device) => {
          const row = document.createElement("tr");
          const link = document.createElement("a");
          link.href = `#/devices/${encodeURIComponent(device.productKey)}/${encodeURIComponent(device.deviceName)}`;
          link.textContent = device.deviceName;
          const cells = [
            link,
            device.nickname,
            products.get(device.productKey) || device.productKey,
            device.state,
            device.lastOnlineAt ? new Date(device.lastOnlineAt).toLocaleString() : "—",
          ];
          for (const content of cells) {
            const cell = document.createElement("td");
            cell.append(content);
            row.append(cell);
          }
          row.querySelectorAll("td")[3].className = `state s-${device.state}`;
          return row;
        }),
      );
      const last = Math.min(offset + PAGE, page.total);
      total.textContent = page.total ? `${offset + 1}–${last} of ${page.total}` : "no devices";
      previous.disabled = offset === 0;
      next.disabled = last >= page.total;
    } catch (error) {
      failed(error);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    offset = 0;
    kept.remember(offset);
    show();
  });
  form.addEventListener("change", () => form.requestSubmit());
  for (const button of [previous, next]) {
    button.addEventListener("click", () => {
      offset = Math.max(0, offset + Number(button.dataset.step) * PAGE);
      kept.remember(offset);
      show();
    });
  }
  await show();
}
