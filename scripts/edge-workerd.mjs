// Runs the built edge worker (scripts/build-edge) in workerd directly, through Miniflare,
// without wrangler dev's proxy: what production runs, so what the benchmarks measure. The
// bindings, vars and compatibility date come from wrangler.toml (wrangler's own reader), so
// this and `wrangler dev` cannot drift apart.
//
//   node scripts/edge-workerd.mjs --port 8787 [--persist-to DIR] [--var NAME:VALUE ...]
//                                 [--build DIR]   # another build than edge-worker/build
//                                 [--inspector-port N]   # V8's inspector (profiles: scripts/edge-profile.mjs)
//
// It prints `edge-workerd: ready on http://127.0.0.1:<port> (workerd pid <pid>)` once the
// worker answers, and stops workerd on SIGTERM or SIGINT.
import { Miniflare, Log, LogLevel } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import path from "node:path";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

function parseArgs(argv) {
  const args = { port: 8787, persist: undefined, vars: {}, build: path.join(root, "edge-worker/build") };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--port") args.port = Number(value);
    else if (flag === "--persist-to") args.persist = value;
    else if (flag === "--build") args.build = path.resolve(value);
    else if (flag === "--inspector-port") args.inspectorPort = Number(value);
    else if (flag === "--var") {
      const at = value.indexOf(":");
      if (at < 1) throw new Error(`--var wants NAME:VALUE, got ${value}`);
      args.vars[value.slice(0, at)] = value.slice(at + 1);
    } else throw new Error(`unknown argument ${flag}`);
  }
  return args;
}

/// The pid of the workerd this process started (Miniflare does not say it).
function workerdPid() {
  const out = execFileSync("pgrep", ["-P", String(process.pid), "-f", "workerd"], {
    encoding: "utf8",
  });
  return out.trim().split("\n")[0];
}

const args = parseArgs(process.argv.slice(2));
const { workerOptions } = unstable_getMiniflareWorkerOptions(path.join(root, "wrangler.toml"));
const build = args.build;
const mf = new Miniflare({
  ...workerOptions,
  name: "edge-scoreboard",
  modules: true,
  scriptPath: path.join(build, "index.js"),
  // worker-build's output imports its wasm and its snippets by relative path.
  modulesRoot: build,
  modulesRules: [{ type: "ESModule", include: ["**/*.js"] }, ...(workerOptions.modulesRules ?? [])],
  bindings: { ...workerOptions.bindings, ...args.vars },
  // Clients reach the worker on its own socket, not through Miniflare's entry worker (a
  // second isolate in front of every request that production does not have); Miniflare's
  // own port is only for its control. Without the entry worker `request.cf` is absent (the
  // worker says `local`, as under wrangler dev without a location).
  unsafeDirectSockets: [{ host: "127.0.0.1", port: args.port }],
  host: "127.0.0.1",
  port: 0,
  // Nor a worker behind every outbound fetch that strips a header we never send.
  stripCfConnectingIp: false,
  inspectorPort: args.inspectorPort,
  durableObjectsPersist: args.persist ? path.join(args.persist, "do") : false,
  // No network here: never fetch a `request.cf` to fill in.
  cf: false,
  // One line per request from Miniflare would be a loopback call per request, measured as
  // the worker's.
  logRequests: false,
  // The worker's console lines (its JSON log) go to this process's output, as under wrangler.
  log: new Log(LogLevel.INFO),
});
await mf.ready;
console.log(`edge-workerd: ready on http://127.0.0.1:${args.port} (workerd pid ${workerdPid()})`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await mf.dispose();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
