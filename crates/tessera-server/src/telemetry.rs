//! Logging set-up (S6, B11): JSON lines (default) or text, level from LOG_LEVEL.
//!
//! A JSON line always has the same top-level keys first: `timestamp` (ISO 8601 UTC),
//! `level`, `event`, `request_id`, then `ip_address` where known, the event's own fields, the
//! fields of the spans it happened in, `message` and `target`. The request span (see
//! `http::request_id`) carries `request_id` and `ip_address`, so every line written while
//! serving a request has them without each call site repeating them. Lines written outside a
//! request (startup, key rotation, backend health) have `"request_id": null`; a line from a
//! dependency that names no event has `"event": null`.
//!
//! `tracing-subscriber`'s own JSON formatter nests span fields under `"span"`, which makes
//! every log query say `span.request_id`; this small layer writes them at the top level.

use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::time::UtcTime;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

/// The log filter for LOG_LEVEL: our crates at that level, chatty dependencies at warn.
pub fn filter(log_level: &str) -> EnvFilter {
    let directive = format!("warn,tessera_server={0},tessera_store={0},tessera={0}", log_level);
    EnvFilter::try_new(&directive).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the global subscriber writing to stdout (the server). Call once, from `main`.
pub fn init(config: &Config) {
    init_with_writer(config, std::io::stdout);
}

/// Installs the global subscriber writing to `writer`: the operator commands log their
/// security events (`key_rotated`, ...) to stderr, keeping stdout for their output.
pub fn init_with_writer<W>(config: &Config, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = filter(&config.log_level);
    let result = match config.log_format {
        LogFormat::Json => tracing_subscriber::registry()
            .with(filter)
            .with(JsonLayer::new(writer))
            .try_init(),
        LogFormat::Text => text_subscriber(filter, writer, std::io::stdout().is_terminal()).try_init(),
    };
    if let Err(error) = result {
        eprintln!("logging was already initialised: {error}");
    }
}

/// The LOG_FORMAT=text subscriber. Field values are client-controlled (a login name, a path),
/// so control characters in them are escaped: a newline cannot forge a second log line and an
/// ANSI sequence cannot repaint the terminal. Colours only on a terminal.
fn text_subscriber<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let fields = tracing_subscriber::fmt::format::debug_fn(|out, field, value| {
        let raw = format!("{value:?}");
        let text = escape_controls(&raw);
        if field.name() == "message" {
            write!(out, "{text}")
        } else {
            write!(out, "{field}={text}")
        }
    })
    .delimited(" ");
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(UtcTime::rfc_3339())
        .with_writer(writer)
        .with_target(false)
        .with_ansi(ansi)
        .fmt_fields(fields)
        .finish()
}

/// `text` with every control character (newline, escape, ...) written as a `\u{..}` escape.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

/// Writes each event as one JSON object per line, span fields flattened to the top level.
pub struct JsonLayer<W> {
    make_writer: W,
}

impl<W> JsonLayer<W> {
    /// A layer writing to `make_writer` (stdout in production, a buffer in tests).
    pub fn new(make_writer: W) -> Self {
        JsonLayer { make_writer }
    }
}

/// The recorded fields of one span, kept in its extensions. A list with the fields' static
/// names rather than a JSON map: the request span is made on every request, logged or not, and
/// this spares it a key allocation per field and a tree (docs/PERFORMANCE.md).
struct SpanFields(Vec<(&'static str, Value)>);

/// Collects `tracing` fields into a [`SpanFields`] list, typed as [`JsonVisitor`] does; a field
/// recorded again replaces its earlier value.
struct SpanVisitor<'a>(&'a mut Vec<(&'static str, Value)>);

impl SpanVisitor<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        match self.0.iter_mut().find(|(key, _)| *key == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for SpanVisitor<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::from(format!("{value:?}")));
    }
}

/// Collects `tracing` fields into a JSON map: numbers and booleans stay typed, everything
/// else is its `Display`/`Debug` text.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_owned(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

/// Now as an RFC 3339 (ISO 8601) UTC timestamp with milliseconds.
fn timestamp() -> String {
    let now = time::OffsetDateTime::now_utc();
    let (hour, minute, second, milli) = now.to_hms_milli();
    format!(
        "{:04}-{:02}-{:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Vec::with_capacity(attrs.fields().len());
        attrs.record(&mut SpanVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(SpanFields(fields)) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(&mut SpanVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut own = Map::new();
        event.record(&mut JsonVisitor(&mut own));
        // Span fields, innermost span winning over outer ones.
        let mut inherited = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(SpanFields(fields)) = span.extensions().get::<SpanFields>() {
                    for (key, value) in fields {
                        inherited.entry((*key).to_owned()).or_insert_with(|| value.clone());
                    }
                }
            }
        }
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::from(timestamp()));
        line.insert("level".into(), Value::from(event.metadata().level().as_str()));
        for key in ["event", "request_id", "ip_address"] {
            let value = own.remove(key).or_else(|| inherited.remove(key));
            if value.is_some() || key != "ip_address" {
                line.insert(key.into(), value.unwrap_or(Value::Null));
            }
        }
        let message = own.remove("message");
        line.extend(own);
        for (key, value) in inherited {
            line.entry(key).or_insert(value);
        }
        if let Some(message) = message {
            line.insert("message".into(), message);
        }
        line.insert("target".into(), Value::from(event.metadata().target()));
        let Ok(mut bytes) = serde_json::to_vec(&Value::Object(line)) else {
            return;
        };
        bytes.push(b'\n');
        // One write per line, so lines from concurrent requests never interleave.
        let _ = self.make_writer.make_writer_for(event.metadata()).write_all(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    fn lines(buffer: &Buffer) -> Vec<Map<String, Value>> {
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line)
                    .unwrap()
                    .as_object()
                    .unwrap()
                    .clone()
            })
            .collect()
    }

    #[test]
    fn request_span_fields_are_top_level_and_keys_come_first() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "request",
                request_id = "r-1",
                ip_address = "203.0.113.9",
                method = "POST"
            );
            let _entered = span.enter();
            tracing::info!(
                event = "login_success",
                user_id = 7,
                username = "alice",
                "login succeeded"
            );
        });
        let lines = lines(&buffer);
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        let keys: Vec<&str> = line.keys().map(String::as_str).collect();
        assert_eq!(&keys[..5], ["timestamp", "level", "event", "request_id", "ip_address"]);
        assert_eq!(line["event"], "login_success");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["ip_address"], "203.0.113.9");
        assert_eq!(line["user_id"], 7);
        assert_eq!(line["method"], "POST");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "login succeeded");
        assert!(!line.contains_key("span"));
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339).is_ok(),
            "{timestamp}"
        );
        assert!(timestamp.ends_with('Z'));
    }

    #[test]
    fn text_format_escapes_control_characters_in_client_supplied_values() {
        let buffer = Buffer::default();
        let subscriber = text_subscriber(EnvFilter::new("info"), buffer.clone(), false);
        let hostile = "x\nFAKE INFO event=\"login_success\" user_id=1 \u{1b}[31mred";
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", path = %hostile);
            let _entered = span.enter();
            tracing::warn!(event = "login_failure", email = %hostile, other = hostile, "login failed");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains(r"x\u{a}FAKE"), "{text}");
        assert!(text.contains("login failed"), "{text}");
        assert!(text.contains("email=x"), "{text}");
    }

    #[test]
    fn lines_outside_a_request_say_so() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(backend = "redis", "a line with no event name");
        });
        let line = &lines(&buffer)[0];
        assert_eq!(line["event"], Value::Null);
        assert_eq!(line["request_id"], Value::Null);
        assert!(!line.contains_key("ip_address"));
        assert_eq!(line["backend"], "redis");
        assert_eq!(line["level"], "WARN");
    }

    #[test]
    fn an_event_field_wins_over_the_span_and_inner_spans_over_outer() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(JsonLayer::new(buffer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("request", request_id = "outer", ip_address = "198.51.100.1");
            let _outer = outer.enter();
            let inner = tracing::info_span!("step", request_id = "inner", ip_address = tracing::field::Empty);
            let _inner = inner.enter();
            inner.record("ip_address", "198.51.100.2");
            tracing::info!(event = "x", ip_address = "198.51.100.3");
            tracing::info!(event = "y");
        });
        let lines = lines(&buffer);
        assert_eq!(lines[0]["ip_address"], "198.51.100.3");
        assert_eq!(lines[0]["request_id"], "inner");
        assert_eq!(lines[1]["ip_address"], "198.51.100.2");
    }
}
