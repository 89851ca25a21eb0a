// The console's shell: who is signed in, the hash routes (#/map, #/devices, #/devices/PK/DN,
// #/alarms, #/rules[/ID], #/scenes[/ID], #/products[/PK], #/people, #/login) that keep an
// operator's place across a reload, the live connection,
// and the banner (and tone) for a critical alarm. Each view is a module whose mount(root,
// context) draws it and returns the function that takes it down.

import { ApiError, get, post, whenSignedOut } from "./api.js";
import { Live } from "./live.js";

const VIEWS = {
  login: () => import("./views/login.js"),
  map: () => import("./views/map.js"),
  devices: () => import("./views/devices.js"),
  device: () => import("./views/device.js"),
  alarms: () => import("./views/alarms.js"),
  rules: () => import("./views/rules.js"),
  scenes: () => import("./views/scenes.js"),
  products: () => import("./views/products.js"),
  people: () => import("./views/people.js"),
};
const ROLES = ["viewer", "operator", "admin"];

const view = document.getElementById("view");
const bar = document.querySelector("header.bar");
const notice = document.getElementById("notice");
let unmount = null;
let user = null;
let mapSettings = null;
let live = null;
let stopAlarmWatch = null;
let rendering = 0;

/** The route of the hash: its name, its path parts and its query. */
export function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(search);
  if (parts[0] === "devices" && parts.length >= 3) return { name: "device", parts, params };
  return { name: VIEWS[parts[0]] ? parts[0] : "map", parts, params };
}

/** Change the current route's query without a reload or a new history entry. */
export function replaceQuery(params) {
  const hash = location.hash.split("?")[0] || "#/map";
  const text = params.toString();
  history.replaceState(null, "", text ? `${hash}?${text}` : hash);
}

/** Show a line to the operator (an error's detail, or what an action did). */
export function say(text, kind = "error") {
  notice.textContent = text;
  notice.dataset.kind = kind;
  notice.hidden = false;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => (notice.hidden = true), kind === "error" ? 10_000 : 4_000);
}

/** An ApiError's detail to the operator; anything else is a fault of ours, logged. */
export function failed(error) {
  if (error instanceof ApiError) {
    if (error.status !== 401) say(error.message);
  } else {
    console.error(error);
    say(String(error));
  }
}

function may(role) {
  return user !== null && ROLES.indexOf(user.role) >= ROLES.indexOf(role);
}

async function signedIn() {
  try {
    const config = await get("/api/console/config");
    user = config.user;
    mapSettings = config.map;
    return true;
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) failed(error);
    return false;
  }
}

function startSession() {
  bar.hidden = false;
  document.getElementById("who").textContent = `${user.name} · ${user.role}`;
  for (const link of document.querySelectorAll("nav a[data-role]")) link.hidden = !may(link.dataset.role);
  if (!live) {
    live = new Live(document.getElementById("live"));
    live.start();
    stopAlarmWatch = watchAlarms();
  }
}

function endSession() {
  user = null;
  bar.hidden = true;
  if (stopAlarmWatch) stopAlarmWatch();
  stopAlarmWatch = null;
  if (live) live.stop();
  live = null;
}

async function render() {
  const turn = ++rendering;
  let current = route();
  if (current.name !== "login" && user === null && !(await signedIn())) {
    current = { name: "login", parts: ["login"], params: new URLSearchParams() };
  }
  if (user !== null) startSession();
  if (turn !== rendering) return; // (another hash change came meanwhile)
  if (unmount) unmount();
  unmount = null;
  // each view draws into a root of its own: one that is still loading when the operator
  // moves on draws into a detached element, never into the next view
  const root = document.createElement("div");
  root.className = "view-root";
  view.replaceChildren(root);
  for (const link of document.querySelectorAll("nav a")) {
    const on = link.dataset.view === current.name || (link.dataset.view === "devices" && current.name === "device");
    if (on) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const module = await VIEWS[current.name]();
  if (turn !== rendering) return;
  const context = { route: current, user, may, live, map: mapSettings, signedIn: afterLogin };
  let stop = null;
  try {
    stop = (await module.mount(root, context)) || null;
  } catch (error) {
    failed(error);
  }
  if (turn !== rendering) {
    if (stop) stop(); // (the operator moved on while it loaded)
    return;
  }
  unmount = stop;
}

async function afterLogin(next) {
  user = null;
  await signedIn();
  const target = next && !next.startsWith("#/login") ? next : "#/map";
  if (location.hash === target) render();
  else location.hash = target;
}

function toLogin() {
  if (route().name === "login") return;
  const back = location.hash || "#/map";
  endSession();
  location.hash = `#/login?next=${encodeURIComponent(back)}`;
}

// -- the open alarms' count, and a banner (and a tone) for a critical one ---------------

function watchAlarms() {
  const counter = document.getElementById("open-alarms");
  let newestCritical = null; // (the id of the newest critical alarm unacknowledged, when read)
  const count = async () => {
    try {
      const [open, critical] = await Promise.all([
        get("/api/alarms?status=ACTIVE&limit=1"),
        get("/api/alarms?status=ACTIVE_UNACK&severity=critical&limit=1"),
      ]);
      counter.textContent = open.total ? String(open.total) : "";
      const newest = critical.items[0];
      // (polling, the banner is for a critical alarm raised since the last read)
      if (newest && newestCritical !== null && newest.id > newestCritical) announce(newest);
      newestCritical = newest ? Math.max(newest.id, newestCritical ?? 0) : (newestCritical ?? 0);
    } catch (error) {
      failed(error);
    }
  };
  count();
  return live.subscribe(
    { topic: "alarms" },
    (message) => {
      count();
      const alarm = alarmOf(message);
      if (alarm.severity === "critical" && alarm.status === "ACTIVE_UNACK") announce(alarm);
    },
    count,
  );
}

/** The alarm a live message tells of: under ``alarm`` (with ``change`` and ``by`` beside it). */
export function alarmOf(message) {
  return message.alarm || message;
}

let announced = null;

function announce(alarm) {
  if (alarm.id === announced) return; // (heard live, then read again)
  announced = alarm.id;
  const banner = document.getElementById("banner");
  document.getElementById("banner-text").textContent =
    `Critical: ${alarm.type} on ${alarm.deviceName} (${alarm.productKey})`;
  banner.hidden = false;
  tone();
}

function tone() {
  try {
    const audio = new AudioContext();
    const beep = audio.createOscillator();
    beep.frequency.value = 880;
    beep.connect(audio.destination);
    beep.start();
    beep.stop(audio.currentTime + 0.25);
    beep.onended = () => audio.close();
  } catch {
    // (no audio until the page was interacted with: the banner says it)
  }
}

document.getElementById("banner-close").addEventListener("click", () => {
  document.getElementById("banner").hidden = true;
});
document.getElementById("sign-out").addEventListener("click", async () => {
  try {
    await post("/api/auth/logout");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) failed(error);
  }
  toLogin();
});

whenSignedOut(toLogin);
window.addEventListener("hashchange", render);
render();
