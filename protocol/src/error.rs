//! The error codes of the public API, each with its HTTP status, and the one error body shape
//! every failure uses: `{"error": {"code": "...", "message": "..."}}`.

use serde::{Deserialize, Serialize};

/// Every error code a client can see. The `SCREAMING_SNAKE_CASE` names are the contract;
/// variants document their status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the body or a parameter is malformed.
    BadRequest,
    /// 401: missing, bad or expired session JWT, or a revoked session.
    Unauthenticated,
    /// 401: wrong name or password.
    BadCredentials,
    /// 401: a call to the aggregator's internal routes without a valid edge signature.
    EdgeSignatureInvalid,
    /// 403: the player is banned.
    PlayerBanned,
    /// 403: the action token was minted for another player.
    ActionTokenWrongPlayer,
    /// 403: an admin route without the admin key, or guests are disabled.
    Forbidden,
    /// 404: no such player.
    PlayerNotFound,
    /// 404: no such route.
    NotFound,
    /// 404: no such board, or a board that is not public.
    BoardNotFound,
    /// 404: no such period of the board.
    PeriodNotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed,
    /// 409: the name is already taken (case-insensitively).
    NameTaken,
    /// 409: the action token was already redeemed.
    ActionTokenReplayed,
    /// 409: the board has scores, so its order, operator, reset or time zone cannot change.
    BoardInUse,
    /// 413: the body is larger than 4 KiB.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 422: the action token's signature, `typ`, `alg` or shape is wrong.
    ActionTokenInvalid,
    /// 422: the action token is past its `exp`.
    ActionTokenExpired,
    /// 422: the action is not in the catalog.
    UnknownAction,
    /// 422: the token names a board that does not exist or is hidden.
    UnknownBoard,
    /// 422: the token's value is outside a board's `value_min`..`value_max`.
    ValueOutOfRange,
    /// 425: the action token is before its `nbf`.
    ActionTokenNotYetValid,
    /// 429: a rate limit was hit; `Retry-After` says when to try again.
    RateLimited,
    /// 500: our fault; the body never says more.
    InternalError,
    /// 503: the aggregator (seen from the edge) or a dependency is unavailable; retry later.
    UpstreamUnavailable,
    /// 503: this instance is at capacity (queue full, too many streams); retry later.
    Overloaded,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub const fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            BadRequest => 400,
            Unauthenticated | BadCredentials | EdgeSignatureInvalid => 401,
            PlayerBanned | ActionTokenWrongPlayer | Forbidden => 403,
            PlayerNotFound | NotFound | BoardNotFound | PeriodNotFound => 404,
            MethodNotAllowed => 405,
            NameTaken | ActionTokenReplayed | BoardInUse => 409,
            PayloadTooLarge => 413,
            UnsupportedMediaType => 415,
            ActionTokenInvalid | ActionTokenExpired | UnknownAction | UnknownBoard
            | ValueOutOfRange => 422,
            ActionTokenNotYetValid => 425,
            RateLimited => 429,
            InternalError => 500,
            UpstreamUnavailable | Overloaded => 503,
        }
    }

    /// The wire name, e.g. `ACTION_TOKEN_REPLAYED`.
    pub const fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "BAD_REQUEST",
            Unauthenticated => "UNAUTHENTICATED",
            BadCredentials => "BAD_CREDENTIALS",
            EdgeSignatureInvalid => "EDGE_SIGNATURE_INVALID",
            PlayerBanned => "PLAYER_BANNED",
            ActionTokenWrongPlayer => "ACTION_TOKEN_WRONG_PLAYER",
            Forbidden => "FORBIDDEN",
            PlayerNotFound => "PLAYER_NOT_FOUND",
            NotFound => "NOT_FOUND",
            BoardNotFound => "BOARD_NOT_FOUND",
            PeriodNotFound => "PERIOD_NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            NameTaken => "NAME_TAKEN",
            ActionTokenReplayed => "ACTION_TOKEN_REPLAYED",
            BoardInUse => "BOARD_IN_USE",
            PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ActionTokenInvalid => "ACTION_TOKEN_INVALID",
            ActionTokenExpired => "ACTION_TOKEN_EXPIRED",
            UnknownAction => "UNKNOWN_ACTION",
            UnknownBoard => "UNKNOWN_BOARD",
            ValueOutOfRange => "VALUE_OUT_OF_RANGE",
            ActionTokenNotYetValid => "ACTION_TOKEN_NOT_YET_VALID",
            RateLimited => "RATE_LIMITED",
            InternalError => "INTERNAL_ERROR",
            UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Overloaded => "OVERLOADED",
        }
    }

    /// A sentence for when the caller has nothing more specific to say.
    pub const fn default_message(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "The request is malformed.",
            Unauthenticated => "A valid session is required.",
            BadCredentials => "The name or password is wrong.",
            EdgeSignatureInvalid => "The edge signature is missing, wrong or stale.",
            PlayerBanned => "This player is banned.",
            ActionTokenWrongPlayer => "This action token belongs to another player.",
            Forbidden => "This is not allowed.",
            PlayerNotFound => "No such player.",
            NotFound => "No such route.",
            BoardNotFound => "No such board.",
            PeriodNotFound => "No such period of this board.",
            MethodNotAllowed => "This method is not allowed on this route.",
            NameTaken => "This name is already taken.",
            ActionTokenReplayed => "This action token was already redeemed.",
            BoardInUse => "This board has scores: its order, operator, reset and time zone are fixed; create a new board instead.",
            PayloadTooLarge => "The body is larger than 4 KiB.",
            UnsupportedMediaType => "The body must be application/json.",
            ActionTokenInvalid => "The action token is not valid.",
            ActionTokenExpired => "The action token has expired.",
            UnknownAction => "No such action.",
            UnknownBoard => "The action token names a board that does not exist.",
            ValueOutOfRange => "The value is outside the limits of one of the token's boards.",
            ActionTokenNotYetValid => "The action is not finished yet.",
            RateLimited => "Too many requests; retry later.",
            InternalError => "Something went wrong on our side.",
            UpstreamUnavailable => "The scoreboard is unavailable; retry later.",
            Overloaded => "The service is at capacity; retry later.",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// The body rules moved to `http`, with the other request rules; the old paths stay.
pub use crate::http::{body_is_object, MAX_BODY_BYTES};

/// `{"error": {"code", "message"}}`, plus on `ACTION_TOKEN_REPLAYED` where the player stands,
/// so a client that retried after a lost response learns it as a `200` would have told it:
/// `score` (on the token's first board) and `boards` (each of the token's boards).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boards: Option<Vec<crate::snapshot::Standing>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
            score: None,
            boards: None,
        }
    }

    pub fn from_code(code: ErrorCode) -> Self {
        Self::new(code, code.default_message())
    }

    pub fn with_score(mut self, score: i64) -> Self {
        self.score = Some(score);
        self
    }

    /// A replay's standings on the token's boards; `score` becomes the first one's.
    pub fn with_boards(mut self, boards: Vec<crate::snapshot::Standing>) -> Self {
        if let Some(first) = boards.first() {
            self.score = Some(first.score);
        }
        self.boards = Some(boards);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_has_the_documented_shape() {
        let body = ErrorBody::from_code(ErrorCode::ActionTokenReplayed).with_score(150);
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"code": "ACTION_TOKEN_REPLAYED",
                "message": "This action token was already redeemed."}, "score": 150})
        );
        let plain = serde_json::to_string(&ErrorBody::new(ErrorCode::BadRequest, "no")).unwrap();
        assert_eq!(plain, r#"{"error":{"code":"BAD_REQUEST","message":"no"}}"#);
    }

    #[test]
    fn serde_names_and_as_str_agree_and_statuses_match_the_design() {
        let all = [
            (ErrorCode::Unauthenticated, 401),
            (ErrorCode::BadRequest, 400),
            (ErrorCode::PayloadTooLarge, 413),
            (ErrorCode::UnsupportedMediaType, 415),
            (ErrorCode::RateLimited, 429),
            (ErrorCode::ActionTokenInvalid, 422),
            (ErrorCode::ActionTokenWrongPlayer, 403),
            (ErrorCode::ActionTokenExpired, 422),
            (ErrorCode::ActionTokenNotYetValid, 425),
            (ErrorCode::ActionTokenReplayed, 409),
            (ErrorCode::PlayerBanned, 403),
            (ErrorCode::UpstreamUnavailable, 503),
            (ErrorCode::NameTaken, 409),
            (ErrorCode::BadCredentials, 401),
            (ErrorCode::UnknownAction, 422),
            (ErrorCode::PlayerNotFound, 404),
            (ErrorCode::EdgeSignatureInvalid, 401),
            (ErrorCode::Forbidden, 403),
            (ErrorCode::NotFound, 404),
            (ErrorCode::MethodNotAllowed, 405),
            (ErrorCode::InternalError, 500),
            (ErrorCode::Overloaded, 503),
            (ErrorCode::BoardNotFound, 404),
            (ErrorCode::PeriodNotFound, 404),
            (ErrorCode::BoardInUse, 409),
            (ErrorCode::UnknownBoard, 422),
            (ErrorCode::ValueOutOfRange, 422),
        ];
        for (code, status) in all {
            assert_eq!(code.status(), status, "{code}");
            let wire = serde_json::to_string(&code).unwrap();
            assert_eq!(wire, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&wire).unwrap();
            assert_eq!(back, code);
        }
    }
}
