// The socket's resume over the WebSocket without negotiate (wsresume.js, docs/protocol.md
// 2.2.1) against the in-memory fake server: one connection and no negotiate when the
// server says it can; negotiate in the same attempt when it cannot; a refused credential
// stops the socket; a refusal's retry_after is waited out.
import { test } from "node:test";
import assert from "node:assert/strict";

import { connect } from "../../anywire/clients/js/anywire.js";
import { retryAfterIn } from "../../anywire/clients/js/wsresume.js";
import { parseFrame } from "../../anywire/clients/js/frames.js";
import { FakeClock, FakeServer, FakeStorage, FakeWindow } from "./fakes.js";

function setup(options = {}, wsResume = true) {
  const clock = new FakeClock();
  const server = new FakeServer({ clock });
  server.wsResume = wsResume;
  let tokens = 0;
  const socket = connect({
    url: "http://srv.test",
    getToken: async () => `tok${++tokens}`,
    env: server.env({ window: new FakeWindow(), storage: new FakeStorage() }),
    upgrade: false,
    backoffBase: 50,
    backoffMax: 100,
    ...options,
  });
  return { clock, server, socket };
}

async function until(clock, cond, step = 10, limit = 60000) {
  for (let waited = 0; !cond(); waited += step) {
    if (waited > limit) throw new Error(`condition not met within ${limit} ms of fake time`);
    await clock.advance(step);
  }
}

test("a dropped WebSocket resumes over one connection, without negotiate, replay exactly once", async () => {
  const { socket, server, clock } = setup();
  const seen = [];
  socket.on("n", (d) => seen.push(d));
  await socket.ready();
  assert.equal(server.negotiations.length, 1);
  server.push("n", 1);
  await until(clock, () => seen.length === 1);
  server.dropLive();
  server.push("n", 2); // missed while away: replayed
  server.push("n", 3);
  await until(clock, () => socket.state === "connected" && seen.length === 3);
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(server.negotiations.length, 1); // none for the resume
  assert.equal(server.directResumes.length, 1);
  const [first] = server.directResumes;
  assert.equal(first.token, "token-" + socket.sid);
  assert.equal(first.auth, "tok2"); // a fresh credential, as negotiate would get
  assert.equal(first.last, 1);
  assert.equal(socket.recovered, true);
  await socket.close();
});

test("an older server (no ws_resume) and wsResume: false negotiate as before", async () => {
  for (const [wsResume, option] of [[false, true], [true, false]]) {
    const { socket, server, clock } = setup({ wsResume: option }, wsResume);
    await socket.ready();
    server.dropLive();
    await until(clock, () => socket.state === "connected" && server.negotiations.length === 2);
    assert.equal(server.directResumes.length, 0);
    assert.equal(server.negotiations[1].body.resume, "token-" + socket.sid);
    await socket.close();
  }
});

test("an unknown session goes to negotiate in the same attempt: a fresh session", async () => {
  const { socket, server, clock } = setup();
  await socket.ready();
  server.dropLive();
  server.session.closed = "expired"; // the server forgot it
  await until(clock, () => socket.state === "connected" && server.negotiations.length === 2);
  assert.equal(server.directResumes.length, 1);
  assert.equal(socket.recovered, false);
  await socket.close();
});

test("a refused credential stops the socket; no retry", async () => {
  const { socket, server, clock } = setup();
  const ended = [];
  socket.onState((s) => ended.push(s));
  await socket.ready();
  server.directRefusal = { code: 4501, reason: "authentication failed" };
  server.dropLive();
  await until(clock, () => socket.state === "disconnected");
  await clock.advance(5000);
  assert.equal(server.directResumes.length, 1);
  assert.equal(server.negotiations.length, 1);
});

test("a refusal with retry_after is waited out, then the resume goes on", async () => {
  const { socket, server, clock } = setup();
  await socket.ready();
  server.directRefusal = { code: 4008, reason: "too many negotiations from this address; retry_after=3" };
  server.dropLive();
  await until(clock, () => server.directResumes.length === 1);
  const refusedAt = clock.now();
  await until(clock, () => socket.state === "connected");
  assert.ok(clock.now() - refusedAt >= 3000, `resumed after ${clock.now() - refusedAt} ms`);
  assert.equal(server.directResumes.length, 2);
  assert.equal(server.negotiations.length, 1);
  await socket.close();
});

test("after a direct resume the credential is refreshed on the lifetime its hello gave", async () => {
  // Negotiate's credential did not expire; the one sent with the direct resume does
  // (3 s): the refresh is planned from the hello (80%: 2.4 s), not from negotiate.
  const { socket, server, clock } = setup();
  await socket.ready();
  server.dropLive();
  server.expiresIn = 3000;
  await until(clock, () => socket.state === "connected" && server.directResumes.length === 1);
  const resumedAt = clock.now();
  assert.deepEqual(server.auths, []);
  await until(clock, () => server.auths.length === 1, 10, 3000);
  const after = server.auths[0].at - resumedAt;
  assert.ok(after >= 2390 && after < 2500, `refreshed ${after} ms after the resume`);
  assert.equal(server.auths[0].token, "tok3"); // fresh from getToken (tok2 went with the resume)
  assert.equal(server.negotiations.length, 1);
  await until(clock, () => socket.refresher.refreshed === 1, 10, 1000);
  await socket.close();
});

test("retry_after is read from the end of a close reason; the frame parses both ways", () => {
  assert.equal(retryAfterIn("busy; retry_after=4"), 4000);
  assert.equal(retryAfterIn("wsurl: busy; retry_after=999999"), 600000);
  assert.equal(retryAfterIn("retry_after=4 later"), null);
  assert.equal(retryAfterIn(""), null);
  assert.deepEqual(parseFrame({ t: "resume", token: "a", last: 2, auth: "j" }), { t: "resume", token: "a", last: 2, auth: "j" });
  assert.deepEqual(parseFrame({ t: "resume", ticket: "k", last: 2 }), { t: "resume", ticket: "k", last: 2 });
  const hello = { t: "hello", sid: "s", recovered: true, seq: 2, last: 1, expires_in: 59000 };
  assert.deepEqual(parseFrame(hello), hello);
  assert.throws(() => parseFrame({ ...hello, expires_in: -1 }));
});

test("a getToken() that hangs does not hold the resume: negotiate takes over", async () => {
  let calls = 0;
  const { socket, server, clock } = setup({
    connectTimeout: 1000,
    getToken: () => (++calls === 2 ? new Promise(() => {}) : Promise.resolve(`tok${calls}`)),
  });
  await socket.ready();
  server.dropLive();
  await until(clock, () => socket.state === "connected" && server.negotiations.length === 2);
  assert.equal(server.directResumes.length, 0);
  assert.equal(socket.recovered, true);
  await socket.close();
});
