// What both codecs share: the data model (docs/protocol.md 5.1), UTF-8 and base64.
//
// JavaScript has one number type, so a decoder marks the containers in which an
// integral value was written as a float (JSON `1.0`, MessagePack float64): the frame
// parser must refuse `"s": 1.0` like the Python one does. The mark is a non-enumerable
// symbol property listing those keys; application code never sees it.

import { ProtocolError } from "./errors.js";

/** Symbol under which a decoded map or array lists keys whose value was a float. */
export const FLOATS = Symbol("anywire.floats");

/** @param {object} container @param {string|number} key */
export function markFloat(container, key) {
  let set = container[FLOATS];
  if (!set) {
    set = new Set();
    Object.defineProperty(container, FLOATS, { value: set, enumerable: false });
  }
  set.add(key);
}

/** Whether `container[key]` was decoded from a float. */
export function wasFloat(container, key) {
  const set = container[FLOATS];
  return set !== undefined && set.has(key);
}

/** Defines `obj[key] = value` without the `__proto__` setter trap. */
export function setKey(obj, key, value) {
  if (key === "__proto__") {
    Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    obj[key] = value;
  }
}

export const UINT64_MAX = (1n << 64n) - 1n;
export const INT64_MIN = -(1n << 63n);

const SURROGATE = /[\ud800-\udfff]/;

/** Whether `s` is valid Unicode (no lone surrogates): only such strings can be sent.
 * (No regex lookbehind here: Safari before 16.4 cannot even parse one.) */
export function wellFormed(s) {
  if (!SURROGATE.test(s)) return true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c > 0xdbff) return false; // a low surrogate first
    const d = s.charCodeAt(i + 1);
    if (!(d >= 0xdc00 && d <= 0xdfff)) return false; // a high one alone
    i++;
  }
  return true;
}

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** @param {string} s @returns {Uint8Array} */
export function utf8Encode(s) {
  return encoder.encode(s);
}

/** Strict UTF-8 decoding: invalid bytes are a protocol error. */
export function utf8Decode(bytes) {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new ProtocolError("invalid UTF-8");
  }
}

/** Length in UTF-8 bytes of `s`, without encoding it. */
export function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_INDEX = new Int16Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_INDEX[B64.charCodeAt(i)] = i;

/** RFC 4648 base64, standard alphabet, with padding. */
export function base64Encode(bytes) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += B64[n >> 18] + B64[(n >> 12) & 63] + "==";
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + "=";
  }
  return out;
}

/** Strict base64 decoding (length a multiple of 4, padding only at the end, no stray
 * characters); anything else is a protocol error, as in Python's b64decode(validate=True). */
export function base64Decode(text) {
  if (text.length % 4 !== 0) throw new ProtocolError("invalid base64 in $bin");
  let pad = 0;
  if (text.endsWith("==")) pad = 2;
  else if (text.endsWith("=")) pad = 1;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text.charCodeAt(i + j);
      let v = c < 128 ? B64_INDEX[c] : -1;
      if (v < 0) {
        if (c === 61 && i + 4 === text.length && j >= 4 - pad) v = 0;
        else throw new ProtocolError("invalid base64 in $bin");
      }
      n = (n << 6) | v;
    }
    out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

/** Bytes of a binary value (Uint8Array, any ArrayBuffer view, ArrayBuffer), else null. */
export function asBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return null;
}

/** Entries of a map value (a Map with string keys, or a plain object), or null if
 * `value` is not a map. Keys whose value is `undefined` are left out, as JSON.stringify
 * does. Throws TypeError for a non-string Map key. */
export function mapEntries(value) {
  if (value instanceof Map) {
    const out = [];
    for (const [k, v] of value) {
      if (typeof k !== "string") throw new TypeError("map keys must be strings");
      if (v !== undefined) out.push([k, v]);
    }
    return out;
  }
  const out = [];
  for (const k of Object.keys(value)) {
    const v = value[k];
    if (v !== undefined) out.push([k, v]);
  }
  return out;
}

/** Deepest nesting either codec reads or writes (a bound against stack exhaustion). */
export const MAX_DEPTH = 1000;
