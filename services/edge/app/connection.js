// The app's WebSocket: requests by id, events, and reconnection with
// backoff (docs/protocol.md sections 1 to 5).
import { ServerError } from "./util.js";

// Connection is one WebSocket with requests by id and reconnection.
export class Connection {
  constructor(token, { onEvent, onUp, onDown, onFatal }) {
    Object.assign(this, { token, onEvent, onUp, onDown, onFatal });
    this.pending = new Map();
    this.seq = 0;
    this.attempt = 0;
    this.everOpened = false;
    this.stopped = false;
  }

  open() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}/ws?access_token=${encodeURIComponent(this.token)}`);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => { opened = true; this.everOpened = true; this.attempt = 0; };
    ws.onmessage = (m) => this.receive(m.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      for (const p of this.pending.values()) p.reject(new ServerError("error", { code: "unavailable", message: "the connection was lost" }));
      this.pending.clear();
      if (this.stopped) return;
      if (e.code === 4001) return this.onFatal("Your token expired. Paste a new one.");
      if (!opened && !this.everOpened) return this.onFatal("Could not connect: the token was refused, or the server is not reachable.");
      if (tokenExpired(this.token)) return this.onFatal("Your token expired. Paste a new one.");
      this.attempt++;
      const delay = Math.min(5000, 300 * 2 ** Math.min(this.attempt, 5)) * (0.75 + Math.random() / 2);
      this.onDown(e.code, this.attempt);
      this.timer = setTimeout(() => this.open(), delay);
    };
  }

  receive(text) {
    let f;
    try { f = JSON.parse(text); } catch { return; }
    if (f.id && this.pending.has(f.id)) {
      const p = this.pending.get(f.id);
      this.pending.delete(f.id);
      if (f.type === "ack" || f.type === "pong") p.resolve(f.data || {});
      else p.reject(new ServerError(f.type, f.data));
      return;
    }
    if (f.type === "session") this.onUp(f.data);
    this.onEvent(f.type, f.data || {});
  }

  // request sends a command with an id and resolves with its ack data.
  request(type, data, timeout = 10000) {
    return new Promise((resolve, reject) => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
        reject(new ServerError("error", { code: "unavailable", message: "not connected; try again in a moment" }));
        return;
      }
      const id = "r" + ++this.seq;
      const timer = setTimeout(() => { this.pending.delete(id); reject(new ServerError("error", { code: "unavailable", message: `${type}: no reply` })); }, timeout);
      this.pending.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.ws.send(JSON.stringify({ id, type, data }));
    });
  }

  // send sends a command without an id: errors come back as events.
  send(type, data) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type, data }));
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }
}

export function tokenExpired(token) {
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims.exp === "number" && claims.exp * 1000 <= Date.now();
  } catch {
    return false;
  }
}
