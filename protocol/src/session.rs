//! Session JWTs: `Authorization: Bearer <jwt>` with claims `sub name iat exp jti` (and `iss`,
//! `aud` when configured), signed HS256 with `JWT_SECRET` or EdDSA (Ed25519) with a private
//! key only the aggregator holds.

use crate::ids::PlayerId;
use crate::jwt::{self, HmacKeys, HmacSecret, JwtError};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use jwt_compact::{alg::Ed25519, AlgorithmExt, Claims, Header};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Clock leeway for session `exp`, `nbf` and `iat`, as DESIGN.md fixes it.
pub const SESSION_LEEWAY_SECS: i64 = 30;

/// `typ` of the session tokens we mint. Tokens without a `typ` are accepted too (other
/// minters leave it out); `action+jwt` never is.
pub const SESSION_TOKEN_TYPE: &str = "JWT";

/// The session's claims other than the times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WireClaims {
    sub: String,
    name: String,
    jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    aud: Option<Audience>,
}

/// `aud` may be one string or an array of them (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::One(a) => a == wanted,
            Self::Many(all) => all.iter().any(|a| a == wanted),
        }
    }
}

/// A session that verified: who the player is, and which session it is (for revocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub player_id: PlayerId,
    pub name: String,
    pub jti: String,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// Why a session token was refused. Every variant is `401 UNAUTHENTICATED` to the client;
/// the variant is for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("the session claims are missing or malformed")]
    BadClaims,
    #[error("the session has expired")]
    Expired,
    #[error("the session is not valid yet")]
    NotYetValid,
    #[error("the session was issued by someone else")]
    WrongIssuer,
    #[error("the session is meant for another audience")]
    WrongAudience,
}

/// The key sessions are signed with.
pub enum SessionSigningKey {
    Hs256(HmacSecret),
    EdDsa(Box<ed25519_dalek::SigningKey>),
}

impl fmt::Debug for SessionSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hs256(_) => f.write_str("SessionSigningKey::Hs256([REDACTED])"),
            Self::EdDsa(_) => f.write_str("SessionSigningKey::EdDsa([REDACTED])"),
        }
    }
}

/// Why a PEM key could not be read. Never carries the key's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(&'static str);

impl SessionSigningKey {
    /// An Ed25519 private key in PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), as `openssl genpkey
    /// -algorithm ed25519` writes it.
    pub fn ed25519_from_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(|k| Self::EdDsa(Box::new(k)))
            .map_err(|_| KeyError("not an Ed25519 private key in PKCS#8 PEM"))
    }

    /// The keys that verify what this key signs (for the aggregator, which holds both).
    pub fn verifying_keys(&self, previous_hmac: Option<HmacSecret>) -> SessionVerifyingKeys {
        match self {
            Self::Hs256(secret) => SessionVerifyingKeys::Hs256(
                HmacKeys::new(secret.clone()).with_previous(previous_hmac),
            ),
            Self::EdDsa(key) => SessionVerifyingKeys::EdDsa(key.verifying_key()),
        }
    }
}

/// The keys sessions are verified with: HS256 secrets (current and, during a rotation,
/// previous), or one Ed25519 public key.
#[derive(Debug, Clone)]
pub enum SessionVerifyingKeys {
    Hs256(HmacKeys),
    EdDsa(ed25519_dalek::VerifyingKey),
}

impl SessionVerifyingKeys {
    /// An Ed25519 public key in SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn ed25519_from_pem(pem: &str) -> Result<Self, KeyError> {
        ed25519_dalek::VerifyingKey::from_public_key_pem(pem)
            .map(Self::EdDsa)
            .map_err(|_| KeyError("not an Ed25519 public key in SPKI PEM"))
    }
}

/// `iss` and `aud` to set when minting and to require when verifying (`JWT_ISSUER`,
/// `JWT_AUDIENCE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionPolicy {
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

/// A freshly minted session token.
#[derive(Debug, Clone)]
pub struct IssuedSession {
    pub token: String,
    pub expires_at: i64,
}

/// Mints sessions (aggregator only).
#[derive(Debug)]
pub struct SessionIssuer {
    pub key: SessionSigningKey,
    pub policy: SessionPolicy,
    pub ttl_secs: i64,
}

impl SessionIssuer {
    /// Signs a session for `player`. `jti` must be unique (the caller draws it at random and
    /// records it, so the session can be revoked).
    pub fn issue(&self, player: &PlayerId, name: &str, jti: &str, now: i64) -> IssuedSession {
        let expires_at = now.saturating_add(self.ttl_secs);
        let mut claims = Claims::new(WireClaims {
            sub: player.as_str().to_owned(),
            name: name.to_owned(),
            jti: jti.to_owned(),
            iss: self.policy.issuer.clone(),
            aud: self.policy.audience.clone().map(Audience::One),
        });
        claims.issued_at = Some(jwt::datetime(now));
        claims.expiration = Some(jwt::datetime(expires_at));
        let token = match &self.key {
            SessionSigningKey::Hs256(secret) => {
                jwt::sign_hs256(SESSION_TOKEN_TYPE, &claims, secret)
            }
            SessionSigningKey::EdDsa(key) => Ed25519
                .token(
                    &Header::empty().with_token_type(SESSION_TOKEN_TYPE),
                    &claims,
                    key,
                )
                .expect("claims serialize to JSON"),
        };
        IssuedSession { token, expires_at }
    }
}

/// Verifies sessions (edge and aggregator).
#[derive(Debug, Clone)]
pub struct SessionVerifier {
    pub keys: SessionVerifyingKeys,
    pub policy: SessionPolicy,
}

impl SessionVerifier {
    pub fn new(keys: SessionVerifyingKeys, policy: SessionPolicy) -> Self {
        Self { keys, policy }
    }

    /// Checks, in order: shape, `typ`, `alg` (exactly the configured one), signature, claims,
    /// `iss`/`aud` when configured, then `exp`/`nbf`/`iat` against `now` (unix seconds) with
    /// [`SESSION_LEEWAY_SECS`].
    pub fn verify(&self, token: &str, now: i64) -> Result<Session, SessionError> {
        let parsed = jwt::parse(token)?;
        match jwt::token_type(&parsed) {
            None => {}
            Some(t) if t.eq_ignore_ascii_case(SESSION_TOKEN_TYPE) => {}
            Some(other) => {
                return Err(JwtError::WrongType {
                    found: Some(other.to_owned()),
                }
                .into())
            }
        }
        let claims: Claims<WireClaims> = match &self.keys {
            SessionVerifyingKeys::Hs256(keys) => jwt::verify_hs256(&parsed, keys)?,
            SessionVerifyingKeys::EdDsa(key) => {
                if parsed.algorithm() != "EdDSA" {
                    return Err(JwtError::WrongAlgorithm {
                        found: parsed.algorithm().to_owned(),
                    }
                    .into());
                }
                Ed25519
                    .validator::<jwt::IgnoredClaims>(key)
                    .validate(&parsed)
                    .map_err(jwt::map_validation_error)?;
                parsed
                    .deserialize_claims_unchecked()
                    .map_err(|_| SessionError::BadClaims)?
            }
        };
        self.check_claims(claims, now)
    }

    fn check_claims(&self, claims: Claims<WireClaims>, now: i64) -> Result<Session, SessionError> {
        let player_id = PlayerId::parse(claims.custom.sub).map_err(|_| SessionError::BadClaims)?;
        let jti = claims.custom.jti;
        if jti.is_empty() || jti.len() > 128 {
            return Err(SessionError::BadClaims);
        }
        if let Some(wanted) = &self.policy.issuer {
            if claims.custom.iss.as_deref() != Some(wanted.as_str()) {
                return Err(SessionError::WrongIssuer);
            }
        }
        if let Some(wanted) = &self.policy.audience {
            if !claims.custom.aud.is_some_and(|aud| aud.contains(wanted)) {
                return Err(SessionError::WrongAudience);
            }
        }
        let expires_at = jwt::unix(claims.expiration).ok_or(SessionError::BadClaims)?;
        let issued_at = jwt::unix(claims.issued_at).ok_or(SessionError::BadClaims)?;
        if now > expires_at.saturating_add(SESSION_LEEWAY_SECS) {
            return Err(SessionError::Expired);
        }
        let not_before = jwt::unix(claims.not_before).unwrap_or(issued_at);
        if now
            < not_before
                .max(issued_at)
                .saturating_sub(SESSION_LEEWAY_SECS)
        {
            return Err(SessionError::NotYetValid);
        }
        Ok(Session {
            player_id,
            name: claims.custom.name,
            jti,
            issued_at,
            expires_at,
        })
    }
}
