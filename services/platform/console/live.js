// The notifier's WebSocket (`/notifications/ws`), one per signed-in tab.
//
// Frames are JSON `{type, data, cursor?}`. Feed frames (message.posted,
// user.mentioned, channel.joined) carry a cursor: after a drop we reconnect
// with `?since=<last cursor>` and get exactly the frames we missed.
// `room.updated` frames have no cursor and are never replayed, so pages refetch
// their state on every "ready" (session.ready) and apply frames on top.

const CLOSE_UNAUTHORIZED = 4401; // no, bad, expired or revoked token: sign in again
const CLOSE_BAD_CURSOR = 4400; // malformed cursor, or ahead of the feed
const CLOSE_TOO_FAR_BEHIND = 4410; // the cursor is older than the replay limit
const MAX_BACKOFF_SECONDS = 30;

export class Live {
  constructor() {
    this.listeners = new Map(); // type → Set of functions
    this.socket = null;
    this.cursor = null; // of the last frame that had one
    this.attempt = 0;
    this.timer = null;
    this.token = null;
    this.state = "offline";
    this.sessions = 0; // session.ready frames since start()
    this.onOnline = () => this.reconnectNow();
  }

  /**
   * Listen for a frame type ("room.updated", "message.posted", …) or for
   * "ready" ({resumed, first}: resumed false means feed frames may have been
   * missed, refetch state; first: the first session since start()),
   * "state" ("connecting" | "live" | "reconnecting" | "offline") and
   * "unauthorized". Answers a function that stops listening.
   */
  on(type, listener) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(listener);
    return () => this.listeners.get(type).delete(listener);
  }

  emit(type, data) {
    for (const listener of this.listeners.get(type) || []) {
      try {
        listener(data);
      } catch (error) {
        console.error(`live: a ${type} listener failed`, error);
      }
    }
  }

  start(token) {
    this.stop();
    this.token = token;
    this.cursor = null;
    this.attempt = 0;
    this.sessions = 0;
    window.addEventListener("online", this.onOnline);
    this.connect();
  }

  stop() {
    window.removeEventListener("online", this.onOnline);
    clearTimeout(this.timer);
    this.token = null;
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, "signed out");
    }
    this.setState("offline");
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.emit("state", state);
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // The token goes in the first frame, never in the URL (URLs end up in logs).
    const query = new URLSearchParams();
    if (this.cursor !== null) query.set("since", this.cursor);
    const search = query.toString();
    return `${scheme}://${location.host}/notifications/ws${search ? `?${search}` : ""}`;
  }

  connect() {
    if (!this.token) return;
    this.setState(this.attempt === 0 ? "connecting" : "reconnecting");
    const resuming = this.cursor !== null;
    const socket = new WebSocket(this.url());
    this.socket = socket;
    const token = this.token;
    socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "auth", token })));
    socket.addEventListener("message", (event) => {
      if (socket !== this.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame.cursor !== undefined && frame.cursor !== null) this.cursor = String(frame.cursor);
      if (frame.type === "session.ready") {
        this.attempt = 0;
        this.setState("live");
        this.sessions += 1;
        this.emit("ready", { resumed: resuming, first: this.sessions === 1, ...frame.data });
        return;
      }
      this.emit(frame.type, frame.data);
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket) return; // stopped, or replaced
      this.socket = null;
      if (event.code === CLOSE_UNAUTHORIZED) {
        this.setState("offline");
        this.emit("unauthorized", event.reason);
        return;
      }
      if (event.code === CLOSE_BAD_CURSOR || event.code === CLOSE_TOO_FAR_BEHIND) {
        this.cursor = null; // start afresh; "ready" with resumed=false makes pages refetch
      }
      this.scheduleReconnect();
    });
  }

  /** Exponential back-off with jitter: ~1 s, 2 s, 4 s … at most 30 s. */
  scheduleReconnect() {
    if (!this.token) return;
    this.setState("reconnecting");
    const ceiling = Math.min(MAX_BACKOFF_SECONDS, 2 ** this.attempt);
    const delay = ceiling * (0.5 + Math.random() / 2);
    this.attempt += 1;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay * 1000);
  }

  reconnectNow() {
    if (!this.token || this.socket) return;
    clearTimeout(this.timer);
    this.connect();
  }
}
