//! Session and action tokens: every refusal DESIGN.md lists, with a pinned clock, and the wire
//! format checked against an independent encoder (plain HMAC over hand-written JSON).

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, EncodePrivateKey, EncodePublicKey};
use proptest::prelude::*;
use scoreboard_protocol::action::{
    ActionTokenError, ActionTokens, BoardsError, ClaimError, InvalidReason, MintError, MintRequest,
    MAX_VALUE,
};
use scoreboard_protocol::edge_signature::hmac_sha256_hex;
use scoreboard_protocol::jwt::{HmacKeys, HmacSecret, JwtError};
use scoreboard_protocol::session::{
    SessionError, SessionIssuer, SessionPolicy, SessionSigningKey, SessionVerifier,
    SessionVerifyingKeys, SESSION_LEEWAY_SECS,
};
use scoreboard_protocol::{ActionName, BoardId, ErrorCode, PlayerId};

const NOW: i64 = 1_790_000_000;
const SESSION_SECRET: &[u8] = b"session-secret-session-secret-0123";
const ACTION_SECRET: &[u8] = b"action-secret-action-secret-012345";

fn player(id: &str) -> PlayerId {
    PlayerId::parse(id).unwrap()
}

fn hs_issuer(policy: SessionPolicy) -> SessionIssuer {
    SessionIssuer {
        key: SessionSigningKey::Hs256(HmacSecret::new(SESSION_SECRET.to_vec())),
        policy,
        ttl_secs: 3600,
    }
}

fn hs_verifier(policy: SessionPolicy) -> SessionVerifier {
    SessionVerifier::new(
        SessionVerifyingKeys::Hs256(HmacKeys::new(HmacSecret::new(SESSION_SECRET.to_vec()))),
        policy,
    )
}

fn actions() -> ActionTokens {
    ActionTokens::from_secret(HmacSecret::new(ACTION_SECRET.to_vec()))
}

fn b64(json: &str) -> String {
    URL_SAFE_NO_PAD.encode(json)
}

/// Builds an HS256 JWT the way any other library would, without our code.
fn hand_signed(header: &str, payload: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = hex::decode(hmac_sha256_hex(secret, input.as_bytes())).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn mint(points: i64, min_seconds: i64, jti: u8) -> String {
    let p = player("p1");
    let a = ActionName::parse("quest").unwrap();
    actions()
        .mint(
            &MintRequest {
                player: &p,
                action: &a,
                points,
                min_seconds,
                ttl_secs: 300,
                boards: None,
            },
            &[jti; 16],
            NOW,
        )
        .unwrap()
        .token
}

// ---------------------------------------------------------------- sessions

#[test]
fn an_hs256_session_round_trips_with_its_claims() {
    let issued = hs_issuer(SessionPolicy::default()).issue(&player("p1"), "Ana", "sess-1", NOW);
    assert_eq!(issued.expires_at, NOW + 3600);
    let s = hs_verifier(SessionPolicy::default())
        .verify(&issued.token, NOW + 10)
        .unwrap();
    assert_eq!(s.player_id.as_str(), "p1");
    assert_eq!(s.name, "Ana");
    assert_eq!(s.jti, "sess-1");
    assert_eq!((s.issued_at, s.expires_at), (NOW, NOW + 3600));
    let header = issued.token.split('.').next().unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(header).unwrap(),
        br#"{"alg":"HS256","typ":"JWT"}"#
    );
}

#[test]
fn a_session_minted_by_another_library_verifies() {
    let token = hand_signed(
        r#"{"alg":"HS256","typ":"JWT"}"#,
        &format!(
            r#"{{"sub":"p9","name":"Zoë","iat":{NOW},"exp":{},"jti":"abc"}}"#,
            NOW + 60
        ),
        SESSION_SECRET,
    );
    let s = hs_verifier(SessionPolicy::default())
        .verify(&token, NOW)
        .unwrap();
    assert_eq!((s.player_id.as_str(), s.name.as_str()), ("p9", "Zoë"));
}

#[test]
fn an_expired_session_is_refused_after_the_leeway() {
    let issued = hs_issuer(SessionPolicy::default()).issue(&player("p1"), "Ana", "j", NOW);
    let v = hs_verifier(SessionPolicy::default());
    assert!(v
        .verify(&issued.token, issued.expires_at + SESSION_LEEWAY_SECS)
        .is_ok());
    assert_eq!(
        v.verify(&issued.token, issued.expires_at + SESSION_LEEWAY_SECS + 1),
        Err(SessionError::Expired)
    );
    assert_eq!(
        v.verify(&issued.token, NOW - SESSION_LEEWAY_SECS - 1),
        Err(SessionError::NotYetValid)
    );
}

#[test]
fn alg_none_is_refused() {
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&format!(
            r#"{{"sub":"p1","name":"A","iat":{NOW},"exp":{},"jti":"j"}}"#,
            NOW + 60
        ))
    );
    let err = hs_verifier(SessionPolicy::default())
        .verify(&token, NOW)
        .unwrap_err();
    assert!(
        matches!(
            err,
            SessionError::Jwt(JwtError::WrongAlgorithm { .. } | JwtError::Malformed)
        ),
        "{err:?}"
    );
    // Same with a signature present and alg "None"/"HS512": only the configured name passes.
    for alg in ["None", "HS512", "hs256", "EdDSA"] {
        let t = hand_signed(
            &format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
            &format!(
                r#"{{"sub":"p1","name":"A","iat":{NOW},"exp":{},"jti":"j"}}"#,
                NOW + 60
            ),
            SESSION_SECRET,
        );
        assert_eq!(
            hs_verifier(SessionPolicy::default()).verify(&t, NOW),
            Err(SessionError::Jwt(JwtError::WrongAlgorithm {
                found: alg.into()
            })),
            "{alg}"
        );
    }
}

#[test]
fn a_tampered_session_is_refused() {
    let issued = hs_issuer(SessionPolicy::default()).issue(&player("p1"), "Ana", "j", NOW);
    let parts: Vec<&str> = issued.token.split('.').collect();
    let forged_payload = b64(&format!(
        r#"{{"sub":"admin","name":"Ana","iat":{NOW},"exp":{},"jti":"j"}}"#,
        NOW + 3600
    ));
    let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(
        hs_verifier(SessionPolicy::default()).verify(&forged, NOW),
        Err(SessionError::Jwt(JwtError::BadSignature))
    );
    let other = SessionVerifier::new(
        SessionVerifyingKeys::Hs256(HmacKeys::new(HmacSecret::new(
            b"another-secret-another-secret-000".to_vec(),
        ))),
        SessionPolicy::default(),
    );
    assert_eq!(
        other.verify(&issued.token, NOW),
        Err(SessionError::Jwt(JwtError::BadSignature))
    );
}

#[test]
fn issuer_and_audience_are_required_when_configured() {
    let policy = SessionPolicy {
        issuer: Some("scoreboard".into()),
        audience: Some("players".into()),
    };
    let good = hs_issuer(policy.clone()).issue(&player("p1"), "A", "j", NOW);
    assert!(hs_verifier(policy.clone()).verify(&good.token, NOW).is_ok());
    let bare = hs_issuer(SessionPolicy::default()).issue(&player("p1"), "A", "j", NOW);
    assert_eq!(
        hs_verifier(policy.clone()).verify(&bare.token, NOW),
        Err(SessionError::WrongIssuer)
    );
    let wrong_aud = hs_issuer(SessionPolicy {
        issuer: Some("scoreboard".into()),
        audience: Some("admins".into()),
    })
    .issue(&player("p1"), "A", "j", NOW);
    assert_eq!(
        hs_verifier(policy.clone()).verify(&wrong_aud.token, NOW),
        Err(SessionError::WrongAudience)
    );
    let array_aud = hand_signed(
        r#"{"alg":"HS256"}"#,
        &format!(
            r#"{{"sub":"p1","name":"A","iat":{NOW},"exp":{},"jti":"j","iss":"scoreboard","aud":["x","players"]}}"#,
            NOW + 60
        ),
        SESSION_SECRET,
    );
    assert!(hs_verifier(policy).verify(&array_aud, NOW).is_ok());
}

fn ed_key(seed: u8) -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
}

#[test]
fn eddsa_sessions_verify_with_the_public_pem_only() {
    let sk = ed_key(7);
    let private_pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap();
    let public_pem = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let issuer = SessionIssuer {
        key: SessionSigningKey::ed25519_from_pem(&private_pem).unwrap(),
        policy: SessionPolicy::default(),
        ttl_secs: 60,
    };
    let issued = issuer.issue(&player("p1"), "Ana", "j", NOW);
    assert_eq!(
        URL_SAFE_NO_PAD
            .decode(issued.token.split('.').next().unwrap())
            .unwrap(),
        br#"{"alg":"EdDSA","typ":"JWT"}"#
    );
    let edge = SessionVerifier::new(
        SessionVerifyingKeys::ed25519_from_pem(&public_pem).unwrap(),
        SessionPolicy::default(),
    );
    assert_eq!(
        edge.verify(&issued.token, NOW).unwrap().player_id.as_str(),
        "p1"
    );

    // Signed by another Ed25519 key: refused.
    let rogue = SessionIssuer {
        key: SessionSigningKey::EdDsa(Box::new(ed_key(8))),
        policy: SessionPolicy::default(),
        ttl_secs: 60,
    };
    let forged = rogue.issue(&player("p1"), "Ana", "j", NOW);
    assert_eq!(
        edge.verify(&forged.token, NOW),
        Err(SessionError::Jwt(JwtError::BadSignature))
    );
    // Garbage PEMs are refused with a message that does not echo the key.
    let err = SessionVerifyingKeys::ed25519_from_pem(
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap_err();
    assert!(!err.to_string().contains("AAAA"));
}

/// Algorithm confusion: with EdDSA configured, an HS256 token whose HMAC key is the public key
/// (which the edge holds openly) must not verify.
#[test]
fn an_hs256_token_keyed_with_the_public_key_is_refused_under_eddsa() {
    let sk = ed_key(7);
    let public_pem = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let edge = SessionVerifier::new(
        SessionVerifyingKeys::ed25519_from_pem(&public_pem).unwrap(),
        SessionPolicy::default(),
    );
    let payload = format!(
        r#"{{"sub":"p1","name":"A","iat":{NOW},"exp":{},"jti":"j"}}"#,
        NOW + 60
    );
    for key in [
        public_pem.as_bytes(),
        sk.verifying_key().as_bytes().as_slice(),
    ] {
        let confused = hand_signed(r#"{"alg":"HS256","typ":"JWT"}"#, &payload, key);
        assert_eq!(
            edge.verify(&confused, NOW),
            Err(SessionError::Jwt(JwtError::WrongAlgorithm {
                found: "HS256".into()
            }))
        );
    }
    // And the other way: an EdDSA token is no good where HS256 is configured.
    let ed = SessionIssuer {
        key: SessionSigningKey::EdDsa(Box::new(sk)),
        policy: SessionPolicy::default(),
        ttl_secs: 60,
    }
    .issue(&player("p1"), "A", "j", NOW);
    assert_eq!(
        hs_verifier(SessionPolicy::default()).verify(&ed.token, NOW),
        Err(SessionError::Jwt(JwtError::WrongAlgorithm {
            found: "EdDSA".into()
        }))
    );
}

#[test]
fn an_action_token_is_not_a_session_even_with_the_same_secret() {
    // Deployments must use different secrets (start-up refuses equal ones); the `typ` check
    // holds even if they did not.
    let same = ActionTokens::from_secret(HmacSecret::new(SESSION_SECRET.to_vec()));
    let p = player("p1");
    let a = ActionName::parse("quest").unwrap();
    let minted = same
        .mint(
            &MintRequest {
                player: &p,
                action: &a,
                points: 5,
                min_seconds: 0,
                ttl_secs: 60,
                boards: None,
            },
            &[1; 16],
            NOW,
        )
        .unwrap();
    let err = hs_verifier(SessionPolicy::default())
        .verify(&minted.token, NOW)
        .unwrap_err();
    assert_eq!(
        err,
        SessionError::Jwt(JwtError::WrongType {
            found: Some("action+jwt".into())
        })
    );
}

// ---------------------------------------------------------------- action tokens

#[test]
fn a_minted_action_token_has_the_exact_documented_header_and_claims() {
    let token = mint(50, 5, 9);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(parts[0]).unwrap(),
        br#"{"alg":"HS256","typ":"action+jwt"}"#
    );
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        claims,
        serde_json::json!({"jti": URL_SAFE_NO_PAD.encode([9u8; 16]), "sub": "p1", "act": "quest",
            "pts": 50, "iat": NOW, "nbf": NOW + 5, "exp": NOW + 300})
    );
    // The signature is plain HMAC-SHA256 over "<header>.<payload>" with the action secret.
    let expected = hex::decode(hmac_sha256_hex(
        ACTION_SECRET,
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
    ))
    .unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).unwrap(), expected);

    let c = actions().verify(&token, &player("p1"), NOW + 5, 0).unwrap();
    assert_eq!(
        (c.pts, c.act.as_str(), c.iat, c.nbf, c.exp),
        (50, "quest", NOW, NOW + 5, NOW + 300)
    );
}

#[test]
fn an_action_token_minted_by_another_library_verifies() {
    let jti = URL_SAFE_NO_PAD.encode([3u8; 16]);
    let token = hand_signed(
        r#"{"typ":"action+jwt","alg":"HS256"}"#,
        &format!(
            r#"{{"jti":"{jti}","sub":"p1","act":"boss","pts":-20,"iat":{NOW},"nbf":{NOW},"exp":{}}}"#,
            NOW + 300
        ),
        ACTION_SECRET,
    );
    let c = actions().verify(&token, &player("p1"), NOW, 0).unwrap();
    assert_eq!((c.pts, c.jti.as_str()), (-20, jti.as_str()));
}

fn invalid(token: &str) -> ActionTokenError {
    actions()
        .verify(token, &player("p1"), NOW + 10, 0)
        .unwrap_err()
}

#[test]
fn a_forged_or_tampered_action_token_is_invalid() {
    let good = mint(50, 0, 1);
    let forged = ActionTokens::from_secret(HmacSecret::new(
        b"wrong-key-wrong-key-wrong-key-000".to_vec(),
    ))
    .mint(
        &MintRequest {
            player: &player("p1"),
            action: &ActionName::parse("quest").unwrap(),
            points: 50,
            min_seconds: 0,
            ttl_secs: 300,
            boards: None,
        },
        &[1; 16],
        NOW,
    )
    .unwrap()
    .token;
    assert_eq!(
        invalid(&forged),
        ActionTokenError::Invalid(InvalidReason::Jwt(JwtError::BadSignature))
    );

    let parts: Vec<&str> = good.split('.').collect();
    let richer = b64(&format!(
        r#"{{"jti":"{}","sub":"p1","act":"quest","pts":1000000,"iat":{NOW},"nbf":{NOW},"exp":{}}}"#,
        URL_SAFE_NO_PAD.encode([1u8; 16]),
        NOW + 300
    ));
    for tampered in [
        format!("{}.{}.{}", parts[0], richer, parts[2]),
        format!(
            "{}.{}.{}",
            b64(r#"{"alg":"HS256","typ":"action+jwt","kid":"x"}"#),
            parts[1],
            parts[2]
        ),
        format!("{}.{}.{}A", parts[0], parts[1], parts[2]),
        format!("{}.{}", parts[0], parts[1]),
        "not a token".to_owned(),
    ] {
        let err = invalid(&tampered);
        assert_eq!(
            err.code(),
            ErrorCode::ActionTokenInvalid,
            "{tampered}: {err:?}"
        );
    }
}

#[test]
fn alg_none_and_other_algorithms_are_invalid_action_tokens() {
    let payload = format!(
        r#"{{"jti":"{}","sub":"p1","act":"quest","pts":5,"iat":{NOW},"nbf":{NOW},"exp":{}}}"#,
        URL_SAFE_NO_PAD.encode([1u8; 16]),
        NOW + 300
    );
    let none = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"action+jwt"}"#),
        b64(&payload)
    );
    assert_eq!(invalid(&none).code(), ErrorCode::ActionTokenInvalid);
    let hs512 = hand_signed(
        r#"{"alg":"HS512","typ":"action+jwt"}"#,
        &payload,
        ACTION_SECRET,
    );
    assert_eq!(
        invalid(&hs512),
        ActionTokenError::Invalid(InvalidReason::Jwt(JwtError::WrongAlgorithm {
            found: "HS512".into()
        }))
    );
}

#[test]
fn a_session_jwt_is_not_an_action_token_even_with_the_same_secret() {
    let session = SessionIssuer {
        key: SessionSigningKey::Hs256(HmacSecret::new(ACTION_SECRET.to_vec())),
        policy: SessionPolicy::default(),
        ttl_secs: 60,
    }
    .issue(&player("p1"), "A", "j", NOW);
    assert_eq!(
        invalid(&session.token),
        ActionTokenError::Invalid(InvalidReason::Jwt(JwtError::WrongType {
            found: Some("JWT".into())
        }))
    );
    // No typ at all is not an action token either.
    let payload = format!(
        r#"{{"jti":"{}","sub":"p1","act":"quest","pts":5,"iat":{NOW},"nbf":{NOW},"exp":{}}}"#,
        URL_SAFE_NO_PAD.encode([1u8; 16]),
        NOW + 300
    );
    let untyped = hand_signed(r#"{"alg":"HS256"}"#, &payload, ACTION_SECRET);
    assert_eq!(
        invalid(&untyped),
        ActionTokenError::Invalid(InvalidReason::Jwt(JwtError::WrongType { found: None }))
    );
}

#[test]
fn malformed_claims_are_invalid() {
    let jti = URL_SAFE_NO_PAD.encode([1u8; 16]);
    let short_jti = URL_SAFE_NO_PAD.encode([1u8; 15]);
    let exp = NOW + 300;
    let cases = [
        (
            "pts zero",
            format!(
                r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":0,"iat":{NOW},"nbf":{NOW},"exp":{exp}}}"#
            ),
        ),
        (
            "pts too big",
            format!(
                r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":1000001,"iat":{NOW},"nbf":{NOW},"exp":{exp}}}"#
            ),
        ),
        (
            "pts too small",
            format!(
                r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":-1000001,"iat":{NOW},"nbf":{NOW},"exp":{exp}}}"#
            ),
        ),
        (
            "pts float",
            format!(
                r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":1.5,"iat":{NOW},"nbf":{NOW},"exp":{exp}}}"#
            ),
        ),
        (
            "pts string",
            format!(
                r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":"5","iat":{NOW},"nbf":{NOW},"exp":{exp}}}"#
            ),
        ),
        (
            "short jti",
            format!(
                r#"{{"jti":"{short_jti}","sub":"p1","act":"q","pts":5,"iat":{NOW},"nbf":{NOW},"exp":{exp}}}"#
            ),
        ),
        (
            "jti not base64url",
            format!(
                r#"{{"jti":"{}","sub":"p1","act":"q","pts":5,"iat":{NOW},"nbf":{NOW},"exp":{exp}}}"#,
                "+".repeat(24)
            ),
        ),
        (
            "no exp",
            format!(r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":5,"iat":{NOW},"nbf":{NOW}}}"#),
        ),
        (
            "no nbf",
            format!(r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":5,"iat":{NOW},"exp":{exp}}}"#),
        ),
        (
            "no iat",
            format!(r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":5,"nbf":{NOW},"exp":{exp}}}"#),
        ),
        (
            "exp before iat",
            format!(
                r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":5,"iat":{NOW},"nbf":{NOW},"exp":{}}}"#,
                NOW - 1
            ),
        ),
        (
            "lifetime over a day",
            format!(
                r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":5,"iat":{NOW},"nbf":{NOW},"exp":{}}}"#,
                NOW + 86401
            ),
        ),
        (
            "nbf before iat",
            format!(
                r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":5,"iat":{NOW},"nbf":{},"exp":{exp}}}"#,
                NOW - 1
            ),
        ),
        (
            "bad sub",
            format!(
                r#"{{"jti":"{jti}","sub":"p 1","act":"q","pts":5,"iat":{NOW},"nbf":{NOW},"exp":{exp}}}"#
            ),
        ),
        (
            "no act",
            format!(r#"{{"jti":"{jti}","sub":"p1","pts":5,"iat":{NOW},"nbf":{NOW},"exp":{exp}}}"#),
        ),
        ("not an object", "[1,2,3]".to_owned()),
    ];
    for (what, payload) in cases {
        let t = hand_signed(
            r#"{"alg":"HS256","typ":"action+jwt"}"#,
            &payload,
            ACTION_SECRET,
        );
        assert_eq!(invalid(&t).code(), ErrorCode::ActionTokenInvalid, "{what}");
    }
}

// ---------------------------------------------------------------- the `brd` claim

fn boards(ids: &[&str]) -> Vec<BoardId> {
    ids.iter().map(|b| BoardId::parse(*b).unwrap()).collect()
}

fn mint_for_boards(points: i64, brd: Option<&[BoardId]>) -> Result<String, MintError> {
    let (p, a) = (player("p1"), ActionName::parse("quest").unwrap());
    let req = MintRequest {
        player: &p,
        action: &a,
        points,
        min_seconds: 0,
        ttl_secs: 300,
        boards: brd,
    };
    actions().mint(&req, &[4; 16], NOW).map(|m| m.token)
}

fn payload(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A hand-signed token with `pts` and, when given, `"brd": <brd>` (raw JSON).
fn with_brd(pts: i64, brd: Option<&str>) -> String {
    let jti = URL_SAFE_NO_PAD.encode([1u8; 16]);
    let brd = brd.map(|b| format!(r#","brd":{b}"#)).unwrap_or_default();
    let payload = format!(
        r#"{{"jti":"{jti}","sub":"p1","act":"q","pts":{pts}{brd},"iat":{NOW},"nbf":{NOW},"exp":{}}}"#,
        NOW + 300
    );
    hand_signed(
        r#"{"alg":"HS256","typ":"action+jwt"}"#,
        &payload,
        ACTION_SECRET,
    )
}

fn verify_at_now(token: &str) -> Result<Option<Vec<BoardId>>, ActionTokenError> {
    actions()
        .verify(token, &player("p1"), NOW, 0)
        .map(|c| c.brd)
}

#[test]
fn a_token_naming_its_boards_round_trips_in_order() {
    let named = boards(&["level-1", "global", "weekly"]);
    let token = mint_for_boards(50, Some(&named)).unwrap();
    assert_eq!(
        payload(&token)["brd"],
        serde_json::json!(["level-1", "global", "weekly"])
    );
    assert_eq!(verify_at_now(&token).unwrap(), Some(named));
}

#[test]
fn a_token_without_boards_has_no_brd_key() {
    let token = mint_for_boards(50, None).unwrap();
    assert!(payload(&token).get("brd").is_none(), "{}", payload(&token));
    assert_eq!(verify_at_now(&token).unwrap(), None);
    // Minting without boards is what it was: the same bytes as before the claim existed.
    assert_eq!(token, mint_for_boards(50, None).unwrap());
}

#[test]
fn a_brd_claim_minted_by_another_library_verifies() {
    let token = with_brd(7, Some(r#"["level-1","global"]"#));
    assert_eq!(
        verify_at_now(&token).unwrap(),
        Some(boards(&["level-1", "global"]))
    );
}

#[test]
fn a_malformed_brd_claim_is_invalid_as_brd() {
    let nine = format!(
        "[{}]",
        (0..9)
            .map(|i| format!("\"b{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let eight = format!(
        "[{}]",
        (0..8)
            .map(|i| format!("\"b{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(
        verify_at_now(&with_brd(5, Some(&eight)))
            .unwrap()
            .unwrap()
            .len(),
        8
    );
    for (what, brd) in [
        ("empty", "[]"),
        ("nine boards", nine.as_str()),
        ("a duplicate", r#"["a","b","a"]"#),
        ("an upper-case id", r#"["Global"]"#),
        ("an id too long", &format!("[\"{}\"]", "a".repeat(33))),
        ("a number among the ids", r#"["a",1]"#),
        ("a string, not an array", r#""global""#),
        ("null", "null"),
        ("an object", r#"{"global":true}"#),
    ] {
        assert!(
            matches!(
                verify_at_now(&with_brd(5, Some(brd))),
                Err(ActionTokenError::Invalid(InvalidReason::Claim(
                    ClaimError::Boards(_)
                )))
            ),
            "{what}"
        );
    }
}

#[test]
fn with_boards_named_pts_may_be_zero_or_up_to_2_pow_53_minus_1() {
    let refused = |pts| {
        Err(ActionTokenError::Invalid(InvalidReason::Claim(
            ClaimError::Value(pts),
        )))
    };
    for pts in [0, 1_000_001, -1_000_001, MAX_VALUE, -MAX_VALUE] {
        assert!(
            verify_at_now(&with_brd(pts, Some(r#"["a"]"#))).is_ok(),
            "{pts}"
        );
    }
    for pts in [MAX_VALUE + 1, -MAX_VALUE - 1, i64::MIN, i64::MAX] {
        assert_eq!(
            verify_at_now(&with_brd(pts, Some(r#"["a"]"#))),
            refused(pts),
            "{pts}"
        );
    }
}

#[test]
fn without_boards_the_old_bounds_still_apply() {
    let refused = |pts| {
        Err(ActionTokenError::Invalid(InvalidReason::Claim(
            ClaimError::Points(pts),
        )))
    };
    for pts in [1, -1, 1_000_000, -1_000_000] {
        assert!(verify_at_now(&with_brd(pts, None)).is_ok(), "{pts}");
    }
    for pts in [0, 1_000_001, -1_000_001, MAX_VALUE, i64::MIN, i64::MAX] {
        assert_eq!(verify_at_now(&with_brd(pts, None)), refused(pts), "{pts}");
    }
}

#[test]
fn minting_applies_the_same_rules_to_boards_and_points() {
    let one = boards(&["a"]);
    let nine: Vec<BoardId> = (0..9)
        .map(|i| BoardId::parse(format!("b{i}")).unwrap())
        .collect();
    let twice = boards(&["a", "b", "a"]);
    let m = |pts, brd| mint_for_boards(pts, brd).map(|_| ());
    assert_eq!(m(5, Some(&[])), Err(MintError::Boards(BoardsError::Empty)));
    assert_eq!(
        m(5, Some(&nine)),
        Err(MintError::Boards(BoardsError::TooMany))
    );
    assert_eq!(
        m(5, Some(&twice)),
        Err(MintError::Boards(BoardsError::Duplicate(
            BoardId::parse("a").unwrap()
        )))
    );
    assert_eq!(m(5, Some(&nine[..8])), Ok(()));
    assert_eq!(m(0, Some(&one)), Ok(()));
    assert_eq!(m(-MAX_VALUE, Some(&one)), Ok(()));
    assert_eq!(
        m(MAX_VALUE + 1, Some(&one)),
        Err(MintError::ValueOutOfRange)
    );
    assert_eq!(m(i64::MIN, Some(&one)), Err(MintError::ValueOutOfRange));
    assert_eq!(m(0, None), Err(MintError::PointsOutOfRange));
    assert_eq!(m(2_000_000, None), Err(MintError::PointsOutOfRange));
    assert_eq!(m(i64::MIN, None), Err(MintError::PointsOutOfRange));
}

#[test]
fn another_players_token_is_refused_before_its_times() {
    let token = mint(50, 0, 1);
    let err = actions()
        .verify(&token, &player("p2"), NOW + 10_000, 0)
        .unwrap_err();
    assert_eq!(err, ActionTokenError::WrongPlayer);
    assert_eq!(err.code(), ErrorCode::ActionTokenWrongPlayer);
    assert_eq!(err.code().status(), 403);
}

#[test]
fn an_action_token_expires_at_exp_and_is_not_valid_before_nbf() {
    let token = mint(50, 5, 1);
    let v = actions();
    let p = player("p1");
    assert_eq!(
        v.verify(&token, &p, NOW, 0),
        Err(ActionTokenError::NotYetValid { retry_after: 5 })
    );
    assert_eq!(
        v.verify(&token, &p, NOW + 4, 0),
        Err(ActionTokenError::NotYetValid { retry_after: 1 })
    );
    assert!(v.verify(&token, &p, NOW + 5, 0).is_ok());
    assert!(v.verify(&token, &p, NOW + 299, 0).is_ok());
    assert_eq!(
        v.verify(&token, &p, NOW + 300, 0),
        Err(ActionTokenError::Expired)
    );
    assert_eq!(ActionTokenError::Expired.code().status(), 422);
    assert_eq!(
        ActionTokenError::NotYetValid { retry_after: 1 }
            .code()
            .status(),
        425
    );
    // Leeway widens both edges, for a verifier whose clock differs from the minter's.
    assert!(v.verify(&token, &p, NOW + 3, 2).is_ok());
    assert!(v.verify(&token, &p, NOW + 301, 2).is_ok());
    assert_eq!(
        v.verify(&token, &p, NOW + 302, 2),
        Err(ActionTokenError::Expired)
    );
}

#[test]
fn a_token_signed_with_the_previous_action_secret_verifies_only_during_rotation() {
    let old = mint(5, 0, 1);
    let new_secret = HmacSecret::new(b"next-action-secret-next-action-se".to_vec());
    let rotating = ActionTokens::new(
        HmacKeys::new(new_secret.clone())
            .with_previous(Some(HmacSecret::new(ACTION_SECRET.to_vec()))),
    );
    assert!(rotating.verify(&old, &player("p1"), NOW, 0).is_ok());
    let rotated = ActionTokens::from_secret(new_secret);
    assert_eq!(
        rotated
            .verify(&old, &player("p1"), NOW, 0)
            .unwrap_err()
            .code(),
        ErrorCode::ActionTokenInvalid
    );
}

#[test]
fn minting_refuses_out_of_range_requests() {
    let p = player("p1");
    let a = ActionName::parse("quest").unwrap();
    let req = |points, min_seconds, ttl_secs| MintRequest {
        player: &p,
        action: &a,
        points,
        min_seconds,
        ttl_secs,
        boards: None,
    };
    let m = |r: MintRequest<'_>| actions().mint(&r, &[0; 16], NOW).map(|_| ()).unwrap_err();
    assert_eq!(m(req(0, 0, 300)), MintError::PointsOutOfRange);
    assert_eq!(m(req(1_000_001, 0, 300)), MintError::PointsOutOfRange);
    assert_eq!(m(req(5, 0, 0)), MintError::TtlOutOfRange);
    assert_eq!(m(req(5, 0, 86_401)), MintError::TtlOutOfRange);
    assert_eq!(m(req(5, 300, 300)), MintError::MinSecondsOutOfRange);
    assert_eq!(m(req(5, -1, 300)), MintError::MinSecondsOutOfRange);
}

proptest! {
    /// Whatever is minted (with or without boards) verifies back to the same claims, for its
    /// player only.
    #[test]
    fn action_tokens_round_trip(
        pid in "[A-Za-z0-9_.:-]{1,64}",
        act in "[A-Za-z0-9_.:-]{1,64}",
        pts in prop_oneof![-1_000_000i64..=-1, 1i64..=1_000_000],
        min_seconds in 0i64..299,
        ttl in 300i64..=86_400,
        jti in proptest::array::uniform16(any::<u8>()),
        now in 1_000_000_000i64..4_000_000_000,
        brd in proptest::option::of(proptest::collection::btree_set("[a-z0-9][a-z0-9_-]{0,31}", 1..=8)),
    ) {
        let p = PlayerId::parse(pid).unwrap();
        let a = ActionName::parse(act).unwrap();
        let brd: Option<Vec<BoardId>> = brd.map(|b| b.into_iter().map(|id| BoardId::parse(id).unwrap()).collect());
        let minted = actions()
            .mint(&MintRequest { player: &p, action: &a, points: pts, min_seconds, ttl_secs: ttl, boards: brd.as_deref() }, &jti, now)
            .unwrap();
        let at = now + min_seconds;
        let verified = actions().verify(&minted.token, &p, at, 0).unwrap();
        prop_assert_eq!(&verified, &minted.claims);
        prop_assert_eq!(verified.exp - verified.iat, ttl);
        // Another id: one character longer, or (at the 64-character limit) a different last one.
        let s = p.as_str();
        let last = if s.ends_with('x') { 'y' } else { 'x' };
        let other = PlayerId::parse(format!("{}{last}", &s[..s.len().min(63)])).unwrap();
        prop_assert_eq!(actions().verify(&minted.token, &other, at, 0), Err(ActionTokenError::WrongPlayer));
    }

    /// Whatever session is issued verifies back to the same player, name and times.
    #[test]
    fn sessions_round_trip(
        pid in "[A-Za-z0-9_.:-]{1,64}",
        name in "\\PC{1,32}",
        jti in "[A-Za-z0-9_-]{22,64}",
        now in 1_000_000_000i64..4_000_000_000,
    ) {
        let issued = hs_issuer(SessionPolicy::default()).issue(&PlayerId::parse(pid.clone()).unwrap(), &name, &jti, now);
        let s = hs_verifier(SessionPolicy::default()).verify(&issued.token, now).unwrap();
        prop_assert_eq!(s.player_id.as_str(), pid.as_str());
        prop_assert_eq!(s.name, name);
        prop_assert_eq!(s.jti, jti);
    }
}
