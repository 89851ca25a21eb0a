// A property's history as a uPlot chart: a time range (1 h to 30 d) and an aggregation per
// bucket (or the raw values), both in the URL.

import { get, query } from "../api.js";

export const RANGES = { "1h": [3_600_000, "1m"], "6h": [21_600_000, "5m"], "24h": [86_400_000, "15m"], "7d": [604_800_000, "1h"], "30d": [2_592_000_000, "6h"] };
export const AGGREGATIONS = ["avg", "min", "max", "last", "raw"];

/** [times in s, values] of the property over the range, as uPlot takes them, and the
 * range's bounds (s) as ``data.bounds``: the chart spans the range asked, not only the values. */
export async function series(devicePath, identifier, range, agg) {
  const [span, every] = RANGES[range] || RANGES["24h"];
  const to = Date.now();
  const from = to - span;
  const path = `${devicePath}/history/${encodeURIComponent(identifier)}`;
  let data;
  if (agg === "raw") {
    const page = await get(path + query({ from, to, limit: 10000 }));
    data = [page.points.map((p) => p[0] / 1000), page.points.map((p) => p[1])];
  } else {
    const found = await get(path + query({ from, to, every, agg }));
    const buckets = found.series[0]?.buckets || [];
    data = [buckets.map((b) => b.start / 1000), buckets.map((b) => b.values[agg] ?? null)];
  }
  data.bounds = [from / 1000, to / 1000];
  return data;
}

/** A chart in ``holder`` (replacing what it had); its width follows the holder's. */
export function draw(holder, label, data) {
  holder.replaceChildren();
  if (!data[0].length) {
    holder.textContent = "No values in this range.";
    return () => {};
  }
  const width = Math.max(280, holder.clientWidth || 600);
  const chart = new uPlot(
    {
      width,
      height: 220,
      scales: { x: { time: true, range: () => data.bounds } },
      series: [{}, { label, stroke: "#2f6fb0", width: 2, spanGaps: false, points: { show: data[0].length < 200 } }],
      axes: [{}, { size: 60 }],
    },
    data,
    holder,
  );
  const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(280, holder.clientWidth), height: 220 }));
  resize.observe(holder);
  return () => {
    resize.disconnect();
    chart.destroy();
  };
}
