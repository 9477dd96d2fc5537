//! The JSON bodies the edge and the aggregator parse, and the identifiers inside them, on
//! arbitrary input: never panics; whatever parses round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scoreboard_protocol::snapshot::{ForwardedScore, ScoreRequest, Snapshot};
use scoreboard_protocol::{ActionName, DisplayName, PlayerId};

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<ScoreRequest>(data) {
        let again: ScoreRequest =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again.action_token, r.action_token);
    }
    if let Ok(r) = serde_json::from_slice::<ForwardedScore>(data) {
        let again: ForwardedScore =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again.edge_region, r.edge_region);
    }
    let _ = serde_json::from_slice::<Snapshot>(data);
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = PlayerId::parse(s) {
            assert!(!id.as_str().is_empty() && id.as_str().len() <= PlayerId::MAX_LEN);
        }
        if let Ok(name) = DisplayName::parse(s) {
            let n = name.as_str().chars().count();
            assert!((1..=DisplayName::MAX_CHARS).contains(&n));
            assert!(!name.as_str().chars().any(char::is_control));
        }
        let _ = ActionName::parse(s);
    }
});
