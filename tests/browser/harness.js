// What the browser tests drive: sockets by name, with every event, state and transport
// recorded so the Python side can wait on conditions (page.wait_for_function).
export class Harness {
  constructor(anywire) {
    this.anywire = anywire;
    this.s = {};
  }

  // Open socket `name` as user `sub`; `record` lists the events to record.
  // `options.tokenTtl` (seconds) shortens the tokens /token mints.
  open(name, sub, options = {}, record = []) {
    const entry = { events: {}, states: [], transports: [], errors: [], tokens: 0 };
    const { tokenTtl, ...rest } = options;
    const ttl = tokenTtl ? "&ttl=" + tokenTtl : "";
    const socket = this.anywire.connect({
      getToken: async () => {
        entry.tokens += 1;
        const res = await fetch("/token?sub=" + encodeURIComponent(sub) + ttl);
        return await res.text();
      },
      ...rest,
    });
    entry.socket = socket;
    for (const event of record) {
      entry.events[event] = [];
      socket.on(event, (data) => { entry.events[event].push(data); return data; });
    }
    socket.onState((state) => entry.states.push(state));
    socket.onTransport((t) => entry.transports.push(t));
    socket.onError((code, reason) => entry.errors.push([code, reason]));
    this.s[name] = entry;
    return true;
  }

  socket(name) { return this.s[name].socket; }
  events(name, event) { return this.s[name].events[event]; }
  async call(name, event, data, options) { return await this.s[name].socket.call(event, data, options); }
  async join(name, room, options) { return await this.s[name].socket.join(room, options); }
  emit(name, event, data) { this.s[name].socket.emit(event, data); return true; }
  close(name) { this.s[name].socket.close(); return true; }
  closeAll() { for (const name of Object.keys(this.s)) this.s[name].socket.close(); return true; }
}
