// What this JavaScript runtime can carry: browsers, WebViews, Web Workers, Node 20+,
// React Native, Deno and Bun differ in which network globals they have. The socket offers
// the server only the transports the runtime can open, so negotiate never picks one that
// cannot work here.

import { canStreamFetch } from "./fetchsse.js";

/** Whether `name` can run with `env` (see env.js resolveEnv): WebSocket needs the
 * WebSocket global; SSE needs EventSource or a streaming fetch (fetchsse.js); long-polling
 * and every upstream POST need fetch. */
export function canCarry(env, name) {
  if (typeof env.fetch !== "function") return false; // negotiate itself is a fetch
  if (name === "websocket") return typeof env.WebSocket === "function";
  if (name === "sse") return typeof env.EventSource === "function" || canStreamFetch(env);
  return name === "longpoll";
}

/** `transports` (the option) less those this runtime cannot carry; a TypeError naming
 * what is missing when none is left. */
export function usableTransports(env, transports) {
  const usable = transports.filter((name) => canCarry(env, name));
  if (usable.length === 0) {
    throw new TypeError(
      `none of the transports ${transports.join(", ")} can run here: ` +
        "pass env: {fetch, WebSocket, EventSource} (this runtime lacks the globals)",
    );
  }
  return usable;
}
