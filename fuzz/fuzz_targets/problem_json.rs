//! Fuzzes the reading of peers' problem+json answers (`Problem::from_peer`, what the saga and
//! payment-service use to tell a refusal's kind). Property: an accepted document re-serialises to
//! one that reads back equal, with the same slug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use platform::Problem;

fuzz_target!(|data: &[u8]| {
    let Some(problem) = Problem::from_peer(data) else {
        return;
    };
    let bytes = serde_json::to_vec(&problem).expect("serialises");
    let again = Problem::from_peer(&bytes).expect("reads back");
    assert_eq!(again.slug(), problem.slug());
    assert_eq!(again, problem);
});
