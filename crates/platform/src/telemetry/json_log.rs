//! A log layer writing one JSON object per event, with the request's correlation fields lifted to
//! the top level: `timestamp`, `level`, `target`, `message`, `trace_id`, `span_id`, `tenant`,
//! `order_id`, `request_id`, then the event's own fields. The correlation fields are taken from
//! the nearest enclosing span that recorded them (the server middleware records them on the
//! request span).

use std::io::Write;

use serde_json::{Map, Value};
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

/// The correlation fields one span has recorded so far.
#[derive(Default)]
struct Correlation(Map<String, Value>);

struct CorrelationVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for CorrelationVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if CORRELATION_FIELDS.contains(&field.name()) {
            self.0.insert(field.name().into(), value.into());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if CORRELATION_FIELDS.contains(&field.name()) {
            self.0
                .insert(field.name().into(), format!("{value:?}").into());
        }
    }
}

/// All fields of an event; `message` is its formatted message.
struct EventVisitor(Map<String, Value>);

impl Visit for EventVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
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
        attrs.record(&mut CorrelationVisitor(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<Correlation>() {
            values.record(&mut CorrelationVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        let mut fields = EventVisitor(Map::new());
        event.record(&mut fields);
        line.insert(
            "message".into(),
            fields.0.remove("message").unwrap_or(Value::from("")),
        );
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                if let Some(correlation) = span.extensions().get::<Correlation>() {
                    for (key, value) in &correlation.0 {
                        line.entry(key.clone()).or_insert_with(|| value.clone());
                    }
                }
            }
        }
        for (key, value) in fields.0 {
            line.entry(key).or_insert(value);
        }
        if let Ok(mut bytes) = serde_json::to_vec(&line) {
            bytes.push(b'\n');
            let _ = self.make_writer.make_writer().write_all(&bytes);
        }
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
