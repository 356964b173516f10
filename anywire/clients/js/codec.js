// The codecs by protocol name.
import { jsonCodec } from "./json.js";
import { msgpackCodec } from "./msgpack.js";

export { jsonCodec, msgpackCodec };

/** @type {Record<string, typeof jsonCodec | typeof msgpackCodec>} */
export const CODECS = Object.freeze({ json: jsonCodec, msgpack: msgpackCodec });
