// Live updates over the WebSocket API (/api/ws, authenticated by the session cookie), and
// polling every 10 s in its place while the socket cannot connect: a view subscribes with a
// topic, a narrowing (device, product or group) and two callbacks — one for each message,
// one to re-read what it shows — and never knows which of the two is running.

const POLL_MS = 10_000;
const RETRY_MS = [1_000, 2_000, 5_000, 10_000, 30_000];

export class Live {
  constructor(statusElement) {
    this.status = statusElement;
    this.subs = new Map(); // id -> {spec, onMessage, poll}
    this.next = 1;
    this.socket = null;
    this.open = false;
    this.failures = 0;
    this.pollTimer = null;
    this.retryTimer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pollTimer);
    this.pollTimer = null;
    this.open = false; // (the views' unsubscribes that follow send nothing)
    if (this.socket) this.socket.close();
  }

  /** Subscribe; the returned function unsubscribes. */
  subscribe(spec, onMessage, poll) {
    const id = `s${this.next++}`;
    this.subs.set(id, { spec, onMessage, poll });
    if (this.open) this.sendSubscribe(id);
    return () => {
      this.subs.delete(id);
      if (this.open && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ op: "unsubscribe", id }));
      }
    };
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    let socket;
    try {
      socket = new WebSocket(`${scheme}://${location.host}/api/ws`);
    } catch {
      this.down();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.open = true;
      this.failures = 0;
      clearInterval(this.pollTimer);
      this.pollTimer = null;
      this.show("live");
      // (each subscription's "subscribed" re-reads what changed while it was not live)
      for (const id of this.subs.keys()) this.sendSubscribe(id);
    });
    socket.addEventListener("message", (event) => this.dispatch(event.data));
    socket.addEventListener("close", () => {
      this.open = false;
      this.socket = null;
      this.down();
    });
    // ("error" is followed by "close")
  }

  down() {
    if (this.stopped) return;
    this.show("polling");
    if (this.pollTimer === null) {
      this.pollTimer = setInterval(() => {
        for (const sub of this.subs.values()) sub.poll?.();
      }, POLL_MS);
    }
    const wait = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), wait);
  }

  sendSubscribe(id) {
    const { spec } = this.subs.get(id);
    this.socket.send(JSON.stringify({ op: "subscribe", id, ...spec }));
  }

  dispatch(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    // a frame is one message, or several in order: {"type":"batch","items":[…]}
    const messages = frame?.type === "batch" && Array.isArray(frame.items) ? frame.items : [frame];
    for (const message of messages) this.handle(message);
  }

  handle(message) {
    if (message?.type === "subscribed") {
      // live from now on: what changed before (since the view's first read, or while the
      // socket was down) is read once more, so nothing falls between the two
      this.subs.get(message.id)?.poll?.();
      return;
    }
    if (message?.type === "error") {
      console.warn("live:", message.detail);
      return;
    }
    const sub = this.subs.get(message?.sub);
    if (sub) sub.onMessage(message);
  }

  show(state) {
    if (!this.status) return;
    this.status.textContent = state;
    this.status.dataset.state = state;
    this.status.title =
      state === "live" ? "Live updates over the WebSocket" : "No live socket: re-read every 10 s";
  }
}
