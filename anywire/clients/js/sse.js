// Server-Sent Events transport: an EventSource (or fetchsse.js) downstream (always JSON), POST upstream.
//
// EventSource's own reconnection is never used (a ticket is single-use and Last-Event-ID
// means nothing here): on any error the stream is closed and the socket reconnects and
// resumes through its own backoff. A buffering proxy may deliver nothing at all, not even
// headers: the socket's connect timeout (no hello in time) turns that into a fallback.

import { jsonCodec } from "./json.js";
import { ProtocolError } from "./errors.js";
import { decodeFrames } from "./frames.js";
import { Transport, withQuery } from "./transport.js";
import { FetchEventSource } from "./fetchsse.js";

export class SSETransport extends Transport {
  get name() {
    return "sse";
  }

  get confirmsWrites() {
    return true; // upstream POSTs answer 204 once every frame was processed
  }

  open(first) {
    const params = { ticket: first.ticket };
    if (first.t === "resume") params.last = first.last;
    let es;
    try {
      const url = withQuery(this.base + this.offer.url, params);
      // No EventSource (Node 20, React Native): the same stream over a streaming fetch.
      es = this.env.EventSource ? new this.env.EventSource(url) : new FetchEventSource(url, this.env.fetch);
    } catch (err) {
      queueMicrotask(() => this._end(null, `cannot open event stream: ${err.message}`));
      return;
    }
    this.es = es;
    es.onopen = () => {
      if (!this.closed && this.onopen) this.onopen();
    };
    es.onmessage = (ev) => {
      if (this.closed) return;
      let frames;
      try {
        frames = decodeFrames(jsonCodec, ev.data);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
        this._end(null, `receive failed: ${err.message}`);
        return;
      }
      // Upstream POSTs need the session to exist: write only once the hello is in.
      if (!this.ready) this._opened();
      this._deliver(frames, ev.data.length);
    };
    es.onerror = () => this._end(null, "event stream failed or ended");
  }

  _opened() {
    this.ready = true;
    this._pump();
  }

  _write(body) {
    return this._post(body);
  }

  _teardown() {
    const es = this.es;
    if (!es) return;
    es.onopen = es.onmessage = es.onerror = null;
    es.close();
  }
}
