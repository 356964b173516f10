// The real client inside a dedicated module Worker (run by tests/browser/test_worker.py).
// A worker has fetch, WebSocket and EventSource but no window, document or sessionStorage:
// the client must connect with storage none and resume a dropped session from here.
// The page posts {transport, sub}; the worker posts back {result} or {error}.
import { connect } from "{{CLIENT_URL}}";
import { roundTrip } from "/roundtrip.mjs";

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
    await roundTrip(socket, "worker-room", "worker", out);
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
