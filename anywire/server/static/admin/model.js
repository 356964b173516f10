// The admin page's state: the latest snapshot of each node, what they add up to, and a
// short history of the totals. No DOM and no clock of its own (times are passed in, in
// milliseconds): tests/js/admin_model.test.js runs it under node.

export const TRANSPORTS = ["websocket", "sse", "longpoll"];
const KINDS = [...TRANSPORTS, "detached"];

/** A node not heard from for this many of its intervals has dropped out. */
export const STALE_INTERVALS = 3;
const MIN_STALE_MS = 5000;

export class Model {
  /** @param {{historySize?: number, maxNodes?: number}} [options] */
  constructor({ historySize = 300, maxNodes = 64 } = {}) {
    this.historySize = historySize;
    this.maxNodes = maxNodes;
    /** @type {Map<string, {snap: any, seen: number}>} */
    this.nodes = new Map();
    /** @type {{at: number, counts: Record<string, number>}[]} */
    this.history = [];
  }

  /** Take one node's snapshot, received at `now`; false when it is not one. */
  add(snap, now) {
    if (!snap || typeof snap.node !== "string" || !snap.transports || typeof snap.transports !== "object") {
      return false;
    }
    if (!this.nodes.has(snap.node) && this.nodes.size >= this.maxNodes) return false; // bounded
    this.nodes.set(snap.node, { snap, seen: now });
    return true;
  }

  /** Forget the nodes silent for STALE_INTERVALS intervals (at least 5 s); returns them. */
  prune(now) {
    const gone = [];
    for (const [node, { snap, seen }] of this.nodes) {
      const interval = Number(snap.interval) > 0 ? Number(snap.interval) * 1000 : 2000;
      if (now - seen > Math.max(MIN_STALE_MS, STALE_INTERVALS * interval)) {
        this.nodes.delete(node);
        gone.push(node);
      }
    }
    return gone;
  }

  /** Sessions by transport over every node, and the rooms of every node (a room with
   * members on two nodes counts twice). */
  totals() {
    const counts = Object.fromEntries(KINDS.map((k) => [k, 0]));
    let sessions = 0;
    let rooms = 0;
    for (const { snap } of this.nodes.values()) {
      for (const kind of KINDS) counts[kind] += Number(snap.transports[kind]) || 0;
      sessions += Number(snap.sessions) || 0;
      rooms += Number(snap.rooms && snap.rooms.count) || 0;
    }
    return { sessions, counts, rooms };
  }

  /** The `n` largest rooms over every node (a room's members on each node added up). */
  rooms(n = 10) {
    const sizes = new Map();
    for (const { snap } of this.nodes.values()) {
      for (const r of (snap.rooms && snap.rooms.top) || []) {
        const key = JSON.stringify([r.ns, r.room]);
        const entry = sizes.get(key) || { ns: r.ns, room: r.room, size: 0 };
        entry.size += Number(r.size) || 0;
        sizes.set(key, entry);
      }
    }
    return [...sizes.values()].sort((a, b) => b.size - a.size || (a.room < b.room ? -1 : 1)).slice(0, n);
  }

  /** Every node's activity windows added up, aligned on the newest window's end. */
  activity() {
    let width = 10;
    let end = 0;
    let count = 0;
    for (const { snap } of this.nodes.values()) {
      const a = snap.activity;
      if (!a) continue;
      width = a.width;
      end = Math.max(end, a.end);
      for (const row of Object.values(a.counts)) count = Math.max(count, row.length);
    }
    const counts = {};
    for (const { snap } of this.nodes.values()) {
      const a = snap.activity;
      if (!a) continue;
      const shift = Math.round((end - a.end) / width); // windows this node is behind
      for (const [name, row] of Object.entries(a.counts)) {
        const sum = counts[name] || (counts[name] = new Array(count).fill(0));
        row.forEach((v, i) => {
          const at = i - shift - (row.length - count);
          if (at >= 0 && at < count) sum[at] += Number(v) || 0;
        });
      }
    }
    return { width, end, counts };
  }

  /** Record the totals at `now` for the transports chart (bounded). */
  sample(now) {
    this.history.push({ at: now, counts: this.totals().counts });
    if (this.history.length > this.historySize) this.history.splice(0, this.history.length - this.historySize);
  }

  /** The worst broker state over the nodes: down, degraded, ok (or "none" without nodes). */
  brokerState() {
    const order = ["ok", "degraded", "down"];
    let worst = -1;
    for (const { snap } of this.nodes.values()) {
      const state = snap.broker && snap.broker.state;
      worst = Math.max(worst, order.includes(state) ? order.indexOf(state) : 2);
    }
    return worst < 0 ? "none" : order[worst];
  }
}
