//! The edge's console lines, all in the protocol's [`LogLine`] shape (the aggregator's keys),
//! serialised by serde: a request id or player id can never break out of its string.

use scoreboard_protocol::log::{Level, LogLine};
use worker::{console_error, console_log, console_warn, Date};

/// The `service` of every edge line.
pub(crate) const SERVICE: &str = "scoreboard-edge";

/// Who a line is about: the request and, once the session is verified, the player.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Subject<'a> {
    pub(crate) request_id: Option<&'a str>,
    pub(crate) user_id: Option<&'a str>,
}

impl<'a> Subject<'a> {
    pub(crate) fn request(request_id: &'a str) -> Self {
        Self {
            request_id: Some(request_id),
            user_id: None,
        }
    }

    pub(crate) fn user(mut self, user_id: &'a str) -> Self {
        self.user_id = Some(user_id);
        self
    }
}

/// Prints one line at `level` (to the console method of that level, so `wrangler tail` and
/// the dashboard colour it).
pub(crate) fn line(level: Level, who: Subject<'_>, message: &str, data: serde_json::Value) {
    let mut line = LogLine::new(Date::now().as_millis() as i64, level, SERVICE, message).data(data);
    line.request_id = who.request_id;
    line.user_id = who.user_id;
    match level {
        Level::Error => console_error!("{line}"),
        Level::Warn => console_warn!("{line}"),
        _ => console_log!("{line}"),
    }
}

pub(crate) fn info(who: Subject<'_>, message: &str, data: serde_json::Value) {
    line(Level::Info, who, message, data);
}

pub(crate) fn warn(who: Subject<'_>, message: &str, data: serde_json::Value) {
    line(Level::Warn, who, message, data);
}

/// An error line; `request_id` is `None` for what happens outside a request (start-up).
pub(crate) fn error(request_id: Option<&str>, message: &str, data: serde_json::Value) {
    let who = Subject {
        request_id,
        user_id: None,
    };
    line(Level::Error, who, message, data);
}
