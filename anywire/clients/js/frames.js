// The closed set of protocol v1 frames (docs/protocol.md section 4): validation of
// decoded maps, builders in canonical key order, and batching within the server's limits.
//
// A frame is a plain object whose keys are in canonical order with optional keys left
// out, i.e. exactly its wire map: encoding one needs no conversion.

import { ProtocolError } from "./errors.js";
import { wasFloat } from "./values.js";

/** Longest event or room name, in code points. */
export const MAX_NAME = 200;
/** Frame types that carry `s` and are deduplicated and replayed. */
export const SEQUENCED = new Set(["event", "ack", "join", "leave"]);
const LIMIT = 2 ** 53;

/** Whether `v` is a protocol integer: 0 <= v < 2^53, not a boolean, not a float. */
export function isUint(v) {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v < LIMIT;
}

function missing(obj, key) {
  return obj[key] === undefined || obj[key] === null;
}

function uint(obj, key, t, optional = false) {
  if (optional && missing(obj, key)) return undefined;
  const v = obj[key];
  if (!isUint(v) || wasFloat(obj, key)) {
    throw new ProtocolError(`${t}: field '${key}' is missing or is not an integer in [0, 2^53)`);
  }
  return v;
}

function str(obj, key, t, optional = false) {
  if (optional && missing(obj, key)) return undefined;
  const v = obj[key];
  if (typeof v !== "string") throw new ProtocolError(`${t}: field '${key}' is missing or not a string`);
  return v;
}

/** Number of code points of `s` (names are limited in code points, not UTF-16 units). */
function codePoints(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** Whether `name` is a valid event or room name (1-200 code points). */
export function isName(name) {
  if (typeof name !== "string" || name.length === 0) return false;
  return name.length <= MAX_NAME || codePoints(name) <= MAX_NAME;
}

function name(obj, key, t) {
  const v = str(obj, key, t);
  if (!isName(v)) throw new ProtocolError(`${t}: field '${key}' must be 1-${MAX_NAME} characters`);
  return v;
}

function bool(obj, key, t) {
  const v = obj[key];
  if (typeof v !== "boolean") throw new ProtocolError(`${t}: field '${key}' is missing or not a boolean`);
  return v;
}

function streamPos(v) {
  if (v === undefined || v === null) return undefined;
  if (
    Array.isArray(v) && v.length === 3 && typeof v[0] === "string" && typeof v[1] === "string" &&
    typeof v[2] === "number" && Number.isInteger(v[2]) && !wasFloat(v, 2)
  ) {
    return [v[0], v[1], v[2]];
  }
  throw new ProtocolError("event: field 'o' must be [stream, epoch, offset]");
}

function streams(v) {
  if (v === undefined || v === null) return undefined;
  const bad = () => new ProtocolError("hello: field 'streams' must be a list of [stream, epoch, offset]");
  if (!Array.isArray(v)) throw bad();
  return v.map((item) => {
    let pos;
    try {
      pos = streamPos(item);
    } catch {
      throw bad();
    }
    if (pos === undefined || !isUint(pos[2])) throw bad();
    return pos;
  });
}

function since(v) {
  if (v === undefined || v === null) return undefined;
  if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && isUint(v[1]) && !wasFloat(v, 1)) {
    return [v[0], v[1]];
  }
  throw new ProtocolError("join: field 'since' must be [epoch, offset]");
}

function errObj(v) {
  if (
    v !== null && typeof v === "object" && !Array.isArray(v) && typeof v.code === "string" &&
    (v.message === undefined || typeof v.message === "string")
  ) {
    return { code: v.code, message: v.message ?? "" };
  }
  throw new ProtocolError("ack: field 'err' must be {code: str, message: str}");
}

// -- builders (canonical key order, optional keys omitted) ------------------------------

export const connect = (ticket) => ({ t: "connect", ticket });
export const resume = (ticket, last) => ({ t: "resume", ticket, last });
/** A resume without negotiate (WebSocket only, docs/protocol.md 2.2.1): the session
 * token, the last server seq seen and the credential negotiate would get (null: none). */
export const resumeDirect = (token, last, auth) => (auth ? { t: "resume", token, last, auth } : { t: "resume", token, last });
/** A hello; `streams` (a fresh session only): where each stream it receives without
 * joining starts, as [stream, epoch, offset]; `expiresIn` (a resume without negotiate
 * only, docs/protocol.md 2.2.1): ms until that resume's credential expires (each left
 * out when undefined or null). */
export function hello(sid, recovered, seq, last, streamsValue, expiresIn) {
  const f = { t: "hello", sid, recovered, seq, last };
  if (streamsValue !== undefined && streamsValue !== null) f.streams = streamsValue;
  if (expiresIn !== undefined && expiresIn !== null) f.expires_in = expiresIn;
  return f;
}
export const ping = () => ({ t: "ping" });
export const pong = () => ({ t: "pong" });
export const rx = (n) => ({ t: "rx", n });
export const error = (c, m) => ({ t: "error", c, m });
export const close = (c, m = "") => ({ t: "close", c, m });

/** An event frame; `id`, `r` and `o` are left out when undefined or null. */
export function event(s, e, d, id, r, o) {
  const f = { t: "event", s };
  if (id !== undefined && id !== null) f.id = id;
  f.e = e;
  f.d = d === undefined ? null : d;
  if (r !== undefined && r !== null) f.r = r;
  if (o !== undefined && o !== null) f.o = o;
  return f;
}

/** An ack frame: `d` when ok, else `err` ({code, message}). */
export function ack(s, id, ok, d, err) {
  const f = { t: "ack", s, id, ok };
  if (ok) f.d = d === undefined ? null : d;
  else f.err = err ? { code: err.code, message: err.message ?? "" } : { code: "error", message: "" };
  return f;
}

export function join(s, id, r, meta, sinceValue) {
  const f = { t: "join", s, id, r };
  if (meta !== undefined && meta !== null) f.meta = meta;
  if (sinceValue !== undefined && sinceValue !== null) f.since = [sinceValue[0], sinceValue[1]];
  return f;
}

export const leave = (s, id, r) => ({ t: "leave", s, id, r });
/** In-band refresh (client to server, not sequenced): a fresh credential for the live
 * session, answered by an ack with the same id. */
export const auth = (id, token) => ({ t: "auth", id, token });

/** The same sequenced frame with another sequence number (keys keep their order). */
export function withSeq(frame, s) {
  return { ...frame, s };
}

// -- parsing ------------------------------------------------------------------------------

/** Validates one decoded map and returns the canonical frame. Throws ProtocolError. */
export function parseFrame(obj) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj) || obj instanceof Uint8Array) {
    throw new ProtocolError("a frame must be a map");
  }
  const t = obj.t;
  switch (t) {
    case "event":
      return event(uint(obj, "s", t), name(obj, "e", t), obj.d ?? null, uint(obj, "id", t, true),
        str(obj, "r", t, true), streamPos(obj.o));
    case "ack": {
      const ok = bool(obj, "ok", t);
      return ack(uint(obj, "s", t), uint(obj, "id", t), ok, ok ? obj.d ?? null : undefined,
        ok ? undefined : errObj(obj.err));
    }
    case "rx": return rx(uint(obj, "n", t));
    case "ping": return ping();
    case "pong": return pong();
    case "join":
      return join(uint(obj, "s", t), uint(obj, "id", t), name(obj, "r", t), obj.meta, since(obj.since));
    case "leave": return leave(uint(obj, "s", t), uint(obj, "id", t), name(obj, "r", t));
    case "auth": {
      const token = str(obj, "token", t);
      if (!token) throw new ProtocolError("auth: field 'token' must not be empty");
      return auth(uint(obj, "id", t), token);
    }
    case "connect": return connect(str(obj, "ticket", t));
    case "resume":
      if (obj.ticket === undefined && obj.token !== undefined) {
        return resumeDirect(str(obj, "token", t), uint(obj, "last", t), obj.auth === undefined ? null : str(obj, "auth", t));
      }
      return resume(str(obj, "ticket", t), uint(obj, "last", t));
    case "hello":
      return hello(str(obj, "sid", t), bool(obj, "recovered", t), uint(obj, "seq", t), uint(obj, "last", t),
        streams(obj.streams), uint(obj, "expires_in", t, true));
    case "close": return close(uint(obj, "c", t), str(obj, "m", t, true) ?? "");
    case "error": return error(uint(obj, "c", t), str(obj, "m", t, true) ?? "");
    default:
      throw new ProtocolError(`unknown frame type ${JSON.stringify(typeof t === "string" ? t : String(t))}`);
  }
}

/** Decodes one message (one frame or a batch) into validated frames. Throws ProtocolError. */
export function decodeFrames(codec, data) {
  const obj = codec.decode(data);
  return Array.isArray(obj) ? obj.map(parseFrame) : [parseFrame(obj)];
}

/** The frames up to and including the first `close`, and that close (or null): anything
 * after a close is meaningless, the connection ends there. */
export function splitAtClose(frames) {
  const i = frames.findIndex((f) => f.t === "close");
  return i < 0 ? [frames, null] : [frames.slice(0, i + 1), frames[i]];
}

/** Encodes `frames` into as few messages as `maxBatch` frames and `maxSize` bytes allow,
 * in order. A lone frame is sent as itself, not as a batch of one. Each message comes
 * with `last`, the highest sequence number in it (0 if none). */
export function batches(codec, frames, maxBatch, maxSize) {
  const out = [];
  let group = [];
  let size = 0;
  let last = 0;
  const flush = () => {
    if (group.length) out.push({ body: group.length === 1 ? group[0] : codec.batch(group), last, count: group.length });
  };
  for (const frame of frames) {
    const encoded = codec.encode(frame);
    // A batch costs an array header (<= 5 bytes) and, in JSON, one separator per frame.
    const cost = codec.size(encoded) + 1;
    if (group.length && (group.length >= maxBatch || size + cost + 5 > maxSize)) {
      flush();
      group = [];
      size = 0;
      last = 0;
    }
    group.push(encoded);
    size += cost;
    if (frame.s !== undefined) last = frame.s;
  }
  flush();
  return out;
}

/** Refuses, loudly, an event or room name the server would only answer with an error. */
export function checkName(name, what) {
  if (!isName(name)) throw new TypeError(`${what} name must be a string of 1-${MAX_NAME} characters`);
}

/** The message bodies of batches(). */
export function encodeBodies(codec, frames, maxBatch, maxSize) {
  return batches(codec, frames, maxBatch, maxSize).map((b) => b.body);
}

/** The close code in an HTTP error body (JSON error object, or a close frame / batch
 * holding one), or null. */
export function errorCode(text) {
  let obj;
  try {
    obj = JSON.parse(text);
  } catch {
    return null;
  }
  for (const item of Array.isArray(obj) ? obj : [obj]) {
    if (item === null || typeof item !== "object") continue;
    for (const key of ["code", "c"]) {
      if (Number.isInteger(item[key])) return item[key];
    }
  }
  return null;
}
