// The town's map: the shipped demo district (or the operator's tiles) and every located
// device as a marker coloured by its worst open alarm, else its state; clusters take the
// worst state inside them and show their count; devices at one place spread out on click.
// Filters (product, group, state) and the map's place are in the URL.

import { alarmOf, failed, replaceQuery } from "../app.js";
import { get, query } from "../api.js";

/** Worst first: an alarm's colour beats any state's. */
export const RANK = [
  "critical",
  "major",
  "minor",
  "warning",
  "indeterminate",
  "offline",
  "inactive",
  "disabled",
  "online",
];
const STATES = ["online", "offline", "inactive", "disabled"];

/** What a device's marker shows: its worst open alarm's severity, else its state. */
export function shown(state, worst) {
  return worst || state;
}

function worstOf(statuses) {
  let best = RANK.length - 1;
  for (const status of statuses) best = Math.min(best, RANK.indexOf(status));
  return RANK[best];
}

function icon(status) {
  return L.divIcon({ className: `marker m-${status}`, iconSize: [16, 16], html: "" });
}

function clusterIcon(cluster) {
  const children = cluster.getAllChildMarkers();
  const worst = worstOf(children.map((marker) => marker.options.status));
  const count = cluster.getChildCount();
  const size = count < 100 ? 32 : count < 1000 ? 38 : 44;
  const label = document.createElement("span");
  label.textContent = count.toLocaleString();
  return L.divIcon({
    className: `cluster m-${worst}`,
    iconSize: [size, size],
    html: label,
  });
}

const DISTRICT_STYLE = {
  street: { color: "#b9b2a4", weight: 5, opacity: 0.9 },
  water: { color: "#7fb2d6", weight: 9, opacity: 0.8 },
  block: { color: "#d8d2c4", weight: 1, fillColor: "#ebe6da", fillOpacity: 1 },
  "clinic-grounds": { color: "#d9a6a6", weight: 1, fillColor: "#f3dede", fillOpacity: 1 },
  park: { color: "#9cc79a", weight: 1, fillColor: "#cfe8c8", fillOpacity: 1 },
};

async function baseLayer(map, settings) {
  const credit = { attribution: settings.tileAttribution, maxZoom: 20 };
  if (new URL(settings.tileUrl || "/", location.href).pathname.endsWith(".pmtiles")) {
    // one archive read by HTTP range requests (raster tiles): no tile server needed
    pmtiles.leafletRasterLayer(new pmtiles.PMTiles(settings.tileUrl), credit).addTo(map);
    return;
  }
  if (settings.tileUrl) {
    L.tileLayer(settings.tileUrl, credit).addTo(map);
    return;
  }
  const response = await fetch(settings.district, { credentials: "same-origin" });
  const district = await response.json();
  L.geoJSON(district, {
    style: (feature) => DISTRICT_STYLE[feature.properties.kind] || DISTRICT_STYLE.block,
    pointToLayer: (feature, at) =>
      L.circleMarker(at, { radius: 7, color: "#b03a3a", fillColor: "#fff", fillOpacity: 1, weight: 3 }),
    onEachFeature: (feature, layer) => {
      const { kind, name } = feature.properties;
      if (kind === "street" || kind === "water" || kind === "park" || kind === "clinic") {
        layer.bindTooltip(name, { sticky: kind !== "clinic", permanent: kind === "clinic", direction: "top" });
      }
    },
  }).addTo(map);
  map.attributionControl.addAttribution("Demo district of Hongshan (fictional)");
}

function filterBar(root, params) {
  const bar = document.createElement("form");
  bar.className = "filters";
  bar.setAttribute("aria-label", "Filter devices");
  bar.innerHTML = `
    <label>Product <select name="product"><option value="">all</option></select></label>
    <label>Group <select name="group"><option value="">all</option></select></label>
    <label>State <select name="state"><option value="">all</option>
      ${STATES.map((s) => `<option>${s}</option>`).join("")}</select></label>
    <span class="shown" aria-live="polite"></span>
    <span class="legend">${RANK.map((s) => `<span class="key m-${s}">${s}</span>`).join("")}</span>`;
  root.append(bar);
  const fill = async (select, path, label) => {
    try {
      const items = await get(path);
      for (const item of items.items) {
        const option = document.createElement("option");
        [option.value, option.textContent] = label(item);
        select.append(option);
      }
    } catch (error) {
      failed(error);
    }
    select.value = params.get(select.name) || "";
  };
  bar.state.value = params.get("state") || "";
  return {
    bar,
    ready: Promise.all([
      fill(bar.product, "/api/products?limit=1000", (p) => [p.productKey, `${p.name} (${p.productKey})`]),
      fill(bar.group, "/api/groups?limit=1000", (g) => [g.name, g.name]),
    ]),
  };
}

export async function mount(root, { route, map: settings, live }) {
  const params = route.params;
  root.classList.add("map-view");
  const { bar, ready } = filterBar(root, params);
  const holder = document.createElement("div");
  holder.className = "map";
  holder.setAttribute("aria-label", "Map of devices");
  root.append(holder);

  const [lat, lon, zoom] = (params.get("at") || "").split(",").map(Number);
  const map = L.map(holder, { preferCanvas: false, zoomControl: true, maxZoom: 20 });
  if (Number.isFinite(lat) && Number.isFinite(lon) && Number.isFinite(zoom) && params.get("at")) {
    map.setView([lat, lon], zoom);
  } else {
    map.setView(settings.center, settings.zoom);
  }
  map.on("moveend", () => {
    const at = map.getCenter();
    params.set("at", `${at.lat.toFixed(5)},${at.lng.toFixed(5)},${map.getZoom()}`);
    replaceQuery(params);
  });

  const clusters = L.markerClusterGroup({
    chunkedLoading: true,
    iconCreateFunction: clusterIcon,
    showCoverageOnHover: false,
    spiderfyOnMaxZoom: true,
    maxClusterRadius: 50,
  });
  map.addLayer(clusters);
  const markers = new Map(); // "pk/dn" -> marker
  const shownCount = bar.querySelector(".shown");

  function popup(marker) {
    const { pk, dn, state, worst, open } = marker.options;
    const box = document.createElement("div");
    const link = document.createElement("a");
    link.href = `#/devices/${encodeURIComponent(pk)}/${encodeURIComponent(dn)}`;
    link.textContent = dn;
    const line = document.createElement("div");
    line.textContent = `${pk} · ${state}` + (open ? ` · ${open} open alarm(s), worst ${worst}` : "");
    box.append(link, line);
    return box;
  }

  function place(row) {
    const [pk, dn, lat, lon, state, worst, open] = row;
    const status = shown(state, worst);
    const marker = L.marker([lat, lon], {
      icon: icon(status),
      title: dn,
      alt: `${dn}: ${status}`,
      keyboard: true,
      pk, dn, lat, lon, state, worst, open, status,
    });
    marker.bindPopup(() => popup(marker));
    return marker;
  }

  /** A marker's new state or alarms; its cluster is refreshed by the caller. */
  function restyle(marker, changes) {
    Object.assign(marker.options, changes);
    const status = shown(marker.options.state, marker.options.worst);
    marker.options.status = status;
    marker.options.alt = `${marker.options.dn}: ${status}`;
    marker.setIcon(icon(status));
  }

  /** The devices as they are now: markers added, moved, restyled and removed in place (a
   * poll every 10 s keeps the operator's open popup and spread cluster); ``fresh``: all
   * drawn again (the filters changed). */
  async function load(fresh) {
    const found = await get(
      "/api/map/devices" +
        query({ productKey: bar.product.value, group: bar.group.value, state: bar.state.value }),
    );
    if (fresh) {
      clusters.clearLayers();
      markers.clear();
    }
    const added = [];
    const removed = [];
    const changed = [];
    const seen = new Set();
    for (const row of found.devices) {
      const key = `${row[0]}/${row[1]}`;
      seen.add(key);
      const marker = markers.get(key);
      const [, , lat, lon, state, worst, open] = row;
      if (marker === undefined) {
        added.push(place(row));
        markers.set(key, added[added.length - 1]);
      } else if (marker.options.lat !== lat || marker.options.lon !== lon) {
        // (its own place, not getLatLng(): a spread cluster moves its markers for a while)
        removed.push(marker);
        added.push(place(row));
        markers.set(key, added[added.length - 1]);
      } else if (marker.options.state !== state || marker.options.worst !== worst || marker.options.open !== open) {
        restyle(marker, { state, worst, open });
        changed.push(marker);
      }
    }
    for (const [key, marker] of markers) {
      if (!seen.has(key)) {
        removed.push(marker);
        markers.delete(key);
      }
    }
    if (removed.length) clusters.removeLayers(removed);
    if (added.length) clusters.addLayers(added);
    if (changed.length) clusters.refreshClusters(changed);
    shownCount.textContent = `${markers.size.toLocaleString()} devices`;
  }

  async function reload(fresh = false) {
    try {
      await load(fresh);
    } catch (error) {
      failed(error);
    }
  }

  async function alarmsOf(pk, dn) {
    const marker = markers.get(`${pk}/${dn}`);
    if (!marker) return;
    try {
      const page = await get(
        "/api/alarms" + query({ status: "ACTIVE", productKey: pk, deviceName: dn, limit: 1000 }),
      );
      const worst = worstOf(page.items.map((a) => a.severity));
      restyle(marker, { worst: page.items.length ? worst : null, open: page.items.length });
      clusters.refreshClusters(marker);
    } catch (error) {
      failed(error);
    }
  }

  bar.addEventListener("change", () => {
    for (const name of ["product", "group", "state"]) {
      if (bar[name].value) params.set(name, bar[name].value);
      else params.delete(name);
    }
    replaceQuery(params);
    reload(true);
  });
  bar.addEventListener("submit", (event) => event.preventDefault());

  await ready;
  await baseLayer(map, settings).catch(failed);
  await reload(true);
  const stops = [
    live.subscribe(
      { topic: "status" },
      (message) => {
        const marker = markers.get(message.device);
        if (marker && marker.options.state !== "disabled") {
          restyle(marker, { state: message.online ? "online" : "offline" });
          clusters.refreshClusters(marker);
        }
      },
      () => reload(),
    ),
    live.subscribe({ topic: "alarms" }, (message) => {
      const alarm = alarmOf(message);
      alarmsOf(alarm.productKey, alarm.deviceName);
    }),
  ];
  return () => {
    for (const stop of stops) stop();
    map.remove();
    root.classList.remove("map-view");
  };
}
