//! Logs: one JSON object per line with the keys every service of ours uses: `timestamp`,
//! `level`, `service`, `requestId`, `userId`, `message`, `data`. Fields named `requestId` and
//! `userId` go to the top level, every other field into `data`. A line written inside a
//! request's span takes `requestId` and `userId` from the span when it does not name them
//! itself, so every line of a request carries its id, wherever in the code it is written.

use std::fmt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;
use scoreboard_protocol::log::{Level, LogLine};

const SERVICE: &str = "scoreboard-aggregator";

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

/// What a span says about the request it belongs to, kept in the span's extensions.
#[derive(Debug, Default, Clone)]
struct RequestContext {
    request_id: Option<String>,
    user_id: Option<String>,
}

impl RequestContext {
    fn absorb(&mut self, f: Fields) {
        self.request_id = f.request_id.or(self.request_id.take());
        self.user_id = f.user_id.or(self.user_id.take());
    }
}

/// Records each span's `requestId` and `userId` (also when recorded later, as `userId` is
/// once the session is verified) for the formatter.
struct ContextLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ContextLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let Some(span) = ctx.span(id) {
            let mut cx = RequestContext::default();
            cx.absorb(f);
            span.extensions_mut().insert(cx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        values.record(&mut f);
        if let Some(span) = ctx.span(id) {
            if let Some(cx) = span.extensions_mut().get_mut::<RequestContext>() {
                cx.absorb(f);
            }
        }
    }
}

/// The innermost span's request context, if the event happened inside one.
fn context_of<S, N>(ctx: &FmtContext<'_, S, N>) -> RequestContext
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let mut found = RequestContext::default();
    if let Some(scope) = ctx.event_scope() {
        for span in scope {
            if let Some(cx) = span.extensions().get::<RequestContext>() {
                found.request_id = found.request_id.or(cx.request_id.clone());
                found.user_id = found.user_id.or(cx.user_id.clone());
            }
        }
    }
    found
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
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut f = Fields::default();
        event.record(&mut f);
        let span = context_of(ctx);
        f.request_id = f.request_id.or(span.request_id);
        f.user_id = f.user_id.or(span.user_id);
        let level = match *event.metadata().level() {
            tracing::Level::TRACE => Level::Trace,
            tracing::Level::DEBUG => Level::Debug,
            tracing::Level::INFO => Level::Info,
            tracing::Level::WARN => Level::Warn,
            tracing::Level::ERROR => Level::Error,
        };
        let line = LogLine {
            request_id: f.request_id.as_deref(),
            user_id: f.user_id.as_deref(),
            data: serde_json::Value::Object(f.data),
            ..LogLine::new(
                chrono::Utc::now().timestamp_millis(),
                level,
                SERVICE,
                &f.message,
            )
        };
        writeln!(w, "{line}")
    }
}

/// Installs the global subscriber once; later calls (tests building several apps) are no-ops.
pub fn init(level: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(format!("{level},sqlx=warn,hyper=warn,tower_http=warn"))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(ContextLayer);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Json => registry.with(fmt.event_format(JsonLines)).try_init(),
        LogFormat::Pretty => registry.with(fmt).try_init(),
    };
}
