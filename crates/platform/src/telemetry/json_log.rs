//! A log layer writing one JSON object per event, with the request's correlation fields lifted to
//! the top level: `timestamp`, `level`, `target`, `message`, `trace_id`, `span_id`, `tenant`,
//! `order_id`, `service_type`, `request_id` (the six `CORRELATION_FIELDS`), then the event's own
//! fields. The correlation fields are taken from the nearest enclosing span that recorded them
//! (the server middleware records them on the request span).

use std::io::Write;

use serde_json::Value;
use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
};
use tracing_subscriber::{Layer, fmt::MakeWriter, layer::Context, registry::LookupSpan};

/// Span fields copied onto every log line written inside the span.
const CORRELATION_FIELDS: [&str; 6] = [
    "trace_id",
    "span_id",
    "tenant",
    "order_id",
    "service_type",
    "request_id",
];

pub struct JsonLogLayer<W> {
    make_writer: W,
}

impl<W> JsonLogLayer<W> {
    pub fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// The correlation fields one span has recorded so far (names are the span's own `'static`
/// field names; at most six, so a list beats a map).
#[derive(Default)]
struct Correlation(Vec<(&'static str, String)>);

impl Correlation {
    fn set(&mut self, name: &'static str, value: String) {
        match self.0.iter_mut().find(|(key, _)| *key == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
}

impl Visit for Correlation {
    fn record_str(&mut self, field: &Field, value: &str) {
        if CORRELATION_FIELDS.contains(&field.name()) {
            self.set(field.name(), value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if CORRELATION_FIELDS.contains(&field.name()) {
            self.set(field.name(), format!("{value:?}"));
        }
    }
}

/// An event's fields in the order it recorded them; `message` is its formatted message.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    fields: Vec<(&'static str, Value)>,
}

impl EventFields {
    fn push(&mut self, field: &Field, value: Value) {
        self.fields.push((field.name(), value));
    }
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.push(field, value.into());
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.push(field, format!("{value:?}").into());
        }
    }
}

/// One JSON object being written straight into a byte buffer: keys in the order first written,
/// a key written once (the first writer wins).
struct Line {
    bytes: Vec<u8>,
    keys: Vec<&'static str>,
}

impl Line {
    fn new() -> Self {
        let mut bytes = Vec::with_capacity(512);
        bytes.push(b'{');
        Self {
            bytes,
            keys: Vec::with_capacity(16),
        }
    }

    fn field<V: serde::Serialize + ?Sized>(&mut self, key: &'static str, value: &V) {
        if self.keys.contains(&key) {
            return;
        }
        if !self.keys.is_empty() {
            self.bytes.push(b',');
        }
        self.keys.push(key);
        // Serialising a string or a JSON value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.bytes, key);
        self.bytes.push(b':');
        let _ = serde_json::to_writer(&mut self.bytes, value);
    }

    fn finish(mut self) -> Vec<u8> {
        self.bytes.extend_from_slice(b"}\n");
        self.bytes
    }
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Correlation::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<Correlation>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let mut line = Line::new();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        line.field("timestamp", timestamp.as_str());
        line.field("level", metadata.level().as_str());
        line.field("target", metadata.target());
        line.field("message", fields.message.as_deref().unwrap_or(""));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(correlation) = span.extensions().get::<Correlation>() {
                    for (key, value) in &correlation.0 {
                        line.field(key, value.as_str());
                    }
                }
            }
        }
        for (key, value) in &fields.fields {
            line.field(key, value);
        }
        let _ = self.make_writer.make_writer().write_all(&line.finish());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_carry_the_nearest_span_fields() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            tracing_subscriber::registry().with(JsonLogLayer::new(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!(
                "request",
                tenant = "tenant-a",
                trace_id = "abc",
                order_id = tracing::field::Empty
            );
            let _outer = request.enter();
            request.record("order_id", "o-1");
            let inner = tracing::info_span!("db", tenant = "ignored-inner-wins-not");
            let _inner = inner.enter();
            tracing::info!(attempt = 3, "saved");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["message"], "saved");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["order_id"], "o-1");
        assert_eq!(line["trace_id"], "abc");
        assert_eq!(line["attempt"], 3);
        // The nearest span that recorded a field wins.
        assert_eq!(line["tenant"], "ignored-inner-wins-not");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
