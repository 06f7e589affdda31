//! Fuzzes the tenancy check: any number of `x-tenant-id` and `x-forwarded-client-cert` headers
//! (input: lines, the first byte choosing the header). Property: whatever it accepts names exactly
//! this process's tenant — one `x-tenant-id` equal to `tenant-a`, and an XFCC, if any, that parses
//! and names only peers of tenant-a's namespaces or the trusted `istio-system`.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use platform::{
    tenancy::{TENANT_HEADER, TenantId, TenantPolicy, XFCC_HEADER},
    xfcc,
};

fuzz_target!(|data: &[u8]| {
    let policy = TenantPolicy::new(
        TenantId::parse("tenant-a").expect("a valid tenant"),
        vec!["istio-system".into()],
    );
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&pick, value)) = line.split_first() else {
            continue;
        };
        let name = if pick % 2 == 0 {
            TENANT_HEADER
        } else {
            XFCC_HEADER
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    if let Ok(value) = std::str::from_utf8(data) {
        // The XFCC parser on its own, on any text: never a panic, and what it accepts is sane.
        if let Ok(peers) = xfcc::parse_peers(value) {
            assert!(!peers.is_empty());
        }
    }
    if policy.check(&headers).is_err() {
        return;
    }
    let tenants: Vec<&HeaderValue> = headers.get_all(TENANT_HEADER).iter().collect();
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0].as_bytes(), b"tenant-a");
    let xfccs: Vec<&HeaderValue> = headers.get_all(XFCC_HEADER).iter().collect();
    assert!(xfccs.len() <= 1);
    if let Some(value) = xfccs.first() {
        let peers = xfcc::parse_peers(value.to_str().expect("accepted XFCC is ASCII"))
            .expect("accepted XFCC parses");
        for peer in peers {
            assert!(
                matches!(
                    peer.namespace.as_str(),
                    "tenant-a-orders" | "tenant-a-payments" | "istio-system"
                ),
                "accepted a peer from {}",
                peer.namespace
            );
        }
    }
});
