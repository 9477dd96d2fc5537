//! The end-to-end tests, one binary with a module per area (as zero-to-production lays them
//! out): the worker in workerd (`wrangler dev`) in front of in-process aggregators, PostgreSQL
//! and Redis. Run one area with `cargo test -p scoreboard-tests --test it edge::`.
//!
//! | module | what it proves |
//! | --- | --- |
//! | [`edge`] | forwarding, errors, headers, logs, limits, SSE through the hub, restarts |
//! | [`edge_boards`] | a hub per board, each board's clients see only their board, the alias unchanged, a period boundary |
//! | [`edge_rotation`] | secrets rotate at the edge and the aggregator without refusing anyone |
//! | [`harness`] | the harness itself: throwaway servers, isolation, cleanup after a crash |
//! | [`hostile`] | malformed requests at every public route get their documented errors |
//! | [`image`] | the container image builds locked and serves as a non-root user |
//! | [`loadgen`] | every load generator scenario runs quick and verifies itself |
//! | [`page`] | the player page in headless Chromium, a board that resets included |
//! | [`smoke`] | `deploy/smoke` passes on a healthy stack and fails without the aggregator |
//! | [`support`] | what the modules share: an in-process aggregator and the edge in front of it |
//!
//! Heavy tests (the browser, the image build, the load generator) take
//! [`scoreboard_tests::heavy`] so that no two of them share the two cores of a CI runner.

mod edge;
mod edge_boards;
mod edge_rotation;
mod edge_sockets;
mod harness;
mod hostile;
mod image;
mod loadgen;
mod page;
mod smoke;
mod support;
