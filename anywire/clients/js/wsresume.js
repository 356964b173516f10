// Resume over the WebSocket without negotiate (docs/protocol.md 2.2.1): one connection
// per resume instead of a negotiate and then the upgrade. A mirror of
// anywire/clients/python/wsresume.py.
//
// Tried first in a reconnect round when the socket holds a session, its last connection
// was a WebSocket and the server's last negotiate answer said `ws_resume`. Whatever goes
// wrong short of a refused credential sends the round on to negotiate, as before: a
// server without the support, a proxy that breaks it or a session the server no longer
// has costs one connection, never a loop. A refusal that says when to come back (load
// shedding, the address's negotiate rate, the session's flood budget: `retry_after=N`
// at the end of the close reason) is a failure carrying that wait, which the socket's
// reconnect loop honours like a negotiate's Retry-After.

import { FLOOD, FORBIDDEN, SHUTDOWN, UNAUTHORIZED } from "./closecodes.js";
import * as F from "./frames.js";
import { MAX_RETRY_AFTER, failure } from "./negotiate.js";
import { RESUME_COST } from "./pacer.js";

const LATE = Symbol("getToken() too late");

/** The wait in ms a close reason ends with (`...; retry_after=N`, seconds), or null. */
export function retryAfterIn(reason) {
  const found = /retry_after=(\d{1,6})\s*$/.exec(reason || "");
  return found ? Math.min(Number(found[1]) * 1000, MAX_RETRY_AFTER) : null;
}

/** Whether the next resume of `socket` may skip negotiate: it also wants no other ping
 * interval than the one it was granted (only negotiate can ask for one: after idle cuts
 * the socket asks for a shorter one, liveness.js). */
export function canResumeDirectly(socket) {
  const neg = socket._neg;
  const asked = socket.idleCuts.requestMs();
  return Boolean(
    socket.options.wsResume && neg && neg.ws_resume && socket.peer.sid !== null &&
      socket._lastTransport === "websocket" && neg.transports.some((o) => o.name === "websocket") &&
      (asked === null || asked === neg.ping_interval),
  );
}

/** Resumes the socket's session over a new WebSocket with no negotiate, bounded by the
 * connect timeout: the link (as socket._open() gives it) or null (negotiate instead, in
 * the same round). Throws a terminal failure for a refused credential, and one carrying
 * `retryAfter` when the server said when to come back. */
export async function directResume(socket) {
  if (!canResumeDirectly(socket)) return null;
  const neg = socket._neg;
  const offer = neg.transports.find((o) => o.name === "websocket");
  let auth = null;
  const getToken = socket.options.getToken;
  if (getToken) {
    // What negotiate would be sent: a fresh credential, bounded by connectTimeout as
    // negotiate bounds it (a getToken() that hangs must not hold the reconnect forever).
    let timer;
    const late = new Promise((resolve) => (timer = socket.env.setTimeout(() => resolve(LATE), socket.options.connectTimeout)));
    try {
      auth = await Promise.race([Promise.resolve(getToken()), late]);
    } catch {
      return null; // negotiate asks again, and says what failed
    } finally {
      socket.env.clearTimeout(timer);
    }
    if (auth === LATE) return null; // no credential in time: negotiate says so
  }
  await socket.pacer.take(RESUME_COST); // what the server charges a resume
  let link;
  try {
    link = await socket._open(offer, neg, null, F.resumeDirect(neg.token, socket.peer.inLast, auth));
  } catch (err) {
    const code = err.code ?? null;
    if (code === UNAUTHORIZED || code === FORBIDDEN) throw failure(err.message, code, true);
    const wait = code === SHUTDOWN || code === FLOOD ? retryAfterIn(err.message) : null;
    if (wait !== null) throw failure(err.message, code, false, wait);
    return null;
  }
  if (!link.hello.recovered || link.hello.sid !== neg.sid) {
    link.transport.close(); // (a server must not answer it so): negotiate
    return null;
  }
  return { ...link, neg: renewed(neg, link.hello) };
}

/** `neg` with the credential lifetime the direct resume's hello gave (as negotiate's
 * answer gives it: absent, the credential does not expire). Negotiate's older figure
 * would be wrong for the credential just sent: getToken() may hand out shorter-lived
 * ones since, or expiring ones where the first did not expire. */
function renewed(neg, hello) {
  return { ...neg, expires_in: hello.expires_in ?? null };
}
