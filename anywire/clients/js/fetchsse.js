// An EventSource over a streaming fetch, for runtimes without EventSource (Node 20,
// React Native with a streaming fetch polyfill, Web Workers in some engines). It has only
// what sse.js uses: onopen, onmessage (unnamed events, the only kind anywire sends),
// onerror and close(); it never reconnects by itself, as sse.js wants.

/** True when `fetch` can hand over a response body as a stream: ReadableStream and
 * TextDecoder exist and Response has `body`. React Native's fetch (whatwg-fetch) has no
 * `body`; a streaming polyfill installed in its place adds it. */
export function canStreamFetch(env) {
  const g = globalThis;
  return (
    typeof env.fetch === "function" &&
    typeof g.ReadableStream === "function" &&
    typeof g.TextDecoder === "function" &&
    typeof g.Response === "function" &&
    "body" in g.Response.prototype
  );
}

/** Feeds text chunks in, calls `onData(data)` per complete event (text/event-stream). */
export class EventStreamParser {
  constructor(onData) {
    this.onData = onData;
    this.rest = "";
    this.data = [];
    this.type = "";
    this.afterCR = false;
  }

  push(text) {
    if (!text) return; // the decoder holds a partial character: nothing to parse yet
    // A chunk that ended in "\r" ended its line; a "\n" starting the next one is the
    // same line end (CRLF cut in two), not an empty line.
    if (this.afterCR && text.startsWith("\n")) text = text.slice(1);
    this.afterCR = text.endsWith("\r");
    const lines = (this.rest + text).split(/\r\n|\r|\n/);
    this.rest = lines.pop(); // a line not ended yet
    for (const line of lines) this._line(line);
  }

  _line(line) {
    if (line === "") {
      const data = this.data;
      const type = this.type;
      this.data = [];
      this.type = "";
      if (data.length && (type === "" || type === "message")) this.onData(data.join("\n"));
      return;
    }
    if (line.startsWith(":")) return; // a comment: padding or keep-alive
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.type = value;
  }
}

export class FetchEventSource {
  /** Starts reading `url` with `fetch` at once, like `new EventSource(url)`. */
  constructor(url, fetch) {
    this.onopen = this.onmessage = this.onerror = null;
    this._controller = typeof AbortController === "function" ? new AbortController() : null;
    this._closed = false;
    this._read(url, fetch);
  }

  async _read(url, fetch) {
    try {
      const res = await fetch(url, {
        headers: { Accept: "text/event-stream" },
        cache: "no-store",
        signal: this._controller?.signal,
      });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      // React Native's fetch resolves with no body stream: no SSE here.
      if (!res.body || typeof res.body.getReader !== "function") throw new Error("fetch gives no body stream");
      if (this._closed) return;
      if (this.onopen) this.onopen();
      const reader = res.body.getReader();
      this._reader = reader;
      const decoder = new TextDecoder();
      const parser = new EventStreamParser((data) => {
        if (!this._closed && this.onmessage) this.onmessage({ data });
      });
      for (;;) {
        const { done, value } = await reader.read();
        if (this._closed) return;
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
      }
      throw new Error("event stream ended");
    } catch {
      if (!this._closed && this.onerror) this.onerror();
    }
  }

  close() {
    this._closed = true;
    try {
      if (this._controller) this._controller.abort();
      else if (this._reader) this._reader.cancel();
    } catch {
      // already done
    }
  }
}
