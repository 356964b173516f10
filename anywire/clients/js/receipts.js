// The socket's receipts on a transport that carries rx frames (WebSocket, SSE): after
// each message it feeds the message's size to the rule (rxrule.js), sends an rx if one
// is due, and arms a timer for the rule's time limit, so the last frames of a burst are
// acknowledged although no further message comes. A mirror of
// anywire/clients/python/receipts.py. Long-poll needs none of it: every poll says ack=.

export class ReceiptSender {
  /** @param {object} env resolved environment (now, setTimeout, clearTimeout) @param {object} peer ClientPeer */
  constructor(env, peer) {
    this.env = env;
    this.peer = peer;
    this._t = null;
    this._seen = 0;
    this._timer = null;
    this._deadline = null;
  }

  /** A message was processed on transport `t`. */
  afterMessage(t) {
    if (t !== this._t) {
      this.stop();
      this._t = t;
      this._seen = 0;
    }
    this.peer.receivedBytes(t.receivedBytes - this._seen);
    this._seen = t.receivedBytes;
    this._check();
  }

  /** Cancels the timer (the transport is over, or the socket closed). */
  stop() {
    if (this._timer !== null) this.env.clearTimeout(this._timer);
    this._timer = null;
    this._deadline = null;
  }

  _check() {
    const t = this._t;
    if (t === null || t.closed) {
      this.stop();
      return;
    }
    const rx = this.peer.rxDue(false, this.env.now());
    if (rx) t.send([rx]);
    this._arm();
  }

  _arm() {
    const deadline = this.peer.rxDeadline();
    if (this._timer !== null && deadline === this._deadline) return; // already set for it
    this.stop();
    if (deadline === null) return;
    this._deadline = deadline;
    this._timer = this.env.setTimeout(() => {
      this._timer = null;
      this._deadline = null;
      this._check();
    }, Math.max(0, deadline - this.env.now()));
  }
}
