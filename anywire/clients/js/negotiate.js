// Negotiate (docs/protocol.md section 3): one POST before every connection attempt,
// with a fresh credential, bounded by the connect timeout; its answer validated.

import { CODECS, own } from "./codec.js";
import { FORBIDDEN, UNAUTHORIZED, shouldReconnect } from "./closecodes.js";
import { errorCode } from "./frames.js";
import { rxRule } from "./rxrule.js";

/** The protocol's defaults for what a negotiate answer may leave out (ms, bytes, frames). */
export const LIMITS = {
  ping_interval: 20000, ping_timeout: 10000, poll_window: 20000, resume_window: 30000,
  ack_timeout: 10000, max_frame_size: 65536, max_batch: 100, flood_rate: 200, flood_burst: 1000,
};

/** Longest Retry-After honoured, in ms (a larger one is read as this). */
export const MAX_RETRY_AFTER = 600000;

/** A failure of one connection attempt or of negotiate; `terminal` stops the socket;
 * `retryAfter` (ms) is the wait a busy server asked for: the socket never retries sooner. */
export function failure(message, code = null, terminal = false, retryAfter = null) {
  const err = new Error(message);
  err.code = code;
  err.terminal = terminal;
  err.retryAfter = retryAfter;
  return err;
}

/** Marks `err` (a transport's failure to open) with why it failed, as the `failures`
 * field of the next negotiate reports it: "upgrade", "timeout", "closed", "buffered". */
export function failedFor(why, err) {
  err.why = why;
  return err;
}

/** The wait in ms a 503 or 429 negotiate asks for (session caps, negotiate rate): its
 * `Retry-After` header (seconds or an HTTP date; the server exposes it to cross-origin
 * pages), else the `retry_after` seconds of its JSON body; null without either. */
export function retryAfter(status, header, text, now = Date.now()) {
  if (status !== 429 && status !== 503) return null;
  let ms = null;
  if (typeof header === "string" && header.trim() !== "") {
    const seconds = Number(header);
    const date = Date.parse(header);
    if (Number.isFinite(seconds)) ms = seconds * 1000;
    else if (Number.isFinite(date)) ms = date - now;
  }
  if (ms === null) {
    try {
      const value = JSON.parse(text).retry_after;
      if (typeof value === "number" && Number.isFinite(value)) ms = value * 1000;
    } catch {
      ms = null;
    }
  }
  return ms === null ? null : Math.min(Math.max(ms, 0), MAX_RETRY_AFTER);
}

/** Validates a 200 negotiate answer (docs/protocol.md 3.3); durations stay in ms. */
export function parseNegotiated(obj) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj)) {
    throw new Error("negotiate answer is not a JSON object");
  }
  if (obj.v !== undefined && obj.v !== 1) throw failure(`unsupported protocol version ${obj.v}`, 4502, true);
  const text = (key, fallback) => {
    const v = obj[key] ?? fallback;
    if (typeof v !== "string" || !v) throw new Error(`negotiate answer: '${key}' missing or not a string`);
    return v;
  };
  if (!Array.isArray(obj.transports)) throw new Error("negotiate answer: 'transports' must be a list");
  const transports = obj.transports.map((item) => {
    if (!item || typeof item.name !== "string" || typeof item.url !== "string") {
      throw new Error("negotiate answer: malformed transport offer");
    }
    const codec = item.codec ?? obj.codec ?? "json";
    if (!own(CODECS, codec)) throw new Error(`negotiate answer: unknown codec ${codec}`);
    return { name: item.name, url: item.url, codec };
  });
  const neg = {
    sid: text("sid"), token: text("token"), ticket: text("ticket"), codec: text("codec", "json"),
    resumable: obj.resumable === true, transports, send_url: text("send_url", "/anywire/send"),
  };
  for (const [key, fallback] of Object.entries(LIMITS)) {
    const v = obj[key];
    if (v === undefined || v === null) neg[key] = fallback;
    else if (typeof v !== "number" || !(v > 0)) throw new Error(`negotiate answer: '${key}' must be a positive number`);
    else neg[key] = v;
  }
  // When the credential expires (ms), for the in-band refresh (refresh.js); null: never.
  // The receipt rule (docs/protocol.md 6.4); without it (an older server), every 16 frames.
  neg.rx = rxRule(obj.rx);
  neg.expires_in = Number.isInteger(obj.expires_in) && obj.expires_in >= 0 ? obj.expires_in : null;
  // The server takes a resume without negotiate on the WebSocket (wsresume.js, 2.2.1).
  neg.ws_resume = obj.ws_resume === true;
  return neg;
}

/** What the offers and `send_url` of `neg` are appended to. They are absolute paths on
 * the server's origin (docs/protocol.md 3.3), with the prefix of a mount the server knows
 * (Starlette `Mount`, uvicorn `--root-path`): under the endpoint prefix the socket
 * negotiated at, they go on the origin of `base` (`https://host/api` + `/api/anywire/ws`
 * must not double the prefix); otherwise a proxy strips a prefix the server never sees,
 * and they go on `base` itself. A relative `base` ("" = the page) has no origin to take. */
export function transportBase(base, path, neg) {
  const m = /^([a-z][a-z0-9+.-]*:\/\/[^/?#]+)(\/[^?#]*)?/i.exec(base);
  const origin = m ? m[1] : "";
  const prefix = ((m ? m[2] ?? "" : base) + path).replace(/\/+$/, "");
  return neg.send_url.startsWith(prefix + "/") ? origin : base;
}

/** The negotiate request body (docs/protocol.md 3.1): `failed` transports, the `resume`
 * token of the session to resume (or null), `since`, every stream position the client
 * holds as [stream, epoch, offset] (left out when there is none), so a fresh session
 * catches up on what the client missed, and `failures`, why transports failed since the
 * previous negotiate ({name: reason}, left out when empty; for the server's metrics). */
export function negotiateBody(options, failed, resume, since, failures = {}) {
  const body = {
    v: 1,
    ns: options.namespace,
    transports: options.transports.slice(),
    codecs: [...new Set([options.codec, "json"])],
    failed: failed.slice(),
  };
  if (resume !== null) body.resume = resume;
  if (since.length) body.since = since;
  if (Object.keys(failures).length) body.failures = { ...failures };
  return body;
}

/** POSTs `body` to `url` with `Authorization: Bearer <getToken()>` and returns the
 * validated answer. Everything, getToken() included, is bounded by `timeout` ms. Throws
 * a failure: `terminal` for 401/403, a terminal close code or a protocol version this
 * client does not speak; otherwise the socket retries after a backoff. */
export async function negotiate(env, url, body, getToken, timeout) {
  const controller = typeof AbortController === "function" ? new AbortController() : null;
  let timer;
  const expired = new Promise((_, reject) => {
    timer = env.setTimeout(() => {
      if (controller) controller.abort();
      reject(failure(`negotiate: no answer within ${timeout} ms`));
    }, timeout);
  });
  const attempt = request(env, url, body, getToken, controller);
  attempt.catch(() => {}); // after a timeout its late failure has no one to tell
  try {
    return await Promise.race([expired, attempt]);
  } finally {
    env.clearTimeout(timer);
  }
}

async function request(env, url, body, getToken, controller) {
  let token = null;
  if (getToken) {
    try {
      token = await getToken();
    } catch (err) {
      throw failure(`getToken() failed: ${err && err.message}`);
    }
  }
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  let text;
  try {
    res = await env.fetch(url, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      cache: "no-store",
      signal: controller ? controller.signal : undefined,
    });
    text = await res.text();
  } catch (err) {
    throw failure(`negotiate failed: ${err && err.message}`);
  }
  if (res.status !== 200) {
    const code = errorCode(text);
    let message = "";
    try {
      message = JSON.parse(text).message ?? "";
    } catch {
      message = "";
    }
    const what = `negotiate refused: HTTP ${res.status} ${message}`.trim();
    if (res.status === 401) throw failure(what, code ?? UNAUTHORIZED, true);
    if (res.status === 403) throw failure(what, code ?? FORBIDDEN, true);
    const header = res.headers && typeof res.headers.get === "function" ? res.headers.get("retry-after") : null;
    throw failure(what, code, code !== null && !shouldReconnect(code), retryAfter(res.status, header, text));
  }
  try {
    return parseNegotiated(JSON.parse(text));
  } catch (err) {
    if (err.terminal) throw err;
    throw failure(`bad negotiate answer: ${err.message}`);
  }
}
