//! Everything the edge worker and the aggregator must agree on, byte for byte.
//!
//! The crate is pure Rust with no clock and no randomness of its own: callers pass the
//! current time (unix seconds or milliseconds) and random bytes in, so the same code runs
//! natively in the aggregator and as wasm inside workerd, and every check is testable with a
//! pinned clock.
//!
//! | module | what |
//! | --- | --- |
//! | [`ids`] | validated newtypes: player ids, action names, display names |
//! | [`session`] | session JWTs (HS256 or EdDSA): claims, signing, verification |
//! | [`action`] | single-use action tokens (`typ: action+jwt`, HS256): mint and verify |
//! | [`catalog`] | the action catalog (`ACTION_CATALOG`), checked once, and the boards a token counts on |
//! | [`edge_signature`] | the `X-Edge-Signature` HMAC between edge and aggregator |
//! | [`snapshot`] | the top-10 snapshot and score-update response bodies |
//! | [`error`] | the error codes of the public API, their statuses, the error body |
//! | [`gcra`] | a GCRA rate limiter as a pure function of (state, now) |
//! | [`jwt`] | the JWT plumbing the two token kinds share |
//! | [`http`] | request rules: bearer header, JSON bodies, client request ids, internal paths |
//! | [`defaults`] | the default limits and intervals, and the duration syntax of settings |
//! | [`log`] | the JSON log line every service prints |
//! | [`sse`] | Server-Sent Events framing |
//! | [`webhook`] | the `Scoreboard-Signature` HMAC of the events posted to the game's backend |
//! | [`settings`] | reading settings: one syntax, minimum secret length, every problem collected |

pub mod action;
pub mod catalog;
pub mod defaults;
pub mod edge_signature;
pub mod error;
pub mod gcra;
pub mod http;
pub mod ids;
pub mod jwt;
pub mod log;
pub mod session;
pub mod settings;
pub mod snapshot;
pub mod sse;
pub mod webhook;

pub use error::{ErrorBody, ErrorCode};
pub use ids::{ActionName, BoardId, DisplayName, PlayerId};
