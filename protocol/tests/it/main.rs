//! The protocol crate's integration tests, one binary with a module per area (as
//! zero-to-production lays them out): run one area with `cargo test -p scoreboard-protocol
//! --test it gcra`.
//!
//! | module | what it proves |
//! | --- | --- |
//! | [`gcra`] | the GCRA limiter's window bounds, bursts and `retry_after` (property tests) |
//! | [`interop`] | tokens and signatures match Python's PyJWT and `hmac` to the byte |
//! | [`tokens`] | session and action tokens: every refusal, rotation, minting bounds |

mod gcra;
mod interop;
mod tokens;
