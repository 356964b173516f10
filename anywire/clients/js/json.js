// The JSON codec (docs/protocol.md 5.2): compact UTF-8 text, non-ASCII written as is,
// binary values as {"$bin": base64}. Written by hand rather than with JSON.parse and
// JSON.stringify because the wire rules need what those cannot give:
// * floats are written like Python's repr (1e-07, 1e+16), so both ends produce the
//   very same bytes for one frame (the golden vectors pin them);
// * `1.0` is a float, not the integer 1: the frame parser refuses it where a uint goes;
// * integers beyond 2^53 are read exactly (as BigInt) instead of being rounded;
// * 1e400, NaN and lone surrogate escapes are malformed, not Infinity or broken text.

import { ProtocolError } from "./errors.js";
import {
  INT64_MIN, MAX_DEPTH, UINT64_MAX, asBytes, base64Decode, base64Encode, mapEntries,
  markFloat, setKey, utf8Decode, utf8Length, wellFormed,
} from "./values.js";

/** Python's repr() of a finite float: shortest round-trip digits, exponent form below
 * 1e-4 and from 1e16, always with a fraction or an exponent. */
export function formatFloat(x) {
  let [mant, exp] = x.toExponential().split("e");
  const e = Number(exp);
  const neg = mant[0] === "-";
  if (neg) mant = mant.slice(1);
  const digits = mant.replace(".", "");
  let out;
  if (e < -4 || e >= 16) {
    const frac = digits.length > 1 ? "." + digits.slice(1) : "";
    out = digits[0] + frac + "e" + (e < 0 ? "-" : "+") + String(Math.abs(e)).padStart(2, "0");
  } else if (e < 0) {
    out = "0." + "0".repeat(-e - 1) + digits;
  } else if (digits.length <= e + 1) {
    out = digits + "0".repeat(e + 1 - digits.length) + ".0";
  } else {
    out = digits.slice(0, e + 1) + "." + digits.slice(e + 1);
  }
  return neg ? "-" + out : out;
}

function encodeValue(v, depth) {
  if (depth > MAX_DEPTH) throw new TypeError("value nested too deeply");
  switch (typeof v) {
    case "string":
      if (!wellFormed(v)) throw new TypeError("string with a lone surrogate cannot be sent");
      return JSON.stringify(v);
    case "number":
      if (!Number.isFinite(v)) throw new TypeError(`${v} cannot be sent (not finite)`);
      return Number.isSafeInteger(v) ? String(v === 0 ? 0 : v) : formatFloat(v);
    case "boolean":
      return v ? "true" : "false";
    case "bigint":
      if (v < INT64_MIN || v > UINT64_MAX) throw new TypeError(`${v} is outside the 64-bit range`);
      return v.toString();
    case "undefined":
      return "null";
    case "object": {
      if (v === null) return "null";
      const bytes = asBytes(v);
      if (bytes) return `{"$bin":"${base64Encode(bytes)}"}`;
      if (Array.isArray(v)) {
        let out = "[";
        for (let i = 0; i < v.length; i++) out += (i ? "," : "") + encodeValue(v[i], depth + 1);
        return out + "]";
      }
      if (typeof v.toJSON === "function") return encodeValue(v.toJSON(), depth + 1);
      let out = "{";
      let first = true;
      for (const [k, item] of mapEntries(v)) {
        out += (first ? "" : ",") + encodeValue(k, depth + 1) + ":" + encodeValue(item, depth + 1);
        first = false;
      }
      return out + "}";
    }
    default:
      throw new TypeError(`a ${typeof v} cannot be sent`);
  }
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const ESCAPES = { 34: '"', 92: "\\", 47: "/", 98: "\b", 102: "\f", 110: "\n", 114: "\r", 116: "\t" };
const NUMBER = /-?(?:0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y;

class Parser {
  constructor(text) {
    this.s = text;
    this.i = 0;
  }

  fail(what) {
    throw new ProtocolError(`malformed JSON: ${what} at ${this.i}`);
  }

  ws() {
    const s = this.s;
    while (this.i < s.length && WS.has(s.charCodeAt(this.i))) this.i++;
  }

  /** Parses one value; `into`/`key` receive the float mark of a number. */
  value(depth, into, key) {
    if (depth > MAX_DEPTH) this.fail("nesting too deep");
    this.ws();
    const c = this.s.charCodeAt(this.i);
    if (c === 123) return this.object(depth);
    if (c === 91) return this.array(depth);
    if (c === 34) return this.string();
    if (c === 45 || (c >= 48 && c <= 57)) return this.number(into, key);
    for (const [word, val] of [["true", true], ["false", false], ["null", null]]) {
      if (this.s.startsWith(word, this.i)) {
        this.i += word.length;
        return val;
      }
    }
    return this.fail("unexpected character");
  }

  object(depth) {
    this.i++;
    const obj = {};
    let n = 0;
    this.ws();
    if (this.s.charCodeAt(this.i) === 125) {
      this.i++;
      return obj;
    }
    for (;;) {
      this.ws();
      if (this.s.charCodeAt(this.i) !== 34) this.fail("expected a string key");
      const key = this.string();
      this.ws();
      if (this.s.charCodeAt(this.i) !== 58) this.fail("expected ':'");
      this.i++;
      setKey(obj, key, this.value(depth + 1, obj, key));
      n++;
      this.ws();
      const c = this.s.charCodeAt(this.i++);
      if (c === 125) break;
      if (c !== 44) this.fail("expected ',' or '}'");
    }
    if (n > 0 && typeof obj.$bin === "string" && Object.keys(obj).length === 1) {
      return base64Decode(obj.$bin);
    }
    return obj;
  }

  array(depth) {
    this.i++;
    const arr = [];
    this.ws();
    if (this.s.charCodeAt(this.i) === 93) {
      this.i++;
      return arr;
    }
    for (;;) {
      arr.push(this.value(depth + 1, arr, arr.length));
      this.ws();
      const c = this.s.charCodeAt(this.i++);
      if (c === 93) return arr;
      if (c !== 44) this.fail("expected ',' or ']'");
    }
  }

  string() {
    const s = this.s;
    const start = ++this.i;
    let out = "";
    let chunk = start;
    for (;;) {
      if (this.i >= s.length) this.fail("unterminated string");
      const c = s.charCodeAt(this.i);
      if (c === 34) break;
      if (c < 0x20) this.fail("control character in string");
      if (c !== 92) {
        this.i++;
        continue;
      }
      out += s.slice(chunk, this.i);
      const e = s.charCodeAt(this.i + 1);
      if (e === 117) {
        const hex = s.slice(this.i + 2, this.i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) this.fail("bad \\u escape");
        out += String.fromCharCode(parseInt(hex, 16));
        this.i += 6;
      } else if (ESCAPES[e] !== undefined) {
        out += ESCAPES[e];
        this.i += 2;
      } else {
        this.fail("bad escape");
      }
      chunk = this.i;
    }
    out += s.slice(chunk, this.i);
    this.i++;
    if (!wellFormed(out)) this.fail("lone surrogate in a string");
    return out;
  }

  number(into, key) {
    NUMBER.lastIndex = this.i;
    const m = NUMBER.exec(this.s);
    if (!m) return this.fail("bad number");
    this.i += m[0].length;
    const isFloat = m[1] !== undefined || m[2] !== undefined;
    const value = Number(m[0]);
    if (isFloat) {
      if (!Number.isFinite(value)) this.fail("number out of range");
      if (Number.isInteger(value) && into !== undefined) markFloat(into, key);
      return value;
    }
    return Number.isSafeInteger(value) ? value : BigInt(m[0]);
  }
}

/** Decodes JSON text (a string, or UTF-8 bytes) into a value. Throws ProtocolError. */
export function decodeJson(data) {
  const text = typeof data === "string" ? data : utf8Decode(asBytes(data));
  const p = new Parser(text);
  let value;
  try {
    value = p.value(0, undefined, undefined);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(`malformed JSON: ${err && err.message}`);
  }
  p.ws();
  if (p.i !== text.length) p.fail("trailing data");
  return value;
}

/** The JSON codec: encode() gives a string (sent as a WebSocket text message). */
export const jsonCodec = Object.freeze({
  name: "json",
  binary: false,
  contentType: "application/json",
  /** @returns {string} */
  encode(value) {
    try {
      return encodeValue(value, 0);
    } catch (err) {
      if (err instanceof RangeError) throw new TypeError(`cannot encode as JSON: ${err.message}`);
      throw err;
    }
  },
  decode: decodeJson,
  /** Joins encoded frames into one batch. */
  batch(parts) {
    return "[" + parts.join(",") + "]";
  },
  /** Size on the wire, in UTF-8 bytes. */
  size(encoded) {
    return utf8Length(encoded);
  },
});
