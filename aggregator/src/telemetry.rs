//! Logs: one JSON object per line with the keys every service of ours uses: `timestamp`,
//! `level`, `service`, `requestId`, `userId`, `message`, `data`. Fields named `requestId` and
//! `userId` go to the top level, every other field into `data`.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub const SERVICE: &str = "scoreboard-aggregator";

#[derive(Default)]
struct Fields {
    message: String,
    request_id: Option<String>,
    user_id: Option<String>,
    data: serde_json::Map<String, serde_json::Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, serde_json::Value::String(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, serde_json::Value::String(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        let as_text = || match &value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match field.name() {
            "message" => self.message = as_text(),
            "requestId" => self.request_id = Some(as_text()),
            "userId" => self.user_id = Some(as_text()),
            name => {
                self.data.insert(name.to_owned(), value);
            }
        }
    }
}

/// The JSON line format.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut f = Fields::default();
        event.record(&mut f);
        let line = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "level": event.metadata().level().as_str().to_ascii_lowercase(),
            "service": SERVICE,
            "requestId": f.request_id,
            "userId": f.user_id,
            "message": f.message,
            "data": f.data,
        });
        writeln!(w, "{line}")
    }
}

/// Installs the global subscriber once; later calls (tests building several apps) are no-ops.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(format!("{level},sqlx=warn,hyper=warn,tower_http=warn"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
