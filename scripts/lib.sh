# shellcheck shell=bash
# What the scripts that start servers share (scripts/dev, scripts/bench): services in process
# groups of their own and stopping them, free ports, waiting for a URL, a throwaway PostgreSQL,
# Redis, the worker under wrangler dev, and generated secrets. Source it from the repository
# root, after `set -euo pipefail`:
#
#   . scripts/lib.sh
#   trap 'stop_started TERM 1' INT TERM EXIT
#
# Everything started with `start` (and the PostgreSQL of `pg_start`) is stopped by
# `stop_started`. Messages name the script that sourced this file.

lib_name=${0##*/}

# The process groups started so far, in order (the last is "${pids[-1]}").
pids=()

# start CMD [ARGS...]: runs CMD in the background in a session (and so a process group) of its
# own, so that stopping it stops what it spawned too (wrangler starts workerd and esbuild), and
# a Ctrl-C reaches only the script, which then stops them in order.
start() { setsid "$@" & pids+=($!); }

# stop_group PID: SIGTERM to the group PID leads, then waits for PID.
stop_group() { kill -TERM -- "-$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# stop_started SIGNAL GRACE_SECONDS: SIGNAL to every group started, SIGKILL to those still
# there after GRACE_SECONDS, then stops the PostgreSQL of pg_start if there is one.
stop_started() {
  local sig=$1 grace=$2 pid alive
  for pid in "${pids[@]}"; do kill "-$sig" -- "-$pid" 2>/dev/null || true; done
  for _ in $(seq 1 $((grace * 5))); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.2
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${pg_data:-}" ]; then
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1 || true
    pg_data=
  fi
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# port_is_free PORT
port_is_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1",int(sys.argv[1])))' "$1" 2>/dev/null
}

# wait_http URL SECONDS: until URL answers 2xx; says so and fails after SECONDS.
wait_http() {
  for _ in $(seq 1 $(($2 * 5))); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$lib_name: $1 did not answer within $2 s" >&2
  return 1
}

# as_pg CMD [ARGS...]: runs CMD as the postgres user when we are root (PostgreSQL refuses to
# run as root), else as ourselves.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then setpriv --reuid postgres --regid postgres --init-groups -- "$@"; else "$@"; fi
}

# The newest PostgreSQL installed from Debian's packages.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)

# pg_init DATA: a cluster in DATA (trust authentication, user postgres) unless one is there;
# DATA's parent holds the socket and the log and, when we are root, belongs to postgres. Its
# locale is the environment's, or PG_LOCALE (e.g. en_US.UTF-8, the official image's, to
# measure as production runs). PG_LOCALE must be one `locale -a` lists: on Debian, the
# `locales` package and `locale-gen` make it. It applies when the cluster is made: an existing
# DATA keeps the locale it was made with.
pg_init() {
  local data=$1 parent
  parent=$(dirname "$data")
  mkdir -p "$parent"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$parent"; fi
  if [ ! -s "$data/PG_VERSION" ]; then
    as_pg "$pg_bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 ${PG_LOCALE:+--locale="$PG_LOCALE"} >/dev/null
  fi
}

# pg_start DATA PORT [SETTING=VALUE...]: starts the cluster in DATA on 127.0.0.1:PORT with the
# given settings (e.g. max_connections=200); shows the log's tail and fails if it does not.
pg_start() {
  local data=$1 port=$2 parent opts setting
  shift 2
  parent=$(dirname "$data")
  opts="-p $port -k $parent -c listen_addresses=127.0.0.1"
  for setting in "$@"; do opts+=" -c $setting"; done
  if ! as_pg "$pg_bin/pg_ctl" -D "$data" -l "$parent/postgres.log" -w -o "$opts" start >/dev/null; then
    echo "$lib_name: PostgreSQL did not start on port $port; its log says:" >&2
    tail -n 5 "$parent/postgres.log" >&2
    return 1
  fi
  pg_data=$data
  pg_port=$port
}

# pg_url DATABASE: the URL of DATABASE on the cluster of pg_start.
pg_url() { echo "postgres://postgres@127.0.0.1:$pg_port/$1"; }

# pg_ensure_db DATABASE: creates DATABASE on the cluster of pg_start unless it exists.
pg_ensure_db() {
  as_pg "$pg_bin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname='$1'" | grep -q 1 ||
    as_pg "$pg_bin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres "$1"
}

# pg_start_standby PRIMARY_PORT DATA PORT: a streaming standby of the cluster on PRIMARY_PORT
# (pg_basebackup -R into DATA the first time), in the foreground under `start`, on PORT.
pg_start_standby() {
  local primary=$1 data=$2 port=$3 parent
  parent=$(dirname "$data")
  mkdir -p "$parent"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$parent"; fi
  if [ ! -s "$data/PG_VERSION" ]; then
    as_pg "$pg_bin/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$data" -R -X stream -c fast
  fi
  local run=()
  [ "$(id -u)" -eq 0 ] && run=(setpriv --reuid postgres --regid postgres --init-groups --)
  start "${run[@]}" "$pg_bin/postgres" -D "$data" -p "$port" -k "$parent" \
    -c listen_addresses=127.0.0.1 >"$parent/postgres.log" 2>&1
}

# start_redis_cluster DIR: three masters and three replicas (nothing persisted, a new cluster
# each time) under DIR, joined by redis-cli; sets redis_cluster_nodes to "host:port,...". Each
# bus port is named (by default it is the port + 10000, past 65535 for a high free port).
start_redis_cluster() {
  local dir=$1 i port addrs=()
  rm -rf "$dir"
  for i in 1 2 3 4 5 6; do
    port=$(free_port)
    mkdir -p "$dir/$i"
    start redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir/$i" \
      --logfile "$dir/$i/redis.log" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 2000 --cluster-port "$(free_port)"
    addrs+=("127.0.0.1:$port")
  done
  local addr
  for addr in "${addrs[@]}"; do
    for i in $(seq 1 100); do
      [ "$(redis-cli -p "${addr##*:}" ping 2>/dev/null)" = PONG ] && break
      sleep 0.1
    done
  done
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log"
  for i in $(seq 1 100); do
    redis-cli -p "${addrs[0]##*:}" cluster info 2>/dev/null | grep -q 'cluster_state:ok' && break
    sleep 0.1
  done
  redis_cluster_nodes=$(IFS=,; echo "${addrs[*]}")
}

# start_bench_servers DIR [SETTING=VALUE...]: what a benchmark runs against, under DIR: a fresh
# PostgreSQL with its durable defaults and the given settings, in production's locale where
# the machine has it (see bench_locale), a Redis (its port in redis_port), and development
# secrets exported from DIR/secrets.env.
start_bench_servers() {
  local dir=$1
  shift
  bench_locale
  pg_init "$dir/pg/data"
  pg_start "$dir/pg/data" "$(free_port)" max_connections=200 "$@"
  redis_port=$(free_port)
  start_redis "$redis_port" "$dir"
  write_secrets "$dir/secrets.env"
  set -a; . "$dir/secrets.env"; set +a
}

# bench_locale: PG_LOCALE, unless set (empty: the environment's), becomes en_US.UTF-8, the
# official PostgreSQL image's default and what deploy/compose.yaml runs: text comparisons cost
# what they cost in production. Without that locale on the machine (Debian: the locales
# package, locale-gen), the environment's, said once. (grep reads the whole list: a grep -q
# that stops early can fail the pipeline with SIGPIPE under pipefail.)
bench_locale() {
  [ -n "${PG_LOCALE+set}" ] && return
  if locale -a 2>/dev/null | grep -ix 'en_US\.utf-\?8' >/dev/null; then
    export PG_LOCALE=en_US.UTF-8
  else
    echo "$lib_name: no en_US.UTF-8 locale here (locale-gen): PostgreSQL runs in the environment's" >&2
  fi
}

# start_bench_aggregator NAME [VAR=VALUE...] [-- WRAPPER...]: the release aggregator on the
# database NAME (created if missing; exported as DATABASE_URL) of start_bench_servers, Redis on
# under the key prefix "NAME:", limits out of a benchmark's way, the settings given, run under
# WRAPPER if any (e.g. valgrind); waits until it is ready. Its port in agg_port, its metrics
# port in agg_metrics_port, its process group in agg_pid. AGG_BIN names another binary (an A/B).
start_bench_aggregator() {
  local name=$1 settings=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do settings+=("$1"); shift; done
  [ $# -gt 0 ] && shift
  pg_ensure_db "$name"
  DATABASE_URL=$(pg_url "$name")
  export DATABASE_URL
  agg_port=$(free_port) agg_metrics_port=$(free_port)
  start env PORT="$agg_port" METRICS_PORT="$agg_metrics_port" BIND_ADDR=127.0.0.1 LOG_LEVEL=error \
    REDIS_URL="redis://127.0.0.1:$redis_port/" REDIS_KEY_PREFIX="$name:" RATE_LIMIT_IP=100000000 \
    DATABASE_POOL_MAX=16 "${settings[@]}" "$@" "${AGG_BIN:-target/release/scoreboard-aggregator}" serve
  agg_pid=${pids[-1]}
  # A wrapper such as valgrind makes start-up slow: the wait is generous.
  wait_http "http://127.0.0.1:$agg_port/health/ready" 120
}

# start_redis PORT DIR: a Redis that persists nothing, its log in DIR.
start_redis() {
  mkdir -p "$2"
  start redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$2" --logfile "$2/redis.log"
}

# start_edge PORT PERSIST_DIR LOG [ARGS...]: the worker (built by scripts/build-edge) under
# wrangler dev on 127.0.0.1:PORT, its output in LOG; ARGS go to wrangler dev (`--var K:V`, ...).
start_edge() {
  local port=$1 persist=$2 log=$3
  shift 3
  start env WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true \
    node_modules/.bin/wrangler dev --ip 127.0.0.1 --port "$port" --persist-to "$persist" \
    --show-interactive-dev-session=false "$@" >"$log" 2>&1
}

# start_edge_workerd PORT PERSIST_DIR LOG [ARGS...]: the same built worker in workerd directly
# (scripts/edge-workerd.mjs: Miniflare, no dev proxy in front), as production runs it; ARGS are
# `--var K:V`. `edge_workerd_pid LOG` then names the workerd that runs it.
start_edge_workerd() {
  local port=$1 persist=$2 log=$3
  shift 3
  start node scripts/edge-workerd.mjs --port "$port" --persist-to "$persist" "$@" >"$log" 2>&1
}
edge_workerd_pid() { sed -n 's/^edge-workerd: ready on .* (workerd pid \([0-9]*\))$/\1/p' "$1" | head -1; }

# write_secrets FILE: development secrets for the aggregator and the edge, as VAR=value lines
# readable only by us; `set -a; . FILE; set +a` exports them.
write_secrets() {
  local name gen='import secrets; print(secrets.token_urlsafe(48))'
  (
    umask 077
    for name in JWT_SECRET ACTION_TOKEN_SECRET EDGE_FORWARD_SECRET ADMIN_API_KEY; do
      echo "$name=$(python3 -c "$gen")"
    done >"$1"
  )
}
