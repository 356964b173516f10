// Shared helpers of the JS unit tests: vectors, hex, and value comparison with types.
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
export const ROOT = join(HERE, "..", "..");
export const CLIENT = join(ROOT, "anywire", "clients", "js");

export function loadVectors(name) {
  return JSON.parse(readFileSync(join(ROOT, "tests", "vectors", name), "utf8"));
}

export function hex(bytes) {
  return Buffer.from(bytes).toString("hex");
}

export function fromHex(text) {
  return new Uint8Array(Buffer.from(text, "hex"));
}

/** The vector form of a value ({"$bin": base64} for bytes) in memory form. */
export function fromJsonable(value) {
  if (Array.isArray(value)) return value.map(fromJsonable);
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 1 && typeof value.$bin === "string") return new Uint8Array(Buffer.from(value.$bin, "base64"));
    return Object.fromEntries(keys.map((k) => [k, fromJsonable(value[k])]));
  }
  return value;
}

/** Deep equality that also compares types and key order. */
export function same(a, b) {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && hex(a) === hex(b);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((x, i) => same(x, b[i]));
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k, i) => k === kb[i] && same(a[k], b[k]));
  }
  return typeof a === typeof b && Object.is(a, b);
}
