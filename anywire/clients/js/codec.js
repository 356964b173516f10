// The codecs by protocol name.
import { jsonCodec } from "./json.js";
import { msgpackCodec } from "./msgpack.js";

export { jsonCodec, msgpackCodec };

/** @type {Record<string, typeof jsonCodec | typeof msgpackCodec>} */
export const CODECS = Object.freeze({ json: jsonCodec, msgpack: msgpackCodec });

/** Whether `key` is an own property of `table` (not "toString" and friends). */
export function own(table, key) {
  return typeof key === "string" && Object.prototype.hasOwnProperty.call(table, key);
}
