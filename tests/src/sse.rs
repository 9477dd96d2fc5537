//! A small Server-Sent Events reader for tests: connects, splits the stream into messages,
//! and tells a server that closed the stream apart from a read that timed out.

/// A minimal SSE reader over a streaming response.
pub struct SseClient {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
    /// The server closed the stream (as opposed to a read timing out).
    pub ended: bool,
    /// The response's headers.
    pub headers: reqwest::header::HeaderMap,
}

/// One SSE message: its `id`, `event`, `data`, `retry`, or a comment.
#[derive(Debug, Default, Clone)]
pub struct SseMessage {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: Option<String>,
    pub retry: Option<String>,
    pub comment: Option<String>,
}

impl std::fmt::Debug for SseClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseClient")
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl SseClient {
    pub async fn connect(url: &str, last_event_id: Option<&str>) -> (u16, Option<Self>) {
        let mut req = reqwest::Client::new()
            .get(url)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        if status != 200 {
            return (status, None);
        }
        let headers = resp.headers().clone();
        (
            status,
            Some(Self {
                headers,
                stream: Box::pin(resp.bytes_stream()),
                buf: String::new(),
                ended: false,
            }),
        )
    }

    /// The next message, or `None` after `within`.
    pub async fn next(&mut self, within: std::time::Duration) -> Option<SseMessage> {
        use futures_util::StreamExt;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut m = SseMessage::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        m.comment = Some(c.trim().to_owned());
                    } else if let Some((k, v)) = line.split_once(':') {
                        let v = v.strip_prefix(' ').unwrap_or(v).to_owned();
                        match k {
                            "id" => m.id = Some(v),
                            "event" => m.event = Some(v),
                            "data" => m.data = Some(v),
                            "retry" => m.retry = Some(v),
                            _ => {}
                        }
                    }
                }
                return Some(m);
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(chunk))) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(_) => {
                    self.ended = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Whether a `ping` comment comes within the next `reads` reads of up to `each` apiece.
    pub async fn sees_ping(&mut self, reads: usize, each: std::time::Duration) -> bool {
        for _ in 0..reads {
            if let Some(m) = self.next(each).await {
                if m.comment.as_deref() == Some("ping") {
                    return true;
                }
            }
        }
        false
    }

    /// The next `leaderboard` event with its `id:` as sent (`<period>/<version>` on a board
    /// that resets), skipping comments.
    pub async fn next_event(
        &mut self,
        within: std::time::Duration,
    ) -> Option<(String, serde_json::Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.next(left).await?;
            if m.event.as_deref() == Some("leaderboard") {
                let data: serde_json::Value = serde_json::from_str(m.data.as_deref()?).ok()?;
                return Some((m.id?, data));
            }
        }
    }

    /// The next `leaderboard` event of a board that never resets (its id is the version).
    pub async fn next_snapshot(
        &mut self,
        within: std::time::Duration,
    ) -> Option<(i64, serde_json::Value)> {
        let (id, data) = self.next_event(within).await?;
        Some((id.parse().ok()?, data))
    }

    /// Reads snapshots until one has at least `version` (skipping versions is allowed) or a
    /// read waits longer than `each`; returns the last version read (0 if none).
    pub async fn until_version(&mut self, version: i64, each: std::time::Duration) -> i64 {
        let mut seen = 0;
        while seen < version {
            match self.next_snapshot(each).await {
                Some((v, _)) => seen = v,
                None => break,
            }
        }
        seen
    }

    /// Reads snapshots until one has the rows `top` (not the version: subscribers are woken
    /// only when the rows change, so the board's version may be newer than the last sent) or
    /// `within` has passed; returns the last snapshot read (`Null` if none).
    pub async fn until_top(
        &mut self,
        top: &serde_json::Value,
        within: std::time::Duration,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = serde_json::Value::Null;
        while last["top"] != *top {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_snapshot(left).await {
                Some((_, snap)) => last = snap,
                None => break,
            }
        }
        last
    }
}
