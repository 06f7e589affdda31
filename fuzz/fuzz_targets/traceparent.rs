//! Fuzzes the W3C `traceparent` parser. Property: an accepted value re-serialises to the same
//! bytes (version 00 with known flags), or to the same trace id and parent id (a higher version,
//! or reserved flag bits, which are cleared); a rejected one starts a new trace.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trace_context::w3c::{KNOWN_FLAGS, TraceParent};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    let Some(parent) = TraceParent::parse(value) else {
        return;
    };
    let header = parent.header();
    assert_eq!(header.len(), 55);
    assert_eq!(
        TraceParent::parse(&header).map(|p| p.header()),
        Some(header.clone())
    );
    assert_ne!(parent.version, 0xff);
    assert!(parent.trace_id != 0 && parent.parent_id != 0);
    if parent.version == 0 && parent.flags & !KNOWN_FLAGS == 0 {
        assert_eq!(
            header, value,
            "an accepted traceparent re-serialises to the same bytes"
        );
    } else {
        assert_eq!(header[2..52], value[2..52], "same trace id and parent id");
    }
});
