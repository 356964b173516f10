// Node socket.io 4.x with the same room, echo and /ctl endpoints as the Python peers.
// Needs socket.io installed in a scratch dir: NODE_PATH=<dir>/node_modules node node_sio.js --port P
"use strict";
const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[process.argv.indexOf("--port") + 1]);
let published = 0;
const usNow = () => Number(process.hrtime.bigint() / 1000n); // CLOCK_MONOTONIC, like the generator

function publish(secs, size, burst) {
  const end = usNow() + secs * 1e6;
  const pad = "x".repeat(Math.max(1, size - 30));
  const sockets = [...io.sockets.sockets.values()];
  const sample = sockets.filter((_, i) => i % Math.max(1, Math.floor(sockets.length / 16)) === 0);
  const tick = () => {
    if (usNow() >= end) return;
    // Same back-pressure rule as the Python apps: pause while sampled clients lag.
    if (sample.some((s) => s.conn.writeBuffer.length > 400)) return setTimeout(tick, 1);
    for (let i = 0; i < burst; i++) io.to("bench").emit("m", { ts: usNow(), p: pad });
    published += burst;
    setImmediate(tick);
  };
  tick();
}

// Open loop: `rate` events/s on a fixed schedule whatever the server does, each stamped
// with its due time (as anywire.bench.app.paced): a late timer shows in the latency.
function publishPaced(secs, size, rate) {
  const start = usNow();
  const period = 1e6 / rate;
  const pad = "x".repeat(Math.max(1, size - 30));
  let k = 0;
  const tick = () => {
    const now = usNow();
    while (k * period < secs * 1e6 && start + k * period <= now) {
      io.to("bench").emit("m", { ts: Math.floor(start + k * period), p: pad });
      published += 1;
      k += 1;
    }
    if (k * period >= secs * 1e6) return;
    setTimeout(tick, Math.max(0, (start + k * period - usNow()) / 1000));
  };
  tick();
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/ctl/start") {
    const q = url.searchParams;
    const [secs, size, rate] = [Number(q.get("secs") || 10), Number(q.get("size") || 100), Number(q.get("rate") || 0)];
    if (rate > 0) publishPaced(secs, size, rate);
    else publish(secs, size, Number(q.get("burst") || 1));
    res.end('{"ok":true}');
  } else if (url.pathname === "/ctl/stats") {
    res.setHeader("content-type", "application/json");
    res.end(JSON.stringify({ published, sessions: io.engine.clientsCount }));
  } else if (!url.pathname.startsWith("/socket.io")) {
    res.statusCode = 404;
    res.end();
  }
});
const io = new Server(server, {
  pingInterval: 300000,
  pingTimeout: 60000,
  perMessageDeflate: false,
  httpCompression: false,
});
io.on("connection", (socket) => {
  socket.join("bench");
  socket.on("echo", (data, ack) => ack(data));
});
server.listen(port, "127.0.0.1");
