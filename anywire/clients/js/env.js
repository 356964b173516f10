// The outside world the socket uses, injectable for tests: network constructors, timers,
// clock, randomness, storage and the window (online/offline, page visibility).

/** Calls `fn` without a receiver: browser globals such as fetch and setTimeout throw
 * "Illegal invocation" when called as methods of another object. */
const plain = (fn) => (fn ? (...args) => fn(...args) : undefined);

function defaultStorage() {
  try {
    return globalThis.sessionStorage ?? null; // the getter throws in sandboxed frames
  } catch {
    return null;
  }
}

/** Fills in what `env` leaves out from the globals. */
export function resolveEnv(env = {}, storageOption) {
  const g = globalThis;
  return {
    WebSocket: env.WebSocket ?? g.WebSocket,
    EventSource: env.EventSource ?? g.EventSource,
    fetch: plain(env.fetch ?? g.fetch),
    setTimeout: plain(env.setTimeout ?? g.setTimeout),
    clearTimeout: plain(env.clearTimeout ?? g.clearTimeout),
    now: plain(env.now ?? (() => Date.now())),
    random: plain(env.random ?? Math.random),
    storage: storageOption !== undefined ? storageOption : "storage" in env ? env.storage : defaultStorage(),
    window: "window" in env ? env.window : typeof g.window !== "undefined" ? g.window : null,
  };
}

/** Reads a remembered value; storage failures (quota, privacy modes) read as nothing. */
export function recall(storage, key) {
  try {
    return storage ? storage.getItem(key) : null;
  } catch {
    return null;
  }
}

export function remember(storage, key, value) {
  try {
    const done = storage ? storage.setItem(key, value) : null;
    // An AsyncStorage-like store answers with a Promise: its failure is not ours either.
    if (done && typeof done.catch === "function") done.catch(() => {});
  } catch {
    // not remembered: the next page load simply starts from the top of the list
  }
}

/** The transports to report as failed at first: those before the one remembered from an
 * earlier page load (it worked then: start there). A Promise of them with an async store
 * (React Native's AsyncStorage); a store that fails reads as nothing remembered. */
export function failedBefore(storage, key, transports) {
  const pick = (name) => {
    const at = transports.indexOf(name);
    return at > 0 ? transports.slice(0, at) : [];
  };
  const name = recall(storage, key);
  if (name && typeof name.then === "function") return Promise.resolve(name).then(pick, () => []);
  return pick(name);
}
