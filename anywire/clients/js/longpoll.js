// Long-polling transport: held GETs downstream, POST upstream.
//
// Each poll carries ack=N, the last server sequence number received in order; the server
// forgets what it covers and sends everything after it again, so a lost response loses
// nothing. Polls are the heartbeat: there are no ping frames on this transport.

import { CODECS } from "./codec.js";
import { ProtocolError } from "./errors.js";
import { SEQUENCED, decodeFrames } from "./frames.js";
import { Transport, refused, withQuery } from "./transport.js";

export class LongPollTransport extends Transport {
  get name() {
    return "longpoll";
  }

  get confirmsWrites() {
    return true; // upstream POSTs answer 204 once every frame was processed
  }

  get sendsRx() {
    return false; // every poll acknowledges with ack=N
  }

  silenceLimit() {
    // Every answer, 204 included, restarts the socket's timer, and each poll is aborted a
    // ping_timeout after poll_window: this is only a backstop.
    return this.neg.poll_window + 2 * this.neg.ping_timeout;
  }

  open(first) {
    this._ack = 0;
    this._controllers = new Set();
    const params = { ticket: first.ticket };
    if (first.t === "resume") params.last = first.last;
    this._run(withQuery(this.base + this.offer.url, params));
  }

  async _run(firstUrl) {
    const pollUrl = this.base + this.offer.url;
    // The server answers within poll_window (204 when idle): a poll still open a
    // ping_timeout later means the connection is dead.
    const limit = this.neg.poll_window + this.neg.ping_timeout;
    let first = true;
    try {
      while (!this.closed) {
        const url = first ? firstUrl : withQuery(pollUrl, { ack: this._ack });
        const headers = first ? {} : { "X-Anywire-Token": this.neg.token };
        if (!first && this.pacer) await this.pacer.take(); // each poll costs a flood token
        if (this.closed) return;
        const res = await this._get(url, headers, limit);
        if (this.closed) return;
        if (res.status === 204) {
          this._alive();
          continue;
        }
        if (res.status === 200) {
          const frames = await this._decode(res);
          if (this.closed) return;
          if (first) {
            first = false;
            this._opened();
          }
          this._deliver(frames);
          continue;
        }
        if (res.status === 410) {
          // A batch holding a close frame: ends the transport with the server's code.
          const err = await refused(res, "poll");
          this._end(err.code, err.message);
          return;
        }
        const err = this._paced(await refused(res, "poll"));
        this._end(err.code, err.message);
        return;
      }
    } catch (err) {
      if (err instanceof ProtocolError) this._end(null, `receive failed: ${err.message}`);
      else this._end(null, `poll failed: ${err && err.message}`);
    }
  }

  async _get(url, headers, limit) {
    const controller = typeof AbortController === "function" ? new AbortController() : null;
    if (controller) this._controllers.add(controller);
    const timer = this.env.setTimeout(() => controller && controller.abort(), limit);
    try {
      return await this.env.fetch(url, {
        method: "GET",
        headers,
        cache: "no-store",
        signal: controller ? controller.signal : undefined,
      });
    } finally {
      this.env.clearTimeout(timer);
      if (controller) this._controllers.delete(controller);
    }
  }

  async _decode(res) {
    // The body is in the negotiated codec, and says so in its Content-Type.
    const type = (res.headers && res.headers.get && res.headers.get("content-type")) || "";
    const codec = CODECS[type.includes("msgpack") ? "msgpack" : "json"];
    const body = new Uint8Array(await res.arrayBuffer());
    const frames = decodeFrames(codec, body);
    // Acknowledge as far as frames arrived in order; the socket's own check catches gaps,
    // and an ack past a gap would make the server forget the missing frames.
    for (const f of frames) {
      if (f.t === "hello") this._ack = f.seq;
      else if (SEQUENCED.has(f.t) && f.s === this._ack + 1) this._ack += 1;
    }
    return frames;
  }

  _write(body) {
    return this._post(body);
  }

  _teardown() {
    for (const c of this._controllers || []) c.abort();
  }
}
