// Samples the edge worker's isolate through V8's inspector for a while and prints where its
// CPU went, by function (self time), wasm functions by their Rust names:
//
//   node scripts/edge-profile.mjs --inspector-port N [--seconds 6] [--top 40] [--out FILE.cpuprofile]
//                                 [--target core:user:]   # another isolate: core:entry, ...
//
// The worker must run with that inspector port (scripts/edge-workerd.mjs --inspector-port N).
// The .cpuprofile opens in Chrome's DevTools (Performance) for the full picture.
import WebSocket from "ws";
import { writeFileSync } from "node:fs";

const args = { seconds: 6, top: 40, out: undefined, port: undefined, target: "core:user:" };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const [flag, value] = [argv[i], argv[i + 1]];
  if (flag === "--inspector-port") args.port = Number(value);
  else if (flag === "--seconds") args.seconds = Number(value);
  else if (flag === "--top") args.top = Number(value);
  else if (flag === "--out") args.out = value;
  else if (flag === "--target") args.target = value;
  else throw new Error(`unknown argument ${flag}`);
}
if (!args.port) throw new Error("--inspector-port is required");

const targets = await (await fetch(`http://127.0.0.1:${args.port}/json/list`)).json();
// Miniflare runs its own workers beside ours (core:entry in front of every request,
// strip-cf-connecting-ip behind every outbound fetch); ours is core:user:<name>.
const target = targets.find((t) => t.title.includes(args.target));
if (!target) throw new Error(`no isolate named like ${args.target}: ${targets.map((t) => t.title).join(", ")}`);
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((resolve, reject) => ws.on("open", resolve).on("error", reject));
let nextId = 1;
const pending = new Map();
ws.on("message", (data) => {
  const msg = JSON.parse(data);
  if (msg.id && pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  }
});
const call = (method, params = {}) =>
  new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });

await call("Profiler.enable");
await call("Profiler.setSamplingInterval", { interval: 200 });
await call("Profiler.start");
await new Promise((r) => setTimeout(r, args.seconds * 1000));
const { result } = await call("Profiler.stop");
ws.close();
const profile = result.profile;
if (args.out) writeFileSync(args.out, JSON.stringify(profile));

// Self time per function: samples of each node, summed by function name and location.
const counts = new Map();
for (const s of profile.samples) counts.set(s, (counts.get(s) ?? 0) + 1);
const byName = new Map();
let total = 0;
for (const node of profile.nodes) {
  const n = counts.get(node.id) ?? 0;
  total += n;
  const f = node.callFrame;
  const where = f.url ? f.url.split("/").pop() : "";
  const key = `${f.functionName || "(anonymous)"} ${where}`;
  byName.set(key, (byName.get(key) ?? 0) + n);
}
const idle = byName.get("(idle) ") ?? 0;
const busy = total - idle;
console.log(`samples: ${total}, busy ${busy} (${((100 * busy) / total).toFixed(1)}%)`);
for (const [key, n] of [...byName].filter(([k]) => k !== "(idle) ").sort((a, b) => b[1] - a[1]).slice(0, args.top)) {
  console.log(`${((100 * n) / busy).toFixed(1).padStart(5)}%  ${key}`);
}
