//! Server-Sent Events framing (the WHATWG `text/event-stream` format) for the streams of
//! DESIGN.md: `retry:` first, then `id:` / `event:` / `data:` frames and `: ping` comments.
//! Each frame ends with the blank line that dispatches it. Line breaks inside a field would
//! end the field early and let the rest be read as other fields, so `data` is split into one
//! `data:` line per line (the browser joins them with `\n` again) and `id`, `event` and
//! comments have theirs replaced by spaces.

use std::time::Duration;

/// The event name of every snapshot frame.
pub const SNAPSHOT_EVENT: &str = "leaderboard";

/// The keep-alive comment.
pub const PING: &str = ": ping\n\n";

/// `retry: <ms>`: how long a browser waits before reconnecting.
pub fn retry(after: Duration) -> String {
    format!("retry: {}\n\n", after.as_millis())
}

/// One event: `id: <id>`, `event: <event>`, then `data:` lines.
pub fn event(id: &str, event: &str, data: &str) -> String {
    let mut frame = String::with_capacity(data.len() + id.len() + event.len() + 24);
    frame.push_str("id: ");
    frame.push_str(&one_line(id));
    frame.push_str("\nevent: ");
    frame.push_str(&one_line(event));
    frame.push('\n');
    for line in data.split('\n') {
        frame.push_str("data: ");
        frame.push_str(line.strip_suffix('\r').unwrap_or(line));
        frame.push('\n');
    }
    frame.push('\n');
    frame
}

/// A comment line (`: text`), which clients ignore; keeps idle connections open.
pub fn comment(text: &str) -> String {
    format!(": {}\n\n", one_line(text))
}

fn one_line(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\n', '\r']) {
        s.replace(['\n', '\r'], " ").into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_event_is_framed_as_the_design_shows() {
        assert_eq!(
            event("12", "leaderboard", r#"{"version":12}"#),
            "id: 12\nevent: leaderboard\ndata: {\"version\":12}\n\n"
        );
    }

    #[test]
    fn retry_and_ping_are_what_browsers_expect() {
        assert_eq!(retry(Duration::from_millis(3000)), "retry: 3000\n\n");
        assert_eq!(PING, comment("ping"));
        assert_eq!(PING, ": ping\n\n");
    }

    #[test]
    fn line_breaks_cannot_smuggle_fields_into_a_frame() {
        assert_eq!(
            event("1\nevent: evil", "leaderboard", "a\nb\r\nc"),
            "id: 1 event: evil\nevent: leaderboard\ndata: a\ndata: b\ndata: c\n\n"
        );
        assert_eq!(comment("x\n\ndata: y"), ": x  data: y\n\n");
    }
}
