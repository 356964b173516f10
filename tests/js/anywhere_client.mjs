// The real JS client outside the browser (run by tests/js/test_anywhere.py in Node and by
// tests/js/test_runtimes.py in Deno and Bun):
//   node anywhere_client.mjs URL TRANSPORTS PROFILE TOKEN
// TRANSPORTS is a comma-separated list; PROFILE is "node" (the globals node has),
// "rn" (React Native: no EventSource, window, document, sessionStorage; fetch streams) or
// "rn-nostream" (as rn, and fetch cannot stream either). Prints one JSON line with what
// happened; exits non-zero on any failure.
const [url, transports, profile, token] = process.argv.slice(2);

// Applied before the client is imported, so nothing in it can have captured the globals.
const { applyProfile } = await import("./profiles.mjs");
applyProfile(profile);
const { connect } = await import("../../anywire/clients/js/anywire.js");
const { roundTrip } = await import("./roundtrip.mjs");

const deadline = setTimeout(() => {
  console.error(`no result within 20 s: ${JSON.stringify(out)}`);
  process.exit(2);
}, 20000);
// Which of its own globals the runtime brought (Deno has EventSource and sessionStorage,
// Bun neither): the tests check the path each one took.
const out = {
  profile,
  native: { EventSource: typeof globalThis.EventSource === "function", sessionStorage: typeof globalThis.sessionStorage === "object" },
};

// An AsyncStorage-like store (React Native's has this shape): the client must accept it.
const kept = new Map();
const asyncStore = {
  getItem: async (key) => kept.get(key) ?? null,
  setItem: async (key, value) => void kept.set(key, value),
};
const socket = connect({
  url,
  transports: transports.split(","),
  getToken: () => token,
  connectTimeout: 3000,
  storage: profile.startsWith("rn") ? asyncStore : undefined,
});
try {
  await roundTrip(socket, "js-room", profile, out);
  out.storage = [...kept.values()];
  // What the client remembered in the runtime's own sessionStorage (Deno has one).
  if (out.native.sessionStorage) {
    out.session = Object.keys(sessionStorage).filter((k) => k.startsWith("anywire:transport:")).map((k) => sessionStorage.getItem(k));
  }
  if (profile.startsWith("rn")) {
    // A second socket reads the async store: it starts on the transport remembered there.
    const again = connect({ url, transports: [...new Set(["longpoll", ...transports.split(",")])], getToken: () => token, storage: asyncStore });
    await again.ready();
    out.again = again.transport;
    await again.close();
  }
  console.log(JSON.stringify(out));
} finally {
  clearTimeout(deadline);
  await socket.close();
}
