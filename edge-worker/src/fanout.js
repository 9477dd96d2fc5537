// The hub's fan-out, in the runtime's own terms: one loop per event over every client, with
// the same bytes for all of them. Kept in JavaScript because a loop in Rust crosses into the
// runtime once per client per event (each `write`, each `desiredSize`), and the crossings,
// not the writing, were most of a delivery's cost.

// A client with this many bytes waiting is behind: it is skipped until its stream has
// drained, and then sent the newest frame (whole snapshots, so skipping loses nothing). A
// snapshot's frame is ~1.3 KB, so this is "a frame the runtime has not taken yet": at 5,000
// clients a 1 KiB mark gave a p99 of 0.6-0.7 s against 2.1-2.2 s with 16 KiB (two alternating
// rounds), as clients still sending the last frame skip to the newest instead of queueing.
const HIGH_WATER_BYTES = 1024;

const ignore = () => {};

// The SSE clients of one hub and one form of its snapshot: each a native
// `IdentityTransformStream` whose readable side is the client's response body, so workerd
// moves the bytes without JavaScript per chunk.
export class Audience {
  constructor() {
    this.clients = new Set();
    this.latest = null;
    this.sentSinceTick = false;
  }

  get size() {
    return this.clients.size;
  }

  // A new client: `greeting` first, then the newest frame unless `current` (it has it);
  // returns the body of its response.
  join(greeting, current) {
    const pipe = new IdentityTransformStream({ highWaterMark: HIGH_WATER_BYTES });
    const client = { writer: pipe.writable.getWriter(), last: null, behind: false };
    this.clients.add(client);
    this.write(client, greeting);
    if (this.latest !== null && !current) {
      this.deliver(client, this.latest);
    } else if (current) {
      client.last = this.latest;
    }
    // A client that went away fails its next write, which errors the stream.
    client.writer.closed.then(
      () => this.clients.delete(client),
      () => this.clients.delete(client),
    );
    return pipe.readable;
  }

  // A new snapshot's frame, to every client that is keeping up, and to every client behind
  // whose stream has drained since: its `ready` may not have resolved yet (or at all), and
  // waiting for the ping tick left such clients up to a ping interval late.
  send(frame) {
    this.latest = frame;
    this.sentSinceTick = true;
    for (const client of this.clients) {
      if (client.behind) this.catchUp(client);
      else this.deliver(client, frame);
    }
  }

  // The ping timer's tick: `ping` to every client keeping up when nothing was sent since the
  // last one, and a client behind caught up if its stream has drained. `ready` alone is not
  // relied on: a client behind gets no pings, so one missed resolution would otherwise leave
  // it silent on an old snapshot for good. Returns the number of clients.
  tick(ping) {
    for (const client of this.clients) {
      if (client.behind) {
        this.catchUp(client);
      } else if (!this.sentSinceTick) {
        this.write(client, ping);
      }
    }
    this.sentSinceTick = false;
    return this.clients.size;
  }

  deliver(client, frame) {
    if (client.writer.desiredSize <= 0) {
      this.fallBehind(client);
      return;
    }
    client.last = frame;
    this.write(client, frame);
  }

  fallBehind(client) {
    client.behind = true;
    client.writer.ready.then(() => this.catchUp(client), ignore);
  }

  // A client behind whose stream has drained gets the newest frame, unless it has it.
  catchUp(client) {
    if (!client.behind || client.writer.desiredSize <= 0 || !this.clients.has(client)) return;
    client.behind = false;
    if (client.last !== this.latest) this.deliver(client, this.latest);
  }

  write(client, bytes) {
    // A rejected write (the client left) is seen through `closed`; handled here so that it
    // is not reported as an unhandled rejection.
    client.writer.write(bytes).then(undefined, ignore);
  }
}

// Sends `text` to every hibernatable WebSocket of `state` tagged `tag`: sends are
// synchronous and queue in the runtime, so there is nothing to wait for.
export function sendToSockets(state, tag, text) {
  const sockets = state.getWebSockets(tag);
  for (const ws of sockets) {
    try {
      ws.send(text);
    } catch {
      // A socket that is closing: its close handler removes it.
    }
  }
  return sockets.length;
}

// How many hibernatable WebSockets of `state` are tagged `tag`, `leaving` (a socket whose
// close is being handled, when given) not counted.
export function countSockets(state, tag, leaving) {
  const sockets = state.getWebSockets(tag);
  return leaving === undefined ? sockets.length : sockets.filter((ws) => ws !== leaving).length;
}
