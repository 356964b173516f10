// Runtime profiles for the node tests of the real client (imported before the client).
// "node": the globals node has. "rn": React Native (no EventSource, window, document,
// sessionStorage; fetch streams, as with a streaming fetch polyfill). "rn-nostream": as rn,
// with React Native's own fetch (whatwg-fetch): whole bodies only, no `response.body`.
export function applyProfile(profile) {
  if (!profile.startsWith("rn")) return;
  for (const name of ["EventSource", "window", "document", "sessionStorage", "localStorage"]) delete globalThis[name];
  if (profile !== "rn-nostream") return;
  // ReadableStream stays: Node's own fetch needs it to send request bodies.
  const nodeFetch = globalThis.fetch;
  globalThis.fetch = async (...args) => {
    const res = await nodeFetch(...args);
    return {
      ok: res.ok, status: res.status, headers: res.headers, body: null,
      text: () => res.text(), json: () => res.json(), arrayBuffer: () => res.arrayBuffer(),
    };
  };
  globalThis.Response = class Response {};
}
