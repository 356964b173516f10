// Codec throughput of the browser client, in node (not a test: run it by hand).
//   node tests/js/bench_codecs.mjs
// Decodes and encodes batches of 20 typical chat events for one second each, per codec,
// and native JSON.parse of the same text for comparison.
import { jsonCodec, msgpackCodec } from "../../anywire/clients/js/codec.js";
import { decodeFrames } from "../../anywire/clients/js/frames.js";

const frame = {
  t: "event", s: 12345, e: "chat",
  d: { user: "ann", text: "hello there, how are you doing today? ".repeat(3), ts: 1700000000.123, tags: ["a", "b"] },
  r: "lobby", o: ["room:/:lobby", "ep1", 999],
};
const batch = Array.from({ length: 20 }, (_, i) => ({ ...frame, s: i + 1 }));

function rate(fn) {
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < 1000) {
    fn();
    n += batch.length;
  }
  return Math.round(n / ((performance.now() - start) / 1000));
}

for (const codec of [jsonCodec, msgpackCodec]) {
  const encoded = codec.batch(batch.map((f) => codec.encode(f)));
  const decode = rate(() => decodeFrames(codec, encoded));
  const encode = rate(() => batch.forEach((f) => codec.encode(f)));
  console.log(`${codec.name}: decode ${decode} frames/s, encode ${encode} frames/s`);
}
const text = jsonCodec.batch(batch.map((f) => jsonCodec.encode(f)));
console.log(`native JSON.parse: ${rate(() => JSON.parse(text))} frames/s`);
