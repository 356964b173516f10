// The JS client in node against a server mounted under a prefix (run by
// tests/e2e/test_mounted.py): node mounted_client.mjs URL PATH TRANSPORT TOKEN
// prints {"transport", "echo"} as JSON. Node 20 has fetch (long-poll, POSTs) and, with
// --experimental-eventsource, EventSource; no WebSocket global.
import { connect } from "../../anywire/clients/js/anywire.js";

const [url, path, transport, token] = process.argv.slice(2);
const socket = connect({ url, path, transports: [transport], getToken: () => token, connectTimeout: 3000 });
const timer = setTimeout(() => {
  console.error("no answer within 10 s");
  process.exit(2);
}, 10000);
try {
  await socket.ready();
  const echo = await socket.call("echo", { js: url + path });
  console.log(JSON.stringify({ transport: socket.transport, echo }));
} finally {
  clearTimeout(timer);
  await socket.close();
}
