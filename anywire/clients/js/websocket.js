// WebSocket transport: text messages for JSON, binary for MessagePack.
//
// Browsers report every failure as close code 1006 with no detail (a refused upgrade, a
// proxy that strips it, a dead network look alike), so the socket decides by timing:
// a close before the hello is a failed transport (fall back); after it, a drop (resume).

import { ProtocolError } from "./errors.js";
import { decodeFrames } from "./frames.js";
import { Transport, wsUrl } from "./transport.js";

export class WebSocketTransport extends Transport {
  get name() {
    return "websocket";
  }

  open(first) {
    let ws;
    try {
      ws = new this.env.WebSocket(wsUrl(this.base, this.offer.url));
    } catch (err) {
      queueMicrotask(() => this._end(null, `cannot open WebSocket: ${err.message}`));
      return;
    }
    this.ws = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      this.upgraded = true; // a close before this is a refused upgrade (failures.why)
      if (this.closed) return;
      // The first message goes out before anything the socket queued (nothing, normally).
      ws.send(this.codec.encode(first));
      this._opened();
    };
    ws.onmessage = (ev) => {
      if (this.closed) return;
      let frames;
      try {
        frames = decodeFrames(this.codec, ev.data);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        // A malformed message: this connection is done; resuming on a new one cures it.
        this._end(null, `receive failed: ${err.message}`);
        return;
      }
      this._deliver(frames, typeof ev.data === "string" ? ev.data.length : ev.data.byteLength ?? 0);
    };
    ws.onerror = () => {}; // always followed by onclose, which carries the code
    ws.onclose = (ev) => this._end(ev.code ?? 1006, ev.reason ?? "");
  }

  async _write(body) {
    if (this.ws.readyState !== 1) {
      const err = new Error("WebSocket not open");
      err.code = null;
      throw err;
    }
    this.ws.send(body);
  }

  _teardown() {
    const ws = this.ws;
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      // Without an anywire close frame the server keeps the session resumable.
      ws.close();
    } catch {
      // already closing
    }
  }
}
