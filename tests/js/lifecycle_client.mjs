// Mobile life cycle in the React Native profile (run by tests/js/test_anywhere.py):
//   node lifecycle_client.mjs URL TRANSPORT TOKEN
// The app's AppState "active" event (simulated) calls socket.checkNow(). Talks to the test
// over stdio: prints "frozen?" and waits for a line once the test has frozen the server
// (SIGSTOP), prints "dead" once the check found the connection dead and waits for a line
// once the server runs again, then prints one JSON line with what happened.
import { createInterface } from "node:readline";
import { applyProfile } from "./profiles.mjs";

const [url, transport, token] = process.argv.slice(2);
applyProfile("rn");
const { connect } = await import("../../anywire/clients/js/anywire.js");

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const deadline = setTimeout(() => {
  console.error(`no result within 25 s: ${JSON.stringify(out)}`);
  process.exit(2);
}, 25000);
const out = {};

// What a React Native app wires: AppState.addEventListener("change", ...).
const appState = new EventTarget();
let checked = null;
appState.addEventListener("change", (ev) => {
  if (ev.detail === "active") checked = socket.checkNow({ timeout: 1000 });
});
const foreground = () => {
  appState.dispatchEvent(new CustomEvent("change", { detail: "active" }));
  return checked;
};

const socket = connect({ url, transports: [transport], getToken: () => token, connectTimeout: 3000 });
try {
  await socket.ready();
  out.healthy = await foreground(); // a live connection answers at once

  console.log("frozen?");
  await lines.next(); // the server is frozen now: the connection is silently dead
  const back = new Promise((resolve) => socket.onConnect(resolve));
  const started = Date.now();
  out.frozen = await foreground();
  out.detectedMs = Date.now() - started;
  console.log("dead");
  await lines.next(); // the server runs again
  const info = await back;
  out.recovered = info.recovered;
  out.transport = info.transport;
  out.echo = await socket.call("echo", "after");
  console.log(JSON.stringify(out));
} finally {
  clearTimeout(deadline);
  await socket.close();
  process.exit(0);
}
