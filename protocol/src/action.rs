//! Action tokens: single-use JWTs with header `{"alg":"HS256","typ":"action+jwt"}` signed with
//! `ACTION_TOKEN_SECRET`, claims `jti sub act pts iat nbf exp`. They are what makes a score
//! rise: the edge mints them from the action catalog, a trusted backend may mint them too, and
//! each one is redeemed at most once.

use crate::ids::{ActionName, PlayerId};
use crate::jwt::{self, HmacKeys, HmacSecret, JwtError};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jwt_compact::Claims;
use serde::{Deserialize, Serialize};

/// The `typ` that marks an action token; any other `typ` (or none) is not one.
pub const ACTION_TOKEN_TYPE: &str = "action+jwt";
/// `|pts|` may not exceed this.
pub const MAX_POINTS: i64 = 1_000_000;
/// Default `exp - iat` (`ACTION_TOKEN_TTL`).
pub const DEFAULT_TTL_SECS: i64 = 300;
/// The longest lifetime a verifier accepts: redeemed `jti`s are remembered until `exp`, so an
/// unbounded `exp` would be unbounded memory.
pub const MAX_TTL_SECS: i64 = 24 * 60 * 60;
/// `jti` carries at least this much randomness.
pub const MIN_JTI_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct WireClaims {
    jti: String,
    sub: String,
    act: String,
    pts: i64,
}

/// A verified action token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionClaims {
    pub jti: String,
    pub sub: PlayerId,
    pub act: ActionName,
    pub pts: i64,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

/// Why an action token was refused, in the order the checks run. Each maps to one error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionTokenError {
    /// `422 ACTION_TOKEN_INVALID`: bad signature, wrong `typ`/`alg`, malformed claims.
    #[error("the action token is invalid: {0}")]
    Invalid(InvalidReason),
    /// `403 ACTION_TOKEN_WRONG_PLAYER`.
    #[error("the action token belongs to another player")]
    WrongPlayer,
    /// `422 ACTION_TOKEN_EXPIRED`.
    #[error("the action token has expired")]
    Expired,
    /// `425 ACTION_TOKEN_NOT_YET_VALID`; `retry_after` seconds until `nbf`.
    #[error("the action token is not valid for another {retry_after} s")]
    NotYetValid { retry_after: i64 },
}

impl ActionTokenError {
    pub fn code(&self) -> crate::ErrorCode {
        use crate::ErrorCode;
        match self {
            Self::Invalid(_) => ErrorCode::ActionTokenInvalid,
            Self::WrongPlayer => ErrorCode::ActionTokenWrongPlayer,
            Self::Expired => ErrorCode::ActionTokenExpired,
            Self::NotYetValid { .. } => ErrorCode::ActionTokenNotYetValid,
        }
    }

    /// The `result` label of `action_token_validations_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::WrongPlayer => "wrong_player",
            Self::Expired => "expired",
            Self::NotYetValid { .. } => "not_yet_valid",
        }
    }
}

/// Detail of an invalid token, for logs (never shown beyond the code and a sentence).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("a claim is missing or malformed: {0}")]
    BadClaim(&'static str),
}

impl From<JwtError> for ActionTokenError {
    fn from(e: JwtError) -> Self {
        Self::Invalid(InvalidReason::Jwt(e))
    }
}

fn bad(claim: &'static str) -> ActionTokenError {
    ActionTokenError::Invalid(InvalidReason::BadClaim(claim))
}

/// What to mint.
#[derive(Debug, Clone)]
pub struct MintRequest<'a> {
    pub player: &'a PlayerId,
    pub action: &'a ActionName,
    pub points: i64,
    /// The action's minimum duration: `nbf = iat + min_seconds`.
    pub min_seconds: i64,
    /// `exp - iat`.
    pub ttl_secs: i64,
}

/// Why a mint request was refused (a catalog or caller mistake, not a client one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("points must be non-zero and at most {MAX_POINTS} in absolute value")]
    PointsOutOfRange,
    #[error("the lifetime must be between 1 s and {MAX_TTL_SECS} s")]
    TtlOutOfRange,
    #[error("min_seconds must be at least 0 and shorter than the lifetime")]
    MinSecondsOutOfRange,
}

/// A minted token and the claims it carries.
#[derive(Debug, Clone)]
pub struct MintedAction {
    pub token: String,
    pub claims: ActionClaims,
}

/// Mints and verifies action tokens with `ACTION_TOKEN_SECRET` (and, during a rotation,
/// verifies with `ACTION_TOKEN_SECRET_PREVIOUS` too).
#[derive(Debug, Clone)]
pub struct ActionTokens {
    keys: HmacKeys,
}

impl ActionTokens {
    pub fn new(keys: HmacKeys) -> Self {
        Self { keys }
    }

    pub fn from_secret(secret: HmacSecret) -> Self {
        Self::new(HmacKeys::new(secret))
    }

    /// Mints a token at `now` (unix seconds). `jti_random` is at least 16 random bytes from the
    /// caller's CSPRNG (`getrandom`, Web Crypto), base64url-encoded into `jti`.
    pub fn mint(
        &self,
        req: &MintRequest<'_>,
        jti_random: &[u8; MIN_JTI_BYTES],
        now: i64,
    ) -> Result<MintedAction, MintError> {
        if req.points == 0 || req.points.abs() > MAX_POINTS {
            return Err(MintError::PointsOutOfRange);
        }
        if req.ttl_secs < 1 || req.ttl_secs > MAX_TTL_SECS {
            return Err(MintError::TtlOutOfRange);
        }
        if req.min_seconds < 0 || req.min_seconds >= req.ttl_secs {
            return Err(MintError::MinSecondsOutOfRange);
        }
        let claims = ActionClaims {
            jti: URL_SAFE_NO_PAD.encode(jti_random),
            sub: req.player.clone(),
            act: req.action.clone(),
            pts: req.points,
            iat: now,
            nbf: now + req.min_seconds,
            exp: now + req.ttl_secs,
        };
        let mut wire = Claims::new(WireClaims {
            jti: claims.jti.clone(),
            sub: claims.sub.to_string(),
            act: claims.act.to_string(),
            pts: claims.pts,
        });
        wire.issued_at = Some(jwt::datetime(claims.iat));
        wire.not_before = Some(jwt::datetime(claims.nbf));
        wire.expiration = Some(jwt::datetime(claims.exp));
        let token = jwt::sign_hs256(ACTION_TOKEN_TYPE, &wire, &self.keys.current);
        Ok(MintedAction { token, claims })
    }

    /// Verifies `token` for `player` at `now` (unix seconds), in DESIGN.md's order: invalid
    /// (shape, `typ`, `alg`, signature, claims), wrong player, expired, not yet valid.
    ///
    /// `leeway` (seconds) widens both time checks; the edge, which mints with its own clock,
    /// passes 0; the aggregator re-checking after the edge passes a small skew allowance.
    pub fn verify(
        &self,
        token: &str,
        player: &PlayerId,
        now: i64,
        leeway: i64,
    ) -> Result<ActionClaims, ActionTokenError> {
        let claims = self.verify_ignoring_time_and_player(token)?;
        if &claims.sub != player {
            return Err(ActionTokenError::WrongPlayer);
        }
        if now >= claims.exp.saturating_add(leeway) {
            return Err(ActionTokenError::Expired);
        }
        let not_before = claims.nbf.saturating_sub(leeway);
        if now < not_before {
            return Err(ActionTokenError::NotYetValid {
                retry_after: not_before - now,
            });
        }
        Ok(claims)
    }

    /// Signature, type and claim shape only. For tools that inspect a token (e.g. to learn
    /// its `jti` and `exp`) after it was verified elsewhere.
    pub fn verify_ignoring_time_and_player(
        &self,
        token: &str,
    ) -> Result<ActionClaims, ActionTokenError> {
        let parsed = jwt::parse(token)?;
        match jwt::token_type(&parsed) {
            Some(ACTION_TOKEN_TYPE) => {}
            other => {
                return Err(JwtError::WrongType {
                    found: other.map(str::to_owned),
                }
                .into())
            }
        }
        let wire: Claims<WireClaims> = jwt::verify_hs256(&parsed, &self.keys)?;
        check_shape(wire)
    }
}

fn check_shape(wire: Claims<WireClaims>) -> Result<ActionClaims, ActionTokenError> {
    let WireClaims { jti, sub, act, pts } = wire.custom;
    let decoded = URL_SAFE_NO_PAD.decode(&jti).map_err(|_| bad("jti"))?;
    if decoded.len() < MIN_JTI_BYTES || jti.len() > 128 {
        return Err(bad("jti"));
    }
    let sub = PlayerId::parse(sub).map_err(|_| bad("sub"))?;
    let act = ActionName::parse(act).map_err(|_| bad("act"))?;
    if pts == 0 || pts.abs() > MAX_POINTS {
        return Err(bad("pts"));
    }
    let iat = jwt::unix(wire.issued_at).ok_or_else(|| bad("iat"))?;
    let nbf = jwt::unix(wire.not_before).ok_or_else(|| bad("nbf"))?;
    let exp = jwt::unix(wire.expiration).ok_or_else(|| bad("exp"))?;
    if exp <= iat || exp - iat > MAX_TTL_SECS {
        return Err(bad("exp"));
    }
    if nbf < iat || nbf >= exp {
        return Err(bad("nbf"));
    }
    Ok(ActionClaims {
        jti,
        sub,
        act,
        pts,
        iat,
        nbf,
        exp,
    })
}
