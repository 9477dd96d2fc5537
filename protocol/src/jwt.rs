//! JWT plumbing shared by session and action tokens: size limit, parsing, HS256 verification
//! against a current and an optional previous key (rotation), and time conversions.

use chrono::{DateTime, TimeZone, Utc};
use jwt_compact::{
    alg::{Hs256, Hs256Key},
    AlgorithmExt, Claims, Header, UntrustedToken, ValidationError,
};
use serde::de::DeserializeOwned;
use std::fmt;

/// No token we mint comes near this; anything longer is refused before it is parsed.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Why a JWT was refused before its claims were looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's alg {found:?} is not the accepted one")]
    WrongAlgorithm { found: String },
    #[error("the token's typ {found:?} is not the accepted one")]
    WrongType { found: Option<String> },
    #[error("the token's signature does not verify")]
    BadSignature,
}

/// An HMAC secret. Its `Debug` never prints the bytes, so it can sit in configuration structs.
#[derive(Clone)]
pub struct HmacSecret(Vec<u8>);

impl HmacSecret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn jwt_key(&self) -> Hs256Key {
        Hs256Key::new(&self.0)
    }
}

impl fmt::Debug for HmacSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSecret([REDACTED])")
    }
}

/// A current secret for signing and verifying, and during a rotation the previous one, which
/// is accepted for verification only.
#[derive(Debug, Clone)]
pub struct HmacKeys {
    pub current: HmacSecret,
    pub previous: Option<HmacSecret>,
}

impl HmacKeys {
    pub fn new(current: HmacSecret) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    pub fn with_previous(mut self, previous: Option<HmacSecret>) -> Self {
        self.previous = previous;
        self
    }

    /// The keys to try when verifying, current first.
    pub fn verifying(&self) -> impl Iterator<Item = &HmacSecret> {
        std::iter::once(&self.current).chain(self.previous.as_ref())
    }
}

/// Splits and decodes a token without trusting anything in it.
pub(crate) fn parse(token: &str) -> Result<UntrustedToken<'_>, JwtError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    UntrustedToken::new(token).map_err(|_| JwtError::Malformed)
}

/// The header's `typ`, as the token carries it.
pub(crate) fn token_type<'a>(token: &'a UntrustedToken<'_>) -> Option<&'a str> {
    token.header().token_type.as_deref()
}

/// Verifies an HS256 signature with any of `keys`, then decodes the custom claims `T`.
///
/// The algorithm is checked first and exactly: `none`, `HS512`, `EdDSA` and any other name
/// fail here, whatever the signature says.
pub(crate) fn verify_hs256<T: DeserializeOwned>(
    token: &UntrustedToken<'_>,
    keys: &HmacKeys,
) -> Result<Claims<T>, JwtError> {
    if token.algorithm() != "HS256" {
        return Err(JwtError::WrongAlgorithm {
            found: token.algorithm().to_owned(),
        });
    }
    let mut outcome = Err(JwtError::BadSignature);
    for key in keys.verifying() {
        let jwt_key = key.jwt_key();
        match Hs256.validator::<IgnoredClaims>(&jwt_key).validate(token) {
            Ok(_) => {
                outcome = Ok(());
                break;
            }
            Err(err) => outcome = Err(map_validation_error(err)),
        }
    }
    outcome?;
    token
        .deserialize_claims_unchecked::<T>()
        .map_err(|_| JwtError::Malformed)
}

pub(crate) fn map_validation_error(err: ValidationError) -> JwtError {
    match err {
        ValidationError::AlgorithmMismatch { actual, .. } => {
            JwtError::WrongAlgorithm { found: actual }
        }
        ValidationError::InvalidSignature
        | ValidationError::InvalidSignatureLen { .. }
        | ValidationError::MalformedSignature(_) => JwtError::BadSignature,
        _ => JwtError::Malformed,
    }
}

/// Claims decoded only so the signature can be checked; the typed ones come after.
#[derive(serde::Deserialize)]
pub(crate) struct IgnoredClaims {}

/// Signs `claims` with HS256 under a header carrying `typ`.
pub(crate) fn sign_hs256<T: serde::Serialize>(
    typ: &str,
    claims: &Claims<T>,
    key: &HmacSecret,
) -> String {
    Hs256
        .token(
            &Header::empty().with_token_type(typ),
            claims,
            &key.jwt_key(),
        )
        // Serializing plain structs of strings and integers cannot fail.
        .expect("claims serialize to JSON")
}

/// Unix seconds to the `DateTime` jwt-compact stores. Out-of-range values clamp to the epoch,
/// which every check then treats as long expired.
pub(crate) fn datetime(unix_seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix_seconds, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

pub(crate) fn unix(dt: Option<DateTime<Utc>>) -> Option<i64> {
    dt.map(|d| d.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};

    /// RFC 7515 Appendix A.1: the HS256 JWS example, verified byte for byte with its
    /// published key. The token carries `exp = 1300819380`; the check here is the signature
    /// (time checks live in the token kinds, with a pinned clock).
    #[test]
    fn rfc7515_appendix_a1_verifies_with_its_published_key() {
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
            .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
            .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let k = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let keys = HmacKeys::new(HmacSecret::new(URL_SAFE_NO_PAD.decode(k).unwrap()));

        #[derive(serde::Deserialize)]
        struct Example {
            iss: String,
            #[serde(rename = "http://example.com/is_root")]
            is_root: bool,
        }
        let parsed = parse(token).unwrap();
        assert_eq!(token_type(&parsed), Some("JWT"));
        let claims = verify_hs256::<Example>(&parsed, &keys).expect("RFC example verifies");
        assert_eq!(claims.custom.iss, "joe");
        assert!(claims.custom.is_root);
        assert_eq!(unix(claims.expiration), Some(1_300_819_380));

        // One bit of the key, of the header, of the payload or of the signature changes the
        // answer.
        let mut bad_key = URL_SAFE_NO_PAD.decode(k).unwrap();
        bad_key[0] ^= 1;
        let bad = HmacKeys::new(HmacSecret::new(bad_key));
        assert_eq!(
            verify_hs256::<Example>(&parsed, &bad).err(),
            Some(JwtError::BadSignature)
        );
        let parts: Vec<&str> = token.split('.').collect();
        for i in 0..3 {
            let mut raw = URL_SAFE_NO_PAD.decode(parts[i]).unwrap();
            let last = raw.len() - 1;
            raw[last] ^= 1;
            let mut tampered: Vec<String> = parts.iter().map(|p| p.to_string()).collect();
            tampered[i] = URL_SAFE_NO_PAD.encode(raw);
            let tampered = tampered.join(".");
            let outcome = parse(&tampered).and_then(|t| verify_hs256::<Example>(&t, &keys));
            assert!(outcome.is_err(), "tampered part {i} must not verify");
        }
    }

    #[test]
    fn a_previous_key_verifies_only_while_it_is_configured() {
        let old = HmacSecret::new(b"old-secret-old-secret-old-secret".to_vec());
        let new = HmacSecret::new(b"new-secret-new-secret-new-secret".to_vec());
        let claims = Claims::new(serde_json::json!({"x": 1}));
        let token = sign_hs256("JWT", &claims, &old);
        let parsed = parse(&token).unwrap();
        let rotating = HmacKeys::new(new.clone()).with_previous(Some(old));
        assert!(verify_hs256::<serde_json::Value>(&parsed, &rotating).is_ok());
        let rotated = HmacKeys::new(new);
        assert_eq!(
            verify_hs256::<serde_json::Value>(&parsed, &rotated).err(),
            Some(JwtError::BadSignature)
        );
    }

    #[test]
    fn oversized_and_garbage_tokens_are_malformed() {
        assert_eq!(parse("").err(), Some(JwtError::Malformed));
        assert_eq!(parse("abc").err(), Some(JwtError::Malformed));
        assert_eq!(parse("a.b.c").err(), Some(JwtError::Malformed));
        let huge = format!(
            "{}.{}.{}",
            "a".repeat(2000),
            "b".repeat(2000),
            "c".repeat(200)
        );
        assert_eq!(parse(&huge).err(), Some(JwtError::Malformed));
    }
}
