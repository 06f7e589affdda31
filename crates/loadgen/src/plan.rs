//! What to send: the next order request of a run.
//!
//! A [`Planner`] decides, for each request, the target (round-robin), the SKU, whether the order
//! pays with `card_declined`, whether it replays an earlier order (same `Idempotency-Key`, same
//! body), and whether it carries a sampled W3C `traceparent`. The choices come from a seeded
//! generator, so a run with the same `--seed` makes the same choices; keys and trace ids also mix
//! in a per-process nonce, so two runs never collide on the server.

use std::collections::VecDeque;

use bytes::Bytes;
use serde::Serialize;

use crate::args::Config;

/// Earlier orders kept per target for replays.
const REPLAY_HISTORY: usize = 1024;
/// Customers the orders are spread over.
const CUSTOMERS: u64 = 100;

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Index into the run's targets.
    pub target: usize,
    pub idempotency_key: String,
    pub body: Bytes,
    /// Resends an earlier order's key and body: the answer should be the stored one.
    pub replay: bool,
    pub declined: bool,
    pub trace: Option<Trace>,
}

/// A W3C trace context to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The parent span id (non-zero).
    pub span_id: u64,
    pub sampled: bool,
}

impl Trace {
    /// The `traceparent` header value (version 00).
    pub fn traceparent(&self) -> String {
        let flags = if self.sampled { "01" } else { "00" };
        format!("00-{}-{:016x}-{flags}", self.trace_id, self.span_id.max(1))
    }
}

/// An earlier order a replay can resend.
#[derive(Debug, Clone)]
struct Sent {
    idempotency_key: String,
    body: Bytes,
    declined: bool,
}

#[derive(Serialize)]
struct OrderBody<'a> {
    customer_id: String,
    currency: &'a str,
    items: [Item<'a>; 1],
    payment_method: &'static str,
}

#[derive(Serialize)]
struct Item<'a> {
    sku: &'a str,
    quantity: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit_price: Option<i64>,
}

/// Decides every request of a run.
#[derive(Debug)]
pub struct Planner {
    rng: SplitMix64,
    nonce: u64,
    seq: u64,
    targets: usize,
    skus: Vec<String>,
    quantity: i64,
    unit_price: Option<i64>,
    currency: String,
    decline_ratio: f64,
    replay_ratio: f64,
    trace_sample_ratio: Option<f64>,
    history: Vec<VecDeque<Sent>>,
}

impl Planner {
    /// `nonce` makes this process's keys and trace ids unique (e.g. the start time in ns).
    pub fn new(config: &Config, nonce: u64) -> Self {
        let targets = config.targets.len().max(1);
        Self {
            rng: SplitMix64(config.seed),
            nonce,
            seq: 0,
            targets,
            skus: config.order.skus.clone(),
            quantity: config.order.quantity,
            unit_price: config.order.unit_price,
            currency: config.order.currency.clone(),
            decline_ratio: config.decline_ratio,
            replay_ratio: config.replay_ratio,
            trace_sample_ratio: config.trace_sample_ratio,
            history: vec![VecDeque::new(); targets],
        }
    }

    /// The next request.
    pub fn next(&mut self) -> Planned {
        let seq = self.seq;
        self.seq += 1;
        let target = (seq % self.targets as u64) as usize;
        let trace = self.trace_sample_ratio.map(|ratio| Trace {
            trace_id: format!("{:016x}{:016x}", self.nonce ^ 0x6c67, seq + 1),
            span_id: self.rng.next_u64().max(1),
            sampled: self.rng.chance(ratio),
        });

        let wants_replay = self.rng.chance(self.replay_ratio);
        let history = &self.history[target];
        if wants_replay && !history.is_empty() {
            let pick = self.rng.below(history.len() as u64) as usize;
            if let Some(sent) = history.get(pick) {
                return Planned {
                    target,
                    idempotency_key: sent.idempotency_key.clone(),
                    body: sent.body.clone(),
                    replay: true,
                    declined: sent.declined,
                    trace,
                };
            }
        }

        let declined = self.rng.chance(self.decline_ratio);
        let sku = &self.skus[self.rng.below(self.skus.len() as u64) as usize];
        let body = OrderBody {
            customer_id: format!("c-{}", 1 + self.rng.below(CUSTOMERS)),
            currency: &self.currency,
            items: [Item {
                sku,
                quantity: self.quantity,
                unit_price: self.unit_price,
            }],
            payment_method: if declined { "card_declined" } else { "card" },
        };
        // Serialising these plain fields cannot fail; an empty body would be answered 400.
        let body = serde_json::to_vec(&body)
            .map(Bytes::from)
            .unwrap_or_default();
        Planned {
            target,
            idempotency_key: format!("lg-{:016x}-{seq}", self.nonce),
            body,
            replay: false,
            declined,
            trace,
        }
    }

    /// Makes a new order that the server accepted available for later replays.
    pub fn remember(&mut self, planned: &Planned) {
        if planned.replay {
            return;
        }
        if let Some(history) = self.history.get_mut(planned.target) {
            if history.len() == REPLAY_HISTORY {
                history.pop_front();
            }
            history.push_back(Sent {
                idempotency_key: planned.idempotency_key.clone(),
                body: planned.body.clone(),
                declined: planned.declined,
            });
        }
    }
}

/// SplitMix64: small, fast, and good enough for choosing what to send.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (never for 0, always for 1).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }

    /// Uniform in [0, n) for n ≥ 1 (the modulo bias is negligible for small n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Args, Config};
    use clap::Parser;

    fn planner(argv: &[&str]) -> Planner {
        let args =
            Args::try_parse_from(std::iter::once("loadgen").chain(argv.iter().copied())).unwrap();
        Planner::new(&Config::from_args(args, 42).unwrap(), 0xabc)
    }

    fn body(p: &Planned) -> serde_json::Value {
        serde_json::from_slice(&p.body).unwrap()
    }

    #[test]
    fn orders_follow_the_public_contract() {
        let mut p = planner(&[
            "--skus",
            "SKU-001",
            "--quantity",
            "2",
            "--unit-price",
            "500",
        ]);
        let first = p.next();
        assert_eq!(first.target, 0);
        assert!(!first.replay && !first.declined);
        assert_eq!(first.trace, None);
        assert_eq!(first.idempotency_key, "lg-0000000000000abc-0");
        let json = body(&first);
        assert_eq!(json["currency"], "EUR");
        assert_eq!(json["payment_method"], "card");
        assert_eq!(
            json["items"],
            serde_json::json!([{"sku": "SKU-001", "quantity": 2, "unit_price": 500}])
        );
        assert!(json["customer_id"].as_str().unwrap().starts_with("c-"));
        assert_ne!(p.next().idempotency_key, first.idempotency_key);
    }

    #[test]
    fn targets_are_used_round_robin() {
        let mut p = planner(&[
            "--target",
            "tenant-a=http://127.0.0.1:8081",
            "--target",
            "tenant-b=http://127.0.0.1:8091",
        ]);
        let targets: Vec<_> = (0..5).map(|_| p.next().target).collect();
        assert_eq!(targets, [0, 1, 0, 1, 0]);
    }

    #[test]
    fn ratios_are_honoured_roughly_and_reproducibly() {
        let run = || {
            let mut p = planner(&["--decline-ratio", "0.25", "--skus", "A,B,C,D"]);
            (0..4000).map(|_| p.next()).collect::<Vec<_>>()
        };
        let plans = run();
        let declined = plans.iter().filter(|p| p.declined).count();
        assert!((800..1200).contains(&declined), "{declined}");
        for p in plans.iter().filter(|p| p.declined) {
            assert_eq!(body(p)["payment_method"], "card_declined");
        }
        let skus: std::collections::BTreeSet<_> = plans
            .iter()
            .map(|p| body(p)["items"][0]["sku"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(skus.len(), 4);
        assert_eq!(plans, run(), "same seed, same plan");
    }

    #[test]
    fn replays_resend_an_accepted_order_exactly() {
        let mut p = planner(&["--replay-ratio", "1"]);
        let first = p.next();
        assert!(!first.replay, "nothing to replay yet");
        assert!(!p.next().replay, "not remembered until accepted");
        p.remember(&first);
        for _ in 0..10 {
            let again = p.next();
            assert!(again.replay);
            assert_eq!(again.idempotency_key, first.idempotency_key);
            assert_eq!(again.body, first.body);
            p.remember(&again); // replays are not remembered twice
        }
        assert_eq!(p.history[0].len(), 1);
    }

    #[test]
    fn replay_history_is_bounded() {
        let mut p = planner(&[]);
        for _ in 0..(REPLAY_HISTORY + 10) {
            let planned = p.next();
            p.remember(&planned);
        }
        assert_eq!(p.history[0].len(), REPLAY_HISTORY);
    }

    #[test]
    fn traceparent_is_valid_w3c_with_the_sampled_flag() {
        let mut p = planner(&["--trace-sample-ratio", "0.5"]);
        let plans: Vec<_> = (0..1000).map(|_| p.next()).collect();
        let sampled = plans
            .iter()
            .filter(|pl| pl.trace.as_ref().unwrap().sampled)
            .count();
        assert!((400..600).contains(&sampled), "{sampled}");
        let trace = plans[3].trace.clone().unwrap();
        let header = trace.traceparent();
        let parts: Vec<_> = header.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!(parts[0], "00");
        assert_eq!(parts[1].len(), 32);
        assert_eq!(parts[2].len(), 16);
        assert!(parts[1..3].iter().all(|h| {
            h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }));
        assert_ne!(parts[1], "0".repeat(32));
        assert_eq!(parts[3], if trace.sampled { "01" } else { "00" });
        let ids: std::collections::BTreeSet<_> = plans
            .iter()
            .map(|pl| pl.trace.clone().unwrap().trace_id)
            .collect();
        assert_eq!(ids.len(), plans.len(), "one trace per request");
        let zero_span = Trace {
            trace_id: "1".repeat(32),
            span_id: 0,
            sampled: false,
        };
        assert_eq!(
            zero_span.traceparent(),
            format!("00-{}-0000000000000001-00", "1".repeat(32))
        );
    }

    #[test]
    fn the_generator_is_uniform_enough() {
        let mut rng = SplitMix64(1);
        assert!(!rng.chance(0.0));
        assert!(rng.chance(1.0));
        let mut buckets = [0u32; 4];
        for _ in 0..40_000 {
            buckets[rng.below(4) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|b| (9_000..11_000).contains(b)),
            "{buckets:?}"
        );
        let f = rng.next_f64();
        assert!((0.0..1.0).contains(&f));
    }
}
