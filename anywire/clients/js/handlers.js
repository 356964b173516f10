// The socket's event handlers: registration and dispatch of server events (like
// anywire/clients/python/handlers.py, with any number of handlers per event), and its
// hooks (state, transport, connect, disconnect, error).
//
// A handler is `handler(data, info)`. If the server asked for an answer, the first
// handler's return value (or the value of its Promise) is the answer and a throw (or
// rejection) an error answer (handler_error); an event nobody handles is answered
// no_handler. Async handlers never stall the connection: they answer when they are done.

/** Logs what no one else can be told about (handler errors without an ack, hooks). */
export function report(err) {
  if (typeof console !== "undefined") console.error("anywire:", err);
}

function errorText(err) {
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}

/** Handlers by event name, and the dispatch of one event to them. */
export class Handlers {
  /** @param {(id: number, ok: boolean, data: any, code?: string, message?: string) => void} reply */
  constructor(reply) {
    this._reply = reply;
    /** @type {Map<string, Set<Function>>} */
    this._byEvent = new Map();
  }

  /** Registers `handler` for `event`. */
  add(event, handler) {
    let set = this._byEvent.get(event);
    if (!set) this._byEvent.set(event, (set = new Set()));
    set.add(handler);
  }

  /** Removes `handler` (or, without one, every handler of `event`). */
  remove(event, handler) {
    const set = this._byEvent.get(event);
    if (!set) return;
    if (handler === undefined) set.clear();
    else set.delete(handler);
    if (set.size === 0) this._byEvent.delete(event);
  }

  /** Runs the handlers of `event` (a validated event frame); answers it when the server
   * asked for an ack. */
  dispatch(event) {
    const handlers = this._byEvent.get(event.e);
    const id = event.id;
    if (!handlers || handlers.size === 0) {
      if (id !== undefined) this._reply(id, false, null, "no_handler", `no handler for '${event.e}'`);
      return;
    }
    const info = { event: event.e, room: event.r ?? null, offset: event.o ?? null, id: id ?? null };
    let answered = false;
    for (const handler of [...handlers]) {
      const first = !answered;
      answered = true;
      let result;
      try {
        result = handler(event.d, info);
      } catch (err) {
        if (first && id !== undefined) this._reply(id, false, null, "handler_error", errorText(err));
        else report(err);
        continue;
      }
      if (!first || id === undefined) {
        if (result && typeof result.then === "function") result.then(null, report);
        continue;
      }
      if (result && typeof result.then === "function") {
        result.then(
          (value) => this._reply(id, true, value),
          (err) => this._reply(id, false, null, "handler_error", errorText(err)),
        );
      } else {
        this._reply(id, true, result);
      }
    }
  }
}

/** Hooks by kind: functions called with what happened; a throw (or rejection) is
 * reported and never reaches the socket. */
export class Hooks {
  /** @param {string[]} kinds */
  constructor(kinds) {
    /** @type {Map<string, Set<Function>>} */
    this._byKind = new Map(kinds.map((kind) => [kind, new Set()]));
  }

  /** Registers `fn` for `kind`; returns a function that removes it. */
  add(kind, fn) {
    const set = this._byKind.get(kind);
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Calls every hook of `kind` with `args`. */
  emit(kind, ...args) {
    for (const fn of [...this._byKind.get(kind)]) {
      try {
        const r = fn(...args);
        if (r && typeof r.then === "function") r.then(null, report);
      } catch (err) {
        report(err);
      }
    }
  }
}
