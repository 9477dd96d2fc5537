//! Tokens and signatures made by another implementation (Python's PyJWT and `hmac`, as a game
//! backend would use) verify here, and ours verify there: the formats match to the byte.

use scoreboard_protocol::action::{ActionTokens, MintRequest};
use scoreboard_protocol::edge_signature;
use scoreboard_protocol::jwt::{HmacKeys, HmacSecret};
use scoreboard_protocol::session::{SessionPolicy, SessionVerifier, SessionVerifyingKeys};
use scoreboard_protocol::{ActionName, BoardId, PlayerId};
use std::process::Command;

const SECRET: &str = "interop-secret-interop-secret-0123456";
const NOW: i64 = 1_790_000_000;

/// The first Python that has PyJWT (`scripts/setup` installs it).
fn python() -> String {
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import jwt"])
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate.to_owned();
        }
    }
    panic!("no python3 with PyJWT: run scripts/setup");
}

fn py(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/tokens.py");
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn an_action_token_minted_with_pyjwt_verifies() {
    let token = py(&[
        "mint-action",
        SECRET,
        "p42",
        "quest",
        "50",
        &NOW.to_string(),
        "5",
        "300",
    ]);
    let tokens = ActionTokens::from_secret(HmacSecret::new(SECRET.as_bytes()));
    let p = PlayerId::parse("p42").unwrap();
    let claims = tokens.verify(&token, &p, NOW + 5, 0).unwrap();
    assert_eq!(
        (claims.pts, claims.act.as_str(), claims.nbf),
        (50, "quest", NOW + 5)
    );
    assert!(tokens.verify(&token, &p, NOW + 4, 0).is_err(), "nbf holds");
    let other = ActionTokens::from_secret(HmacSecret::new(
        b"a-different-secret-a-different-123".to_vec(),
    ));
    assert!(other.verify(&token, &p, NOW + 5, 0).is_err());
}

#[test]
fn our_action_token_verifies_with_pyjwt_and_has_the_exact_header() {
    let p = PlayerId::parse("p7").unwrap();
    let a = ActionName::parse("boss").unwrap();
    let minted = ActionTokens::from_secret(HmacSecret::new(SECRET.as_bytes()))
        .mint(
            &MintRequest {
                player: &p,
                action: &a,
                points: -3,
                min_seconds: 0,
                ttl_secs: 300,
                boards: None,
            },
            &[5; 16],
            NOW,
        )
        .unwrap();
    let claims: serde_json::Value = serde_json::from_str(&py(&[
        "verify-action",
        SECRET,
        &minted.token,
        &NOW.to_string(),
    ]))
    .unwrap();
    assert_eq!(claims["sub"], "p7");
    assert_eq!(claims["pts"], -3);
    assert_eq!(claims["jti"], minted.claims.jti);
}

/// A token naming its boards is a plain JWT to PyJWT: `brd` is an array of strings.
#[test]
fn our_token_with_boards_verifies_with_pyjwt() {
    let p = PlayerId::parse("p7").unwrap();
    let a = ActionName::parse("lap").unwrap();
    let brd = [BoardId::parse("level-1").unwrap(), BoardId::global()];
    let minted = ActionTokens::from_secret(HmacSecret::new(SECRET.as_bytes()))
        .mint(
            &MintRequest {
                player: &p,
                action: &a,
                points: 0,
                min_seconds: 0,
                ttl_secs: 300,
                boards: Some(&brd),
            },
            &[6; 16],
            NOW,
        )
        .unwrap();
    let claims: serde_json::Value = serde_json::from_str(&py(&[
        "verify-action",
        SECRET,
        &minted.token,
        &NOW.to_string(),
    ]))
    .unwrap();
    assert_eq!(claims["brd"], serde_json::json!(["level-1", "global"]));
    assert_eq!(claims["pts"], 0);
}

#[test]
fn a_session_minted_with_pyjwt_verifies() {
    let token = py(&[
        "mint-session",
        SECRET,
        "p9",
        "Zoë",
        &NOW.to_string(),
        "3600",
    ]);
    let v = SessionVerifier::new(
        SessionVerifyingKeys::Hs256(HmacKeys::new(HmacSecret::new(SECRET.as_bytes()))),
        SessionPolicy::default(),
    );
    let s = v.verify(&token, NOW + 10).unwrap();
    assert_eq!((s.player_id.as_str(), s.name.as_str()), ("p9", "Zoë"));
}

#[test]
fn an_edge_signature_made_with_python_hmac_verifies() {
    let body = r#"{"action_token":"x","edge_region":"fra"}"#;
    let header = py(&[
        "edge-signature",
        SECRET,
        &NOW.to_string(),
        "POST",
        "/internal/scores",
        body,
    ]);
    assert_eq!(
        header,
        edge_signature::header_value(
            SECRET.as_bytes(),
            NOW,
            "POST",
            "/internal/scores",
            body.as_bytes()
        )
    );
    let keys = HmacKeys::new(HmacSecret::new(SECRET.as_bytes()));
    assert!(edge_signature::verify_header(
        &keys,
        Some(&header),
        "POST",
        "/internal/scores",
        body.as_bytes(),
        NOW
    )
    .is_ok());
}
