// The MessagePack codec (docs/protocol.md 5.3), hand-written: no dependencies.
// Writes the canonical form (shortest int/str/array/map headers, float64 for floats);
// reads every valid width; refuses non-string map keys, extension types other than the
// timestamp (read as float seconds), invalid UTF-8 and trailing bytes.

import { ProtocolError } from "./errors.js";
import {
  INT64_MIN, MAX_DEPTH, UINT64_MAX, asBytes, mapEntries, markFloat, setKey, utf8Decode,
  utf8Encode, wellFormed,
} from "./values.js";

/** Largest message decoded (server messages may be batches well above max_frame_size). */
export const MAX_MESSAGE = 16 * 1024 * 1024;

const ASCII = /^[\x00-\x7f]*$/;

class Writer {
  constructor() {
    this.buf = new Uint8Array(256);
    this.view = new DataView(this.buf.buffer);
    this.n = 0;
  }

  room(k) {
    if (this.n + k <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.n + k) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.n));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(b) {
    this.room(1);
    this.buf[this.n++] = b;
  }

  head(b, size, value) {
    this.room(1 + size);
    this.buf[this.n++] = b;
    if (size === 1) this.view.setUint8(this.n, value);
    else if (size === 2) this.view.setUint16(this.n, value);
    else if (size === 4) this.view.setUint32(this.n, value);
    this.n += size;
  }

  bytes(b) {
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }

  int(v) {
    // v: a safe integer Number or a BigInt within the 64-bit range.
    if (typeof v === "bigint") {
      if (v >= -(2n ** 53n) + 1n && v <= 2n ** 53n - 1n) return this.int(Number(v));
      this.room(9);
      if (v >= 0n) {
        this.buf[this.n++] = 0xcf;
        this.view.setBigUint64(this.n, v);
      } else {
        this.buf[this.n++] = 0xd3;
        this.view.setBigInt64(this.n, v);
      }
      this.n += 8;
      return;
    }
    if (v >= 0) {
      if (v < 128) return this.u8(v);
      if (v < 256) return this.head(0xcc, 1, v);
      if (v < 65536) return this.head(0xcd, 2, v);
      if (v < 2 ** 32) return this.head(0xce, 4, v);
      this.room(9);
      this.buf[this.n++] = 0xcf;
      this.view.setUint32(this.n, Math.floor(v / 2 ** 32));
      this.view.setUint32(this.n + 4, v >>> 0);
      this.n += 8;
      return;
    }
    if (v >= -32) return this.u8(v & 0xff);
    if (v >= -128) {
      this.room(2);
      this.buf[this.n++] = 0xd0;
      this.view.setInt8(this.n++, v);
      return;
    }
    if (v >= -32768) {
      this.room(3);
      this.buf[this.n++] = 0xd1;
      this.view.setInt16(this.n, v);
      this.n += 2;
      return;
    }
    if (v >= -(2 ** 31)) {
      this.room(5);
      this.buf[this.n++] = 0xd2;
      this.view.setInt32(this.n, v);
      this.n += 4;
      return;
    }
    this.room(9);
    this.buf[this.n++] = 0xd3;
    this.view.setBigInt64(this.n, BigInt(v));
    this.n += 8;
  }

  sized(len, fix, fixMax, b8, b16, b32) {
    if (fix !== null && len < fixMax) this.u8(fix | len);
    else if (b8 !== null && len < 256) this.head(b8, 1, len);
    else if (len < 65536) this.head(b16, 2, len);
    else this.head(b32, 4, len);
  }

  value(v, depth) {
    if (depth > MAX_DEPTH) throw new TypeError("value nested too deeply");
    switch (typeof v) {
      case "string": {
        if (v.length < 64 && ASCII.test(v)) {
          // Most keys and names: write the bytes directly, no TextEncoder call.
          this.sized(v.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
          this.room(v.length);
          for (let i = 0; i < v.length; i++) this.buf[this.n++] = v.charCodeAt(i);
          return;
        }
        if (!wellFormed(v)) throw new TypeError("string with a lone surrogate cannot be sent");
        const b = utf8Encode(v);
        this.sized(b.length, 0xa0, 32, 0xd9, 0xda, 0xdb);
        this.bytes(b);
        return;
      }
      case "number":
        if (!Number.isFinite(v)) throw new TypeError(`${v} cannot be sent (not finite)`);
        if (Number.isSafeInteger(v)) return this.int(v);
        this.room(9);
        this.buf[this.n++] = 0xcb;
        this.view.setFloat64(this.n, v);
        this.n += 8;
        return;
      case "boolean":
        return this.u8(v ? 0xc3 : 0xc2);
      case "bigint":
        if (v < INT64_MIN || v > UINT64_MAX) throw new TypeError(`${v} is outside the 64-bit range`);
        return this.int(v);
      case "undefined":
        return this.u8(0xc0);
      case "object": {
        if (v === null) return this.u8(0xc0);
        const bytes = asBytes(v);
        if (bytes) {
          this.sized(bytes.length, null, 0, 0xc4, 0xc5, 0xc6);
          this.bytes(bytes);
          return;
        }
        if (Array.isArray(v)) {
          this.sized(v.length, 0x90, 16, null, 0xdc, 0xdd);
          for (const item of v) this.value(item, depth + 1);
          return;
        }
        if (typeof v.toJSON === "function") return this.value(v.toJSON(), depth + 1);
        const entries = mapEntries(v);
        this.sized(entries.length, 0x80, 16, null, 0xde, 0xdf);
        for (const [k, item] of entries) {
          this.value(k, depth + 1);
          this.value(item, depth + 1);
        }
        return;
      }
      default:
        throw new TypeError(`a ${typeof v} cannot be sent`);
    }
  }

  result() {
    return this.buf.slice(0, this.n);
  }
}

/** Strict UTF-8 decoding of a short string, without TextDecoder's per-call cost. */
function shortString(b) {
  let out = "";
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    if (c < 0x80) {
      out += String.fromCharCode(c);
      i += 1;
      continue;
    }
    // Multi-byte: leave validation (overlongs, surrogates, ranges) to the real decoder.
    return utf8Decode(b);
  }
  return out;
}

class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.i = 0;
  }

  need(k) {
    if (this.i + k > this.b.length) throw new ProtocolError("malformed MessagePack: truncated");
  }

  u(size) {
    this.need(size);
    const at = this.i;
    this.i += size;
    if (size === 1) return this.view.getUint8(at);
    if (size === 2) return this.view.getUint16(at);
    if (size === 4) return this.view.getUint32(at);
    const hi = this.view.getUint32(at);
    const lo = this.view.getUint32(at + 4);
    return hi < 2 ** 21 ? hi * 2 ** 32 + lo : this.view.getBigUint64(at);
  }

  s(size) {
    this.need(size);
    const at = this.i;
    this.i += size;
    if (size === 1) return this.view.getInt8(at);
    if (size === 2) return this.view.getInt16(at);
    if (size === 4) return this.view.getInt32(at);
    const big = this.view.getBigInt64(at);
    return big >= -(2n ** 53n) + 1n && big <= 2n ** 53n - 1n ? Number(big) : big;
  }

  take(n) {
    this.need(n);
    const out = this.b.subarray(this.i, this.i + n);
    this.i += n;
    return out;
  }

  str(n) {
    const b = this.take(n);
    return n <= 64 ? shortString(b) : utf8Decode(b);
  }

  count(n, min) {
    // Every element needs at least `min` bytes: refuse absurd counts before allocating.
    if (n * min > this.b.length - this.i) throw new ProtocolError("malformed MessagePack: truncated");
    return n;
  }

  array(n, depth) {
    this.count(n, 1);
    const arr = new Array(n);
    for (let k = 0; k < n; k++) arr[k] = this.value(depth + 1, arr, k);
    return arr;
  }

  map(n, depth) {
    this.count(n, 2);
    const obj = {};
    for (let k = 0; k < n; k++) {
      const key = this.value(depth + 1, undefined, undefined);
      if (typeof key !== "string") throw new ProtocolError("malformed MessagePack: map key is not a string");
      setKey(obj, key, this.value(depth + 1, obj, key));
    }
    return obj;
  }

  ext(size) {
    this.need(size + 1);
    const type = this.view.getInt8(this.i++);
    const at = this.i;
    this.i += size;
    if (type !== -1) throw new ProtocolError(`malformed MessagePack: extension type ${type} is not allowed`);
    // The timestamp extension, read as float seconds since the epoch (as the server does).
    if (size === 4) return this.view.getUint32(at);
    if (size === 8) {
      const hi = this.view.getUint32(at);
      const lo = this.view.getUint32(at + 4);
      return (hi % 4) * 2 ** 32 + lo + Math.floor(hi / 4) / 1e9;
    }
    if (size === 12) {
      const nanos = this.view.getUint32(at);
      return Number(this.view.getBigInt64(at + 4)) + nanos / 1e9;
    }
    throw new ProtocolError("malformed MessagePack: bad timestamp size");
  }

  float(v, into, key) {
    if (Number.isInteger(v) && into !== undefined) markFloat(into, key);
    return v;
  }

  value(depth, into, key) {
    if (depth > MAX_DEPTH) throw new ProtocolError("malformed MessagePack: nesting too deep");
    const b = this.u(1);
    if (b < 0x80) return b;
    if (b < 0x90) return this.map(b & 0x0f, depth);
    if (b < 0xa0) return this.array(b & 0x0f, depth);
    if (b < 0xc0) return this.str(b & 0x1f);
    if (b >= 0xe0) return b - 256;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.take(this.u(1)).slice();
      case 0xc5: return this.take(this.u(2)).slice();
      case 0xc6: return this.take(this.u(4)).slice();
      case 0xc7: return this.ext(this.u(1));
      case 0xc8: return this.ext(this.u(2));
      case 0xc9: return this.ext(this.u(4));
      case 0xca: {
        this.need(4);
        const v = this.view.getFloat32(this.i);
        this.i += 4;
        return this.float(v, into, key);
      }
      case 0xcb: {
        this.need(8);
        const v = this.view.getFloat64(this.i);
        this.i += 8;
        return this.float(v, into, key);
      }
      case 0xcc: return this.u(1);
      case 0xcd: return this.u(2);
      case 0xce: return this.u(4);
      case 0xcf: return this.u(8);
      case 0xd0: return this.s(1);
      case 0xd1: return this.s(2);
      case 0xd2: return this.s(4);
      case 0xd3: return this.s(8);
      case 0xd4: return this.ext(1);
      case 0xd5: return this.ext(2);
      case 0xd6: return this.ext(4);
      case 0xd7: return this.ext(8);
      case 0xd8: return this.ext(16);
      case 0xd9: return this.str(this.u(1));
      case 0xda: return this.str(this.u(2));
      case 0xdb: return this.str(this.u(4));
      case 0xdc: return this.array(this.u(2), depth);
      case 0xdd: return this.array(this.u(4), depth);
      case 0xde: return this.map(this.u(2), depth);
      case 0xdf: return this.map(this.u(4), depth);
      default: throw new ProtocolError(`malformed MessagePack: reserved byte 0x${b.toString(16)}`);
    }
  }
}

/** Encodes a value to MessagePack bytes. Throws TypeError for values that cannot be sent. */
export function encodeMsgpack(value) {
  const w = new Writer();
  w.value(value, 0);
  return w.result();
}

/** Decodes exactly one MessagePack object (no trailing bytes). Throws ProtocolError. */
export function decodeMsgpack(data) {
  if (typeof data === "string") throw new ProtocolError("MessagePack messages must be binary");
  const bytes = asBytes(data);
  if (!bytes) throw new ProtocolError("MessagePack messages must be binary");
  if (bytes.length > MAX_MESSAGE) throw new ProtocolError("message too large", 4503);
  const r = new Reader(bytes);
  let value;
  try {
    value = r.value(0, undefined, undefined);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(`malformed MessagePack: ${err && err.message}`);
  }
  if (r.i !== bytes.length) throw new ProtocolError("malformed MessagePack: trailing data");
  return value;
}

function header(n) {
  if (n < 16) return Uint8Array.of(0x90 | n);
  if (n < 65536) return Uint8Array.of(0xdc, n >> 8, n & 255);
  return Uint8Array.of(0xdd, n >>> 24, (n >> 16) & 255, (n >> 8) & 255, n & 255);
}

/** The MessagePack codec: encode() gives a Uint8Array (a WebSocket binary message). */
export const msgpackCodec = Object.freeze({
  name: "msgpack",
  binary: true,
  contentType: "application/msgpack",
  encode: encodeMsgpack,
  decode: decodeMsgpack,
  /** Joins encoded frames into one batch (an array header, then the frames). */
  batch(parts) {
    const head = header(parts.length);
    let size = head.length;
    for (const p of parts) size += p.length;
    const out = new Uint8Array(size);
    out.set(head, 0);
    let at = head.length;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  },
  size(encoded) {
    return encoded.length;
  },
});
