//! The HTTP rules both services apply to the same input: the bearer session header, JSON
//! request bodies (content type, size, object only, parse), the client's `x-request-id`, and
//! the paths of the internal routes between edge and aggregator. Written once here so that the
//! edge and the aggregator cannot drift apart (they did: an empty bearer token was a token at
//! the edge and none at the aggregator).

use crate::ErrorCode;
use serde::de::DeserializeOwned;

/// The edge's forward of a score update, edge-signed.
pub const INTERNAL_SCORES_PATH: &str = "/internal/scores";
/// The same forward checked and not applied (operators and the benchmarks' baseline).
pub const INTERNAL_SCORES_CHECK_PATH: &str = "/internal/scores/check";
/// The edge hubs' WebSocket of snapshots, edge-signed (signature in the query).
pub const INTERNAL_LEADERBOARD_WS_PATH: &str = "/internal/leaderboard/ws";

/// Whether an answer of the aggregator to a forwarded update is its outcome. Below 500 it
/// is (applied, or refused and nothing applied), except `408`: a request cut short by a
/// timeout on any hop says nothing about an update that may already be queued, so like a
/// 5xx it means "not known yet: retry the same token" (which then answers `409` with the
/// score if it counted).
pub fn answer_is_final(status: u16) -> bool {
    status < 500 && status != 408
}

/// The header carrying the request id, from the client or the edge, to the aggregator.
/// The `400 BAD_REQUEST` message of a WebSocket route asked without an upgrade (the edge's
/// public ones and the aggregator's internal one).
pub const WEBSOCKET_UPGRADE_NEEDED: &str = "This route needs a WebSocket upgrade.";

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The largest request body any public route accepts.
pub const MAX_BODY_BYTES: usize = 4 * 1024;

/// The longest client request id kept; a longer one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The token of an `Authorization: Bearer <token>` header: the scheme case-insensitively,
/// the token trimmed. `None` when the header is absent, of another scheme, or the token is
/// empty (an empty token is no credential, not a bad one).
pub fn bearer_token(authorization_header: Option<&str>) -> Option<&str> {
    let (scheme, token) = authorization_header?.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Whether a `content-type` value is `application/json` (parameters such as `charset`
/// allowed, the media type case-insensitively).
pub fn is_json_content_type(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether a request body is a JSON object, as every body of the API is. serde would also
/// read a struct from an array of its fields in order (`["token"]` for `{"action_token":
/// "token"}`); no client means that, so such a body is refused as malformed before parsing.
pub fn body_is_object(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{')
}

/// Why a request body was refused. Messages name what is wrong (the field, by the route's own
/// name for it) and echo nothing the client sent back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// 415: not `application/json`.
    #[error("The body must be application/json.")]
    NotJson,
    /// 413: larger than [`MAX_BODY_BYTES`].
    #[error("The body is larger than 4 KiB.")]
    TooLarge,
    /// 400: valid JSON, but not an object.
    #[error("The body must be a JSON object.")]
    NotAnObject,
    /// 400: not JSON at all.
    #[error("The body is not valid JSON.")]
    Malformed,
    /// 400: an object without the fields the route expects (or with others); the sentence
    /// says which.
    #[error("The body does not have the expected fields: {0}.")]
    WrongFields(String),
}

impl BodyError {
    /// The public error code (and so the status) of the refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            BodyError::NotJson => ErrorCode::UnsupportedMediaType,
            BodyError::TooLarge => ErrorCode::PayloadTooLarge,
            BodyError::NotAnObject | BodyError::Malformed | BodyError::WrongFields(_) => {
                ErrorCode::BadRequest
            }
        }
    }

    /// The human sentence of the error body.
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Parses a body of an already-read size (the caller stops reading past [`MAX_BODY_BYTES`]),
/// checking in the order the API answers: content type (415), size (413), object (400),
/// then the fields of `T` (400).
pub fn parse_json_body<T: DeserializeOwned>(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<T, BodyError> {
    if !is_json_content_type(content_type) {
        return Err(BodyError::NotJson);
    }
    parse_json_bytes(bytes)
}

/// [`parse_json_body`] without the content-type check, for callers that made it before
/// reading the body (so a wrong type is refused without reading it).
pub fn parse_json_bytes<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    if bytes.len() > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    if !body_is_object(bytes) {
        return Err(BodyError::NotAnObject);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T =
        serde_path_to_error::deserialize(&mut de).map_err(|e| match e.inner().classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                BodyError::Malformed
            }
            _ => BodyError::WrongFields(which_field(&e)),
        })?;
    de.end().map_err(|_| BodyError::Malformed)?;
    Ok(value)
}

/// The field a body got wrong, from the parser's error, in the route's own words: serde's
/// sentence without what the client sent (an unknown field's name, a value), which the
/// message must not repeat.
fn which_field(e: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let said = e.inner().to_string();
    // serde_json ends its sentences with the position: not the client's business here.
    let said = said.rsplit_once(" at line ").map_or(said.as_str(), |s| s.0);
    // What the route expected: its own field names, types and values.
    let expected = said.split_once("expected ").map(|(_, x)| x);
    if said.starts_with("missing field") {
        return said.to_owned();
    }
    if said.starts_with("unknown field") {
        return match expected {
            Some(x) => format!("a field the route does not take (it takes {x})"),
            None => "a field the route does not take (it takes none)".to_owned(),
        };
    }
    match expected {
        Some(x) => format!("`{}` must be {x}", e.path()),
        None => format!("`{}` is not valid", e.path()),
    }
}

/// The client's `x-request-id`, when it is safe to keep: 1 to [`MAX_REQUEST_ID_LEN`] characters
/// of `[A-Za-z0-9._:-]` (UUIDs, hex, `service:seq`, ...). Anything else (quotes, backslashes,
/// spaces, control characters, non-ASCII, overlong) is dropped and the caller generates a
/// fresh id: the id goes into log lines, response headers and the database, so a client must
/// not be able to break or forge any of them with it.
pub fn request_id_from_client(value: Option<&str>) -> Option<&str> {
    value.filter(|v| {
        (1..=MAX_REQUEST_ID_LEN).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Body {
        action_token: String,
    }

    #[test]
    fn only_answers_that_settle_an_update_are_final() {
        for final_answer in [200, 400, 401, 403, 409, 422, 425, 429] {
            assert!(answer_is_final(final_answer), "{final_answer}");
        }
        for unknown in [408, 500, 502, 503, 504] {
            assert!(!answer_is_final(unknown), "{unknown}");
        }
    }

    #[test]
    fn a_bearer_token_is_read_case_insensitively_and_trimmed() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc  ")), Some("abc"));
        assert_eq!(bearer_token(Some("BEARER abc")), Some("abc"));
    }

    #[test]
    fn an_empty_or_foreign_authorization_is_no_token() {
        for none in [
            None,
            Some(""),
            Some("Bearer"),
            Some("Bearer "),
            Some("Bearer    "),
            Some("Basic abc"),
            Some("Bearerabc"),
            Some("abc"),
        ] {
            assert_eq!(bearer_token(none), None, "{none:?}");
        }
    }

    #[test]
    fn json_content_types_allow_parameters_and_any_case() {
        assert!(is_json_content_type(Some("application/json")));
        assert!(is_json_content_type(Some(
            "Application/JSON; charset=utf-8"
        )));
        assert!(is_json_content_type(Some(" application/json ;x=y")));
        for not in [
            None,
            Some(""),
            Some("text/plain"),
            Some("application/jsonx"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert!(!is_json_content_type(not), "{not:?}");
        }
    }

    #[test]
    fn only_a_json_object_counts_as_a_body() {
        assert!(body_is_object(br#"{"action_token":"t"}"#));
        assert!(body_is_object(b" \n\t{}"));
        for not in [
            &b"[\"t\"]"[..],
            b"\"t\"",
            b"null",
            b"",
            b"  ",
            b"\xef\xbb\xbf{}",
        ] {
            assert!(!body_is_object(not), "{not:?}");
        }
    }

    #[test]
    fn a_good_body_parses_into_its_type() {
        let b: Body =
            parse_json_body(Some("application/json"), br#"{"action_token":"t"}"#).unwrap();
        assert_eq!(b.action_token, "t");
    }

    #[test]
    fn body_refusals_come_in_the_order_and_with_the_codes_of_the_api() {
        let json = Some("application/json");
        let big = format!(r#"{{"action_token":"{}"}}"#, "x".repeat(MAX_BODY_BYTES));
        let cases: [(Option<&str>, &[u8], BodyError, u16); 6] = [
            (
                Some("text/plain"),
                br#"{"action_token":"t"}"#,
                BodyError::NotJson,
                415,
            ),
            (None, b"[", BodyError::NotJson, 415),
            (json, big.as_bytes(), BodyError::TooLarge, 413),
            (json, br#"["t"]"#, BodyError::NotAnObject, 400),
            (json, br#"{"action_token":"#, BodyError::Malformed, 400),
            (
                json,
                br#"{"token":"t"}"#,
                BodyError::WrongFields(
                    "a field the route does not take (it takes `action_token`)".into(),
                ),
                400,
            ),
        ];
        for (ct, bytes, want, status) in cases {
            let got = parse_json_body::<Body>(ct, bytes).unwrap_err();
            assert_eq!(got, want);
            assert_eq!(got.code().status(), status);
        }
    }

    #[test]
    fn a_wrong_field_is_named_by_the_route_and_what_the_client_sent_is_not_repeated() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Board {
            title: String,
            order: Order,
            size: u32,
        }
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        enum Order {
            Asc,
            Desc,
        }
        let said = |body: &str| {
            parse_json_bytes::<Board>(body.as_bytes())
                .unwrap_err()
                .message()
        };
        let cases = [
            (r#"{"title":"t","order":"desc"}"#, "missing field `size`"),
            (
                r#"{"title":"t","order":"sideways","size":1}"#,
                "`order` must be `asc` or `desc`",
            ),
            (
                r#"{"title":"t","order":"asc","size":-4}"#,
                "`size` must be u32",
            ),
            (
                r#"{"title":7,"order":"asc","size":1}"#,
                "`title` must be a string",
            ),
            (
                r#"{"title":"t","order":"asc","size":1,"secret_x":1}"#,
                "a field the route does not take (it takes one of `title`, `order`, `size`)",
            ),
        ];
        for (body, names) in cases {
            let message = said(body);
            assert!(message.contains(names), "{body}: {message}");
            for echoed in ["sideways", "secret_x", "-4", "line"] {
                assert!(!message.contains(echoed), "{body}: {message}");
            }
        }
    }

    #[test]
    fn body_messages_are_the_sentences_clients_already_see() {
        assert_eq!(
            BodyError::NotAnObject.message(),
            "The body must be a JSON object."
        );
        assert_eq!(
            BodyError::Malformed.message(),
            "The body is not valid JSON."
        );
        assert_eq!(
            BodyError::WrongFields("missing field `x`".into()).message(),
            "The body does not have the expected fields: missing field `x`."
        );
        assert_eq!(
            BodyError::NotJson.message(),
            ErrorCode::UnsupportedMediaType.default_message()
        );
        assert_eq!(
            BodyError::TooLarge.message(),
            ErrorCode::PayloadTooLarge.default_message()
        );
    }

    #[test]
    fn a_short_safe_request_id_is_kept() {
        for ok in [
            "e2e-req-1",
            "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "svc:42.7_x",
            "a",
            &"x".repeat(MAX_REQUEST_ID_LEN),
        ] {
            assert_eq!(request_id_from_client(Some(ok)), Some(ok));
        }
    }

    #[test]
    fn a_hostile_request_id_is_replaced() {
        let long = "x".repeat(MAX_REQUEST_ID_LEN + 1);
        for bad in [
            "",
            "a\"b",
            r#"x","level":"error"#,
            "a\\b",
            "a b",
            "a\nb",
            "a\rb",
            "a\tb",
            "a\u{0}b",
            "<script>",
            "a/b",
            "a{b}",
            "zoë",
            "\u{202e}abc",
            long.as_str(),
        ] {
            assert_eq!(request_id_from_client(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(request_id_from_client(None), None);
    }
}
