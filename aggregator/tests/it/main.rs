//! The aggregator's integration tests, one binary with a module per area (as
//! zero-to-production lays them out): run one area with `cargo test -p scoreboard-aggregator
//! --test it auth::`.
//!
//! | module | what it proves |
//! | --- | --- |
//! | [`helpers`] | `spawn_app()` and its typed requests, shared by every module |
//! | [`admin_cli`] | `scoreboard-aggregator admin` against a real aggregator: every command, its exit codes |
//! | [`abusive`] | stalled and vanishing SSE clients cost bounded memory and delay nobody |
//! | [`admin`] | the admin key, bans, audited adjustments, rebuild, events, the game's own players; the janitor |
//! | [`auth`] | guests, registration, login, logout, the per-IP limit |
//! | [`board_reads`] | Redis, PostgreSQL and a model agree on every read; paging a moving board |
//! | [`boards`] | board routes, one token on many boards, board reads and streams, their failures |
//! | [`boards_migration`] | a single-board database becomes `global` with the same ranks and versions |
//! | [`cli`] | `check-config`, JSON logs without secrets, `healthcheck` |
//! | [`failover`] | the edge follows a DNS failover between two regions, exactly once |
//! | [`faults`] | SIGKILL, Redis and PostgreSQL restarts under load, exactly once |
//! | [`hub_sharing`] | the SSE clients of one edge hub share one upstream WebSocket |
//! | [`keepalive`] | an answer before the body was read says `connection: close` |
//! | [`logs`] | every log line of a request carries its id; only safe client ids are kept |
//! | [`instances`] | three instances behind a real HAProxy, the edge in front: one killed under load |
//! | [`names`] | one visible name is one player: forms, case, confusables, old rows |
//! | [`operations`] | metrics, health, graceful stop, a database outage |
//! | [`overload`] | a stuck batch: every answer 503, nothing refused ever applied |
//! | [`periods`] | boards that reset: the boundary on streams, closed periods read back, refusals |
//! | [`prometheus`] | a real Prometheus scrapes the shipped job; alerts use exported metrics |
//! | [`replica`] | a real streaming standby: reads follow it, fall back, never lag a player's own write, fail over |
//! | [`pooler`] | behind a real PgBouncer in transaction mode: the apply path and every read, exactly once |
//! | [`redis`] | the Redis copy of the board: agreement, ties, outages, fan-out |
//! | [`redis_cluster`] | on a real Redis Cluster: spread over masters, sharded fan-out, a master killed under load |
//! | [`rotation`] | old secrets verify during a rotation and are refused after it |
//! | [`scale`] | a board of 50,000 under full load: drift repaired, Redis restarted, idle after |
//! | [`scores`] | `POST /internal/scores`: exactly once under concurrency, every refusal |
//! | [`soak`] | a steady load holds memory and descriptors level |
//! | [`streams`] | SSE and WebSocket streams of the top 10 |
//! | [`webhooks`] | period results posted signed, retried, after a SIGKILL, by one of two instances |
//!
//! All modules share one process, so the Prometheus recorder is shared too: a test that reads
//! a gauge's value (`ws_subscribers_active`, `sse_connections_active`, ...) does so on an
//! aggregator *process* ([`scoreboard_tests::AggregatorProcess`]), never on an in-process app.
//! The heavy tests (soak, faults, failover, the abusive clients, the hub) take
//! [`scoreboard_tests::heavy`], so that no two of them share the two cores of a CI runner.

// The tests read and arrange the database directly, never through a pooler.
#![allow(clippy::disallowed_methods)]
mod abusive;
mod admin;
mod admin_cli;
mod auth;
mod board_reads;
mod boards;
mod boards_migration;
mod cli;
mod failover;
mod faults;
mod helpers;
mod hub_sharing;
mod instances;
mod keepalive;
mod logs;
mod names;
mod operations;
mod overload;
mod periods;
mod pooler;
mod prometheus;
mod redis;
mod redis_cluster;
mod replica;
mod rotation;
mod scale;
mod scores;
mod soak;
mod streams;
mod webhooks;
