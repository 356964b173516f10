// The real client inside a dedicated module Worker (run by tests/browser/test_worker.py).
// A worker has fetch, WebSocket and EventSource but no window, document or sessionStorage:
// the client must connect with storage none and resume a dropped session from here.
// The page posts {transport, sub}; the worker posts back {result} or {error}.
import { connect } from "{{CLIENT_URL}}";

/** Resolves with the next value `register(resolve)` delivers, or rejects after `ms`. */
function next(register, what, ms = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

async function scenario({ transport, sub }) {
  const out = {
    globals: {
      window: typeof window, document: typeof document, sessionStorage: typeof sessionStorage,
      WebSocket: typeof WebSocket, EventSource: typeof EventSource, fetch: typeof fetch,
    },
  };
  const socket = connect({
    transports: [transport],
    connectTimeout: 3000,
    // relative to this script's URL, i.e. the page's origin
    getToken: async () => (await fetch("/token?sub=" + encodeURIComponent(sub))).text(),
  });
  try {
    await socket.ready();
    out.transport = socket.transport;
    out.echo = await socket.call("echo", { hello: "worker" });
    socket.on("double", (n) => n * 2);
    out.asked = await socket.call("ask", { event: "double", data: 21 });

    await socket.join("worker-room");
    let onNews = null;
    socket.on("news", (data) => onNews && onNews(data));
    const news = next((r) => (onNews = r), "a room event");
    await socket.call("to_room", { event: "news", room: "worker-room", data: { n: 1 } });
    out.news = await news;

    const back = next((r) => socket.onConnect(r), "the resume");
    socket.dropConnection();
    const info = await back;
    out.recovered = info.recovered;
    out.resumedOn = info.transport;
    const news2 = next((r) => (onNews = r), "a room event after the resume");
    await socket.call("to_room", { event: "news", room: "worker-room", data: { n: 2 } });
    out.news2 = await news2;
    return out;
  } finally {
    await socket.close();
  }
}

self.onmessage = async (ev) => {
  try {
    self.postMessage({ result: await scenario(ev.data) });
  } catch (err) {
    self.postMessage({ error: `${err.name}: ${err.message}` });
  }
};
