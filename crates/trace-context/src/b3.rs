//! B3, single (`b3`) and multi-header (`x-b3-*`): OpenTelemetry's own propagator, chosen by
//! encoding. The W3C formats are this crate's ([`crate::w3c`]); B3 is only selected here.

use opentelemetry::propagation::TextMapPropagator;
// opentelemetry-zipkin 0.33 marks the whole crate deprecated because the Zipkin *exporter* is
// retired in favour of OTLP; its B3 propagator is still OpenTelemetry's own implementation and the
// only maintained one for Rust, so it is used here (without the exporter's features).
#[allow(deprecated)]
use opentelemetry_zipkin::{B3Encoding, Propagator as B3Propagator};

/// The B3 propagator writing the single header, the multi headers, both, or `None` for neither.
#[allow(deprecated)] // see the import of the B3 propagator
pub(crate) fn propagator(
    single: bool,
    multi: bool,
) -> Option<Box<dyn TextMapPropagator + Send + Sync>> {
    let encoding = match (single, multi) {
        (true, true) => B3Encoding::SingleAndMultiHeader,
        (true, false) => B3Encoding::SingleHeader,
        (false, true) => B3Encoding::MultipleHeader,
        (false, false) => return None,
    };
    Some(Box::new(B3Propagator::with_encoding(encoding)))
}
