//! Action tokens: single-use JWTs with header `{"alg":"HS256","typ":"action+jwt"}` signed with
//! `ACTION_TOKEN_SECRET`, claims `jti sub act pts iat nbf exp` and optionally `brd` (the boards
//! the token counts on). They are what makes a score rise: the edge mints them from the action
//! catalog, a trusted backend may mint them too, and each one is redeemed at most once.

use crate::ids::{ActionName, BoardId, InvalidValue, PlayerId};
use crate::jwt::{self, HmacKeys, HmacSecret, JwtError};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use jwt_compact::Claims;
use serde::{Deserialize, Serialize};

/// The `typ` that marks an action token; any other `typ` (or none) is not one.
pub const ACTION_TOKEN_TYPE: &str = "action+jwt";
/// `|pts|` may not exceed this in a token without `brd` (and `pts` may not be zero).
pub const MAX_POINTS: i64 = 1_000_000;
/// `|pts|` may not exceed this in a token with `brd`: 2^53 − 1, the largest integer every JSON
/// reader (and Redis's scores) holds exactly. Each board's own `value_min`/`value_max` is
/// narrower; the aggregator, which knows the boards, checks those.
pub const MAX_VALUE: i64 = (1 << 53) - 1;
/// A token names at most this many boards (`brd`).
pub const MAX_BOARDS: usize = 8;
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
    /// Kept as raw JSON so that any malformed `brd` (not an array, `null`, a number among the
    /// ids) is reported as a bad `brd` claim rather than as an unreadable token. Absent when
    /// the token names no boards, so such tokens are byte-identical to those minted before.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    brd: Option<serde_json::Value>,
}

/// `Some` for any value the claim has, `null` included (serde's `Option` reads `null` as absent;
/// here only a missing key is absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
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
    /// The boards the token names, in its order; `None` when the claim is absent (then the
    /// catalog entry for `act` decides, else `global`: see `catalog::Catalog::boards_of`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brd: Option<Vec<BoardId>>,
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

    /// The sentence a refused client reads: the check that failed, in words it can act on
    /// (never a secret, a signature or a string from the token).
    pub fn message(&self) -> String {
        match self {
            Self::Invalid(InvalidReason::Jwt(e)) => match e {
                JwtError::Malformed => "The action token is not a well-formed JWT: three base64url parts, a JSON header and JSON claims.".to_owned(),
                JwtError::WrongAlgorithm { .. } => "The action token's alg must be HS256.".to_owned(),
                JwtError::WrongType { .. } => format!("The action token's typ must be {ACTION_TOKEN_TYPE}: a session or any other JWT is not an action token."),
                JwtError::BadSignature => "The action token's signature does not verify: it must be signed with this deployment's ACTION_TOKEN_SECRET.".to_owned(),
            },
            Self::Invalid(InvalidReason::Claim(c)) => format!("The action token's claims are not valid: {c}."),
            Self::WrongPlayer => "The action token was minted for another player (its sub is not the session's).".to_owned(),
            Self::Expired => "The action token has expired (its exp has passed): mint a new one.".to_owned(),
            Self::NotYetValid { retry_after } => format!("The action token is not valid for another {retry_after} s (its nbf: the action takes that long)."),
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

/// Why a token is invalid: its form, or one of its claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error(transparent)]
    Claim(#[from] ClaimError),
}

/// The claim that failed, in words a developer can act on. The values it quotes are numbers
/// the token carried; it never repeats a string from the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error(
        "jti must be at least {MIN_JTI_BYTES} random bytes in base64url (at most 128 characters)"
    )]
    Jti,
    #[error("sub must be a player id: 1 to 64 characters of A-Z, a-z, 0-9, '_', '.', ':' and '-'")]
    Sub,
    #[error("act must be an action name: 1 to 64 characters of a-z, 0-9, '_', '.', ':' and '-'")]
    Act,
    #[error("pts must be a non-zero integer between -{MAX_POINTS} and {MAX_POINTS} when the token names no boards (brd); it is {0}")]
    Points(i64),
    #[error("pts must be an integer between -{MAX_VALUE} and {MAX_VALUE}; it is {0}")]
    Value(i64),
    #[error("brd {0}")]
    Boards(BoardsProblem),
    #[error("iat, nbf and exp must be whole Unix seconds")]
    Times,
    #[error("exp - iat is {0} s; it must be between 1 and {MAX_TTL_SECS}")]
    Lifetime(i64),
    #[error("nbf must be at or after iat and before exp")]
    NotBefore,
    #[error("{0}")]
    Shape(String),
}

/// What is wrong with a token's `brd` (as [`BoardsError`] says it, without repeating an id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BoardsProblem {
    #[error("must be an array of board ids")]
    NotAList,
    #[error("must name 1 to {MAX_BOARDS} boards; it is empty")]
    Empty,
    #[error("must name at most {MAX_BOARDS} boards")]
    TooMany,
    #[error("names a board twice")]
    Duplicate,
    #[error(
        "holds something that is not a board id: 1 to 64 characters of a-z, 0-9, '_', '.' and '-'"
    )]
    Invalid,
}

impl From<&BoardsError> for BoardsProblem {
    fn from(e: &BoardsError) -> Self {
        match e {
            BoardsError::Empty => Self::Empty,
            BoardsError::TooMany => Self::TooMany,
            BoardsError::Duplicate(_) => Self::Duplicate,
            BoardsError::Invalid { .. } => Self::Invalid,
        }
    }
}

impl From<JwtError> for ActionTokenError {
    fn from(e: JwtError) -> Self {
        Self::Invalid(InvalidReason::Jwt(e))
    }
}

fn bad(claim: ClaimError) -> ActionTokenError {
    ActionTokenError::Invalid(InvalidReason::Claim(claim))
}

/// Whether `pts` is allowed: without boards named, non-zero and `|pts| ≤ MAX_POINTS`; with
/// boards named, `|pts| ≤ MAX_VALUE`, zero included (a `best` or `latest` board takes a value,
/// and 0 is a value; the boards' own limits are the aggregator's to check).
pub fn points_allowed(pts: i64, names_boards: bool) -> bool {
    // `unsigned_abs`: `i64::MIN.abs()` overflows.
    if names_boards {
        pts.unsigned_abs() <= MAX_VALUE as u64
    } else {
        pts != 0 && pts.unsigned_abs() <= MAX_POINTS as u64
    }
}

/// Why a list of boards (a token's `brd`, a catalog entry's `boards`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoardsError {
    #[error("the list of boards is empty (name 1 to {MAX_BOARDS}, or leave it out)")]
    Empty,
    #[error("more than {MAX_BOARDS} boards are named")]
    TooMany,
    #[error("the board {0} is named twice")]
    Duplicate(BoardId),
    #[error("{id:?} is not a board id: {reason}")]
    Invalid { id: String, reason: InvalidValue },
}

/// 1 to [`MAX_BOARDS`] distinct boards.
pub fn check_boards(boards: &[BoardId]) -> Result<(), BoardsError> {
    if boards.is_empty() {
        return Err(BoardsError::Empty);
    }
    if boards.len() > MAX_BOARDS {
        return Err(BoardsError::TooMany);
    }
    for (i, b) in boards.iter().enumerate() {
        if boards[..i].contains(b) {
            return Err(BoardsError::Duplicate(b.clone()));
        }
    }
    Ok(())
}

/// Board ids from strings, checked by [`check_boards`].
pub fn parse_boards<S: Into<String>>(
    ids: impl IntoIterator<Item = S>,
) -> Result<Vec<BoardId>, BoardsError> {
    let boards = ids
        .into_iter()
        .map(|id| {
            let id = id.into();
            BoardId::parse(id.clone()).map_err(|reason| BoardsError::Invalid { id, reason })
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_boards(&boards)?;
    Ok(boards)
}

/// The `brd` claim as the token carries it: an array of strings that [`parse_boards`] accepts.
fn brd_claim(raw: Option<serde_json::Value>) -> Result<Option<Vec<BoardId>>, ActionTokenError> {
    let Some(raw) = raw else { return Ok(None) };
    let ids: Vec<String> = serde_json::from_value(raw)
        .map_err(|_| bad(ClaimError::Boards(BoardsProblem::NotAList)))?;
    parse_boards(ids)
        .map(Some)
        .map_err(|e| bad(ClaimError::Boards((&e).into())))
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
    /// The boards to name in `brd`; `None` mints a token without the claim.
    pub boards: Option<&'a [BoardId]>,
}

/// Why a mint request was refused (a catalog or caller mistake, not a client one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MintError {
    #[error("points must be non-zero and at most {MAX_POINTS} in absolute value")]
    PointsOutOfRange,
    /// With boards named, the wider bound (`MAX_VALUE`) applies.
    #[error("points must be at most {MAX_VALUE} in absolute value")]
    ValueOutOfRange,
    /// Transparent: its sentences already say they are about boards (and a wrapping message
    /// would print twice in an error chain).
    #[error(transparent)]
    Boards(#[from] BoardsError),
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
        check_mint_points(req)?;
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
            brd: req.boards.map(<[BoardId]>::to_vec),
        };
        let mut wire = Claims::new(WireClaims {
            jti: claims.jti.clone(),
            sub: claims.sub.to_string(),
            act: claims.act.to_string(),
            pts: claims.pts,
            brd: claims.brd.as_ref().map(|b| serde_json::json!(b)),
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
        let claims: Claims<serde_json::Map<String, serde_json::Value>> =
            jwt::verify_hs256(&parsed, &self.keys).map_err(|e| match e {
                // Signed by us, but iat, nbf or exp is not a number of seconds.
                JwtError::Malformed => bad(ClaimError::Times),
                e => e.into(),
            })?;
        check_shape(claims)
    }
}

/// The boards (when named) and the points of a mint request, by the rules a verifier applies.
fn check_mint_points(req: &MintRequest<'_>) -> Result<(), MintError> {
    if let Some(boards) = req.boards {
        check_boards(boards)?;
    }
    match (points_allowed(req.points, req.boards.is_some()), req.boards) {
        (true, _) => Ok(()),
        (false, None) => Err(MintError::PointsOutOfRange),
        (false, Some(_)) => Err(MintError::ValueOutOfRange),
    }
}

/// The custom claims read from the verified payload, naming the claim that is missing or of
/// the wrong type.
fn wire_claims(
    custom: serde_json::Map<String, serde_json::Value>,
) -> Result<WireClaims, ActionTokenError> {
    let object = serde_json::Value::Object(custom);
    serde_path_to_error::deserialize(object).map_err(|e| {
        let what = match e.path().to_string().as_str() {
            "jti" | "sub" | "act" => format!("{} must be a string", e.path()),
            "pts" => "pts must be an integer".to_owned(),
            // A missing claim: serde names it (one of ours, never the token's text).
            _ => e.inner().to_string(),
        };
        bad(ClaimError::Shape(what))
    })
}

fn check_shape(
    wire: Claims<serde_json::Map<String, serde_json::Value>>,
) -> Result<ActionClaims, ActionTokenError> {
    let WireClaims {
        jti,
        sub,
        act,
        pts,
        brd,
    } = wire_claims(wire.custom)?;
    let decoded = URL_SAFE_NO_PAD
        .decode(&jti)
        .map_err(|_| bad(ClaimError::Jti))?;
    if decoded.len() < MIN_JTI_BYTES || jti.len() > 128 {
        return Err(bad(ClaimError::Jti));
    }
    let sub = PlayerId::parse(sub).map_err(|_| bad(ClaimError::Sub))?;
    let act = ActionName::parse(act).map_err(|_| bad(ClaimError::Act))?;
    // `brd` before `pts`: which bound `pts` has depends on it.
    let brd = brd_claim(brd)?;
    match (points_allowed(pts, brd.is_some()), &brd) {
        (true, _) => {}
        (false, None) => return Err(bad(ClaimError::Points(pts))),
        (false, Some(_)) => return Err(bad(ClaimError::Value(pts))),
    }
    let time = |t| jwt::unix(t).ok_or_else(|| bad(ClaimError::Times));
    let (iat, nbf, exp) = (
        time(wire.issued_at)?,
        time(wire.not_before)?,
        time(wire.expiration)?,
    );
    if exp <= iat || exp - iat > MAX_TTL_SECS {
        return Err(bad(ClaimError::Lifetime(exp - iat)));
    }
    if nbf < iat || nbf >= exp {
        return Err(bad(ClaimError::NotBefore));
    }
    Ok(ActionClaims {
        jti,
        sub,
        act,
        pts,
        iat,
        nbf,
        exp,
        brd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a test secret of thirty-two bytes or more, for action tokens";

    /// A token of any header and claims, signed with `secret`: what a game backend with a
    /// mistake in its minting code would send.
    fn signed(header: serde_json::Value, claims: serde_json::Value, secret: &[u8]) -> String {
        use hmac::Mac;
        let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
        let input = format!("{}.{}", part(&header), part(&claims));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    /// Claims that verify, to spoil one at a time.
    fn good_claims() -> serde_json::Value {
        serde_json::json!({"jti": URL_SAFE_NO_PAD.encode([7u8; 16]), "sub": "p1", "act": "quest",
            "pts": 50, "iat": 1_000, "nbf": 1_000, "exp": 1_300})
    }

    /// The public message the token gets from a verifier holding SECRET, at `now` 1,100.
    fn refusal(header: serde_json::Value, claims: serde_json::Value, secret: &[u8]) -> String {
        let token = signed(header, claims, secret);
        let tokens = ActionTokens::from_secret(HmacSecret::new(SECRET));
        let player = PlayerId::parse("p1").unwrap();
        let e = tokens
            .verify(&token, &player, 1_100, 0)
            .expect_err("refused");
        e.message()
    }

    #[test]
    fn each_refusal_names_the_check_that_failed() {
        let header = serde_json::json!({"alg": "HS256", "typ": "action+jwt"});
        let with = |k: &str, v: serde_json::Value| {
            let mut c = good_claims();
            c[k] = v;
            c
        };
        let nine: Vec<String> = (0..9).map(|i| format!("b{i}")).collect();
        let cases = [
            (
                refusal(
                    header.clone(),
                    good_claims(),
                    b"another secret of thirty-two bytes or more!",
                ),
                "ACTION_TOKEN_SECRET",
            ),
            (
                refusal(header.clone(), with("pts", 0.into()), SECRET),
                "pts must be a non-zero integer",
            ),
            (
                refusal(header.clone(), with("pts", 1.5.into()), SECRET),
                "pts must be an integer",
            ),
            (
                refusal(header.clone(), with("pts", 2_000_000.into()), SECRET),
                "it is 2000000",
            ),
            (
                refusal(
                    header.clone(),
                    with("exp", (1_000 + 172_800).into()),
                    SECRET,
                ),
                "exp - iat is 172800 s; it must be between 1 and 86400",
            ),
            (
                refusal(header.clone(), with("brd", serde_json::json!(nine)), SECRET),
                "brd must name at most 8 boards",
            ),
            (
                refusal(
                    header.clone(),
                    with("brd", serde_json::json!(["Level-1"])),
                    SECRET,
                ),
                "brd holds something that is not a board id",
            ),
            (
                refusal(serde_json::json!({"alg": "HS256"}), good_claims(), SECRET),
                "typ must be action+jwt",
            ),
            (
                refusal(header.clone(), with("sub", 7.into()), SECRET),
                "sub must be a string",
            ),
            (
                refusal(header.clone(), with("nbf", 1_400.into()), SECRET),
                "nbf must be at or after iat",
            ),
            (
                refusal(header.clone(), with("iat", "yesterday".into()), SECRET),
                "iat, nbf and exp must be whole Unix seconds",
            ),
            (
                refusal(
                    serde_json::json!({"alg": "HS384", "typ": "action+jwt"}),
                    good_claims(),
                    SECRET,
                ),
                "alg must be HS256",
            ),
        ];
        for (message, names) in &cases {
            assert!(
                message.contains(names),
                "{message:?} does not say {names:?}"
            );
            assert!(
                !message.contains("Level-1") && !message.contains("yesterday"),
                "{message}"
            );
        }
        let mut missing = good_claims();
        missing.as_object_mut().unwrap().remove("act");
        let m = refusal(header, missing, SECRET);
        assert!(m.contains("missing field `act`"), "{m}");
    }

    #[test]
    fn points_without_boards_are_non_zero_and_at_most_a_million() {
        for ok in [1, -1, MAX_POINTS, -MAX_POINTS] {
            assert!(points_allowed(ok, false), "{ok}");
        }
        for bad in [0, MAX_POINTS + 1, -MAX_POINTS - 1, i64::MIN, i64::MAX] {
            assert!(!points_allowed(bad, false), "{bad}");
        }
    }

    #[test]
    fn points_with_boards_may_be_zero_and_reach_2_pow_53_minus_1() {
        assert_eq!(MAX_VALUE, 9_007_199_254_740_991);
        for ok in [0, 1, MAX_POINTS + 1, MAX_VALUE, -MAX_VALUE] {
            assert!(points_allowed(ok, true), "{ok}");
        }
        for bad in [MAX_VALUE + 1, -MAX_VALUE - 1, i64::MIN, i64::MAX] {
            assert!(!points_allowed(bad, true), "{bad}");
        }
    }

    #[test]
    fn a_list_of_boards_has_1_to_8_distinct_valid_ids() {
        let ids = |n: usize| (0..n).map(|i| format!("b{i}")).collect::<Vec<_>>();
        assert_eq!(parse_boards(ids(1)).unwrap().len(), 1);
        assert_eq!(parse_boards(ids(8)).unwrap().len(), 8);
        assert_eq!(parse_boards(ids(0)), Err(BoardsError::Empty));
        assert_eq!(parse_boards(ids(9)), Err(BoardsError::TooMany));
        assert_eq!(
            parse_boards(["global", "x", "global"]),
            Err(BoardsError::Duplicate(BoardId::global()))
        );
        assert!(matches!(
            parse_boards(["global", "Level-1"]),
            Err(BoardsError::Invalid { id, .. }) if id == "Level-1"
        ));
    }
}
