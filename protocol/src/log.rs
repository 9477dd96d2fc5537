//! The one log-line shape of every service (DESIGN.md, "Logs"): a JSON object per line with
//! the keys `timestamp`, `level`, `service`, `requestId`, `userId`, `message`, `data`, always
//! all seven, serialised by serde so that no value (a request id, a player name, an error
//! text) can break out of its string. The edge prints it with `console.log`, the aggregator's
//! tracing formatter writes it to stdout.

use crate::snapshot::rfc3339_millis;
use serde::Serialize;

/// How bad it is; serialised lowercase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// One log line. Borrowed strings, so building one costs only the `data` value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine<'a> {
    /// RFC 3339 UTC with milliseconds.
    pub timestamp: String,
    pub level: Level,
    pub service: &'a str,
    #[serde(rename = "requestId")]
    pub request_id: Option<&'a str>,
    #[serde(rename = "userId")]
    pub user_id: Option<&'a str>,
    pub message: &'a str,
    /// Everything else, as an object (`{}` when there is nothing).
    pub data: serde_json::Value,
}

impl<'a> LogLine<'a> {
    /// A line at `unix_ms` (the caller's clock: this crate has none) without a request,
    /// user or data.
    pub fn new(unix_ms: i64, level: Level, service: &'a str, message: &'a str) -> Self {
        Self {
            timestamp: rfc3339_millis(unix_ms),
            level,
            service,
            request_id: None,
            user_id: None,
            message,
            data: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    pub fn request_id(mut self, request_id: &'a str) -> Self {
        self.request_id = Some(request_id);
        self
    }

    pub fn user_id(mut self, user_id: &'a str) -> Self {
        self.user_id = Some(user_id);
        self
    }

    /// Sets `data`; a value that is not an object is wrapped as `{"value": ...}` so `data`
    /// is always an object for the log pipeline's field mapping.
    pub fn data(mut self, data: serde_json::Value) -> Self {
        self.data = match data {
            serde_json::Value::Object(_) => data,
            serde_json::Value::Null => serde_json::Value::Object(serde_json::Map::new()),
            other => serde_json::json!({ "value": other }),
        };
        self
    }

    /// The line as one line of JSON, without the newline.
    pub fn to_json(&self) -> String {
        // Serialising strings, an enum and a `Value` into a `String` cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl std::fmt::Display for LogLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn a_line_has_exactly_the_documented_keys() {
        let line = LogLine::new(
            1_764_000_000_123,
            Level::Info,
            "scoreboard-edge",
            "request completed",
        )
        .request_id("r-1")
        .data(json!({"status": 200}));
        let v: Value = serde_json::from_str(&line.to_json()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "data",
                "level",
                "message",
                "requestId",
                "service",
                "timestamp",
                "userId"
            ]
        );
        assert_eq!(v["timestamp"], "2025-11-24T16:00:00.123Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["requestId"], "r-1");
        assert_eq!(v["userId"], Value::Null);
        assert_eq!(v["data"]["status"], 200);
    }

    #[test]
    fn hostile_values_stay_inside_their_strings() {
        let forged = "x\",\"level\":\"error\",\"message\":\"forged\n{\"a\":\"\\";
        let line = LogLine::new(0, Level::Warn, "svc", forged)
            .request_id(forged)
            .user_id(forged);
        let text = line.to_json();
        assert!(!text.contains('\n'), "one line: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["level"], "warn");
        assert_eq!(v["message"], forged);
        assert_eq!(v["requestId"], forged);
        assert_eq!(v["userId"], forged);
    }

    #[test]
    fn data_is_always_an_object() {
        let plain = LogLine::new(0, Level::Error, "svc", "m");
        assert_eq!(plain.data, json!({}));
        assert_eq!(plain.clone().data(Value::Null).data, json!({}));
        assert_eq!(plain.data(json!("boom")).data, json!({"value": "boom"}));
    }

    #[test]
    fn levels_are_lowercase_words() {
        let all = [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ];
        let words: Vec<String> = all
            .iter()
            .map(|l| {
                serde_json::to_value(l)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(words, ["trace", "debug", "info", "warn", "error"]);
    }
}
