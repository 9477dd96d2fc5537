//! The edge signature: how the aggregator knows a request came from our edge.
//!
//! `X-Edge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(EDGE_FORWARD_SECRET,
//! "<t>.<METHOD>.<path>.<hex sha256(body)>")>`, `<path>` without the query string. For the
//! WebSocket upgrade (a `GET` with an empty body) the same values travel as the query
//! parameters `t` and `sig`.

use crate::jwt::HmacKeys;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const HEADER: &str = "x-edge-signature";
/// How far the signature's `t` may be from the verifier's clock, either way.
pub const MAX_SKEW_SECS: i64 = 60;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused. All are `401 EDGE_SIGNATURE_INVALID`; the variant is for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EdgeSignatureError {
    #[error("the edge signature is missing")]
    Missing,
    #[error("the edge signature is malformed")]
    Malformed,
    #[error("the edge signature is outside the {MAX_SKEW_SECS} s window")]
    Stale,
    #[error("the edge signature does not match")]
    Mismatch,
}

/// HMAC-SHA256 of `message` under `key`, as lowercase hex.
pub fn hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    hex::encode(mac(key, message).finalize().into_bytes())
}

fn mac(key: &[u8], message: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(message);
    m
}

/// The string that is signed: `"<t>.<METHOD>.<path>.<hex sha256(body)>"`.
pub fn signing_input(t: i64, method: &str, path: &str, body: &[u8]) -> String {
    let path = path.split('?').next().unwrap_or_default();
    format!(
        "{t}.{}.{path}.{}",
        method.to_ascii_uppercase(),
        hex::encode(Sha256::digest(body))
    )
}

/// The hex signature for a request (the `v1` value, or the `sig` query parameter).
pub fn sign(secret: &[u8], t: i64, method: &str, path: &str, body: &[u8]) -> String {
    hmac_sha256_hex(secret, signing_input(t, method, path, body).as_bytes())
}

/// The whole `X-Edge-Signature` header value.
pub fn header_value(secret: &[u8], t: i64, method: &str, path: &str, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, method, path, body))
}

/// Verifies an `X-Edge-Signature` header at `now` (unix seconds) with any of `keys`.
/// Several `v1=` entries are allowed (any one matching is enough), so an edge can sign with
/// two secrets during a rotation.
pub fn verify_header(
    keys: &HmacKeys,
    header: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<(), EdgeSignatureError> {
    let header = header.ok_or(EdgeSignatureError::Missing)?;
    if header.len() > 1024 {
        return Err(EdgeSignatureError::Malformed);
    }
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(EdgeSignatureError::Malformed)?;
        match k {
            "t" if t.is_none() => t = Some(v),
            "v1" => sigs.push(v),
            // Unknown schemes are ignored so a future `v2` can be rolled out alongside.
            "t" => return Err(EdgeSignatureError::Malformed),
            _ => {}
        }
    }
    let t = t.ok_or(EdgeSignatureError::Malformed)?;
    verify_any(keys, t, &sigs, method, path, body, now)
}

/// Verifies the query-parameter form (`t`, `sig`) used by the WebSocket upgrade.
pub fn verify_query(
    keys: &HmacKeys,
    t: Option<&str>,
    sig: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<(), EdgeSignatureError> {
    let (Some(t), Some(sig)) = (t, sig) else {
        return Err(EdgeSignatureError::Missing);
    };
    verify_any(keys, t, &[sig], method, path, body, now)
}

fn verify_any(
    keys: &HmacKeys,
    t: &str,
    sigs: &[&str],
    method: &str,
    path: &str,
    body: &[u8],
    now: i64,
) -> Result<(), EdgeSignatureError> {
    if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EdgeSignatureError::Malformed);
    }
    let t: i64 = t.parse().map_err(|_| EdgeSignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(EdgeSignatureError::Malformed);
    }
    let decoded: Vec<Vec<u8>> = sigs
        .iter()
        .map(|s| hex::decode(s).map_err(|_| EdgeSignatureError::Malformed))
        .collect::<Result<_, _>>()?;
    if (now - t).abs() > MAX_SKEW_SECS {
        return Err(EdgeSignatureError::Stale);
    }
    let input = signing_input(t, method, path, body);
    for key in keys.verifying() {
        for sig in &decoded {
            // `verify_slice` compares in constant time.
            if mac(key.expose(), input.as_bytes())
                .verify_slice(sig)
                .is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(EdgeSignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::HmacSecret;

    /// RFC 4231 test cases 1–4, 6 and 7 (case 5 is a truncated MAC, which we never use).
    #[test]
    fn hmac_sha256_matches_rfc4231() {
        let long_key = vec![0xaa; 131];
        let cases: [(&[u8], &[u8], &str); 6] = [
            (&[0x0b; 20], b"Hi There",
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (b"Jefe", b"what do ya want for nothing?",
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            (&[0xaa; 20], &[0xdd; 50],
             "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
            (&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
              0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19], &[0xcd; 50],
             "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            (&long_key, b"Test Using Larger Than Block-Size Key - Hash Key First",
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
            (&long_key, b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
             "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hmac_sha256_hex(key, data), expected);
        }
    }

    fn keys(s: &str) -> HmacKeys {
        HmacKeys::new(HmacSecret::new(s.as_bytes().to_vec()))
    }

    const SECRET: &str = "edge-secret-edge-secret-edge-secret!";

    /// The signed string is exactly DESIGN.md's, so other languages can produce it.
    #[test]
    fn the_signing_input_is_the_documented_string() {
        let input = signing_input(1_700_000_000, "post", "/internal/scores?x=1", b"{}");
        assert_eq!(
            input,
            "1700000000.POST./internal/scores.44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_eq!(
            sign(
                SECRET.as_bytes(),
                1_700_000_000,
                "POST",
                "/internal/scores",
                b"{}"
            ),
            hmac_sha256_hex(SECRET.as_bytes(), input.as_bytes())
        );
    }

    #[test]
    fn a_fresh_signature_verifies_and_anything_else_does_not() {
        let k = keys(SECRET);
        let now = 1_700_000_000;
        let body = br#"{"action_token":"x"}"#;
        let h = header_value(SECRET.as_bytes(), now, "POST", "/internal/scores", body);
        assert_eq!(
            verify_header(&k, Some(&h), "POST", "/internal/scores", body, now),
            Ok(())
        );
        assert_eq!(
            verify_header(&k, Some(&h), "POST", "/internal/scores", body, now + 60),
            Ok(())
        );
        assert_eq!(
            verify_header(&k, Some(&h), "POST", "/internal/scores", body, now + 61),
            Err(EdgeSignatureError::Stale)
        );
        assert_eq!(
            verify_header(&k, Some(&h), "POST", "/internal/scores", body, now - 61),
            Err(EdgeSignatureError::Stale)
        );
        assert_eq!(
            verify_header(&k, Some(&h), "POST", "/internal/scores", b"{}", now),
            Err(EdgeSignatureError::Mismatch)
        );
        assert_eq!(
            verify_header(&k, Some(&h), "PUT", "/internal/scores", body, now),
            Err(EdgeSignatureError::Mismatch)
        );
        assert_eq!(
            verify_header(&k, Some(&h), "POST", "/internal/other", body, now),
            Err(EdgeSignatureError::Mismatch)
        );
        assert_eq!(
            verify_header(
                &keys("another-secret-another-secret-12"),
                Some(&h),
                "POST",
                "/internal/scores",
                body,
                now
            ),
            Err(EdgeSignatureError::Mismatch)
        );
        assert_eq!(
            verify_header(&k, None, "POST", "/internal/scores", body, now),
            Err(EdgeSignatureError::Missing)
        );
        for garbage in [
            "",
            "t=",
            "v1=00",
            "t=abc,v1=00",
            "t=1700000000,v1=zz",
            "t=1700000000",
            "t=1,t=2,v1=00",
            "nonsense",
        ] {
            assert_eq!(
                verify_header(&k, Some(garbage), "POST", "/internal/scores", body, now),
                Err(EdgeSignatureError::Malformed),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn the_query_form_and_the_previous_secret_verify() {
        let now = 1_700_000_000;
        let old = "old-edge-secret-old-edge-secret-!";
        let sig = sign(old.as_bytes(), now, "GET", "/internal/leaderboard/ws", b"");
        let rotating = keys(SECRET).with_previous(Some(HmacSecret::new(old.as_bytes().to_vec())));
        let t = now.to_string();
        assert_eq!(
            verify_query(
                &rotating,
                Some(&t),
                Some(&sig),
                "GET",
                "/internal/leaderboard/ws",
                b"",
                now
            ),
            Ok(())
        );
        assert_eq!(
            verify_query(
                &keys(SECRET),
                Some(&t),
                Some(&sig),
                "GET",
                "/internal/leaderboard/ws",
                b"",
                now
            ),
            Err(EdgeSignatureError::Mismatch)
        );
        assert_eq!(
            verify_query(
                &rotating,
                None,
                Some(&sig),
                "GET",
                "/internal/leaderboard/ws",
                b"",
                now
            ),
            Err(EdgeSignatureError::Missing)
        );
    }
}
