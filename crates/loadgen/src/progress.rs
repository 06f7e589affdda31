//! `--progress`: one line per second on stderr while the load runs, so a person (or a demo that
//! reads the lines) sees throughput, errors and latency move over time, not only the summary.
//!
//! A line covers the requests *answered* in that second, warm-up included:
//! `progress t=3s answered=20 ok=19 5xx=1 errors=0 p50_ms=12.3 p99_ms=40.1 ok_p99_ms=38.2`
//! (`ok` = 2xx, `5xx` = 5xx answers, `errors` = no HTTP answer or another status; `p50_ms` and
//! `p99_ms` over every answer, `ok_p99_ms` over the 2xx alone — under overload the admitted
//! requests' latency, apart from the refusals').

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::report::Sample;

const MAX_LATENCY_US: u64 = 120_000_000;

/// The current second's answers.
pub struct Progress {
    tick: Mutex<Tick>,
}

struct Tick {
    latency_us: Histogram<u64>,
    ok_latency_us: Histogram<u64>,
    answered: u64,
    ok: u64,
    server_errors: u64,
    errors: u64,
}

impl Progress {
    pub fn new() -> Result<Self, String> {
        let latency_us = Histogram::new_with_bounds(1, MAX_LATENCY_US, 2)
            .map_err(|e| format!("progress histogram: {e}"))?;
        Ok(Self {
            tick: Mutex::new(Tick {
                ok_latency_us: latency_us.clone(),
                latency_us,
                answered: 0,
                ok: 0,
                server_errors: 0,
                errors: 0,
            }),
        })
    }

    /// Counts one answered (or failed) request.
    pub fn record(&self, sample: &Sample) {
        let mut tick = self.tick.lock().unwrap_or_else(|e| e.into_inner());
        let us = u64::try_from(sample.latency.as_micros()).unwrap_or(u64::MAX);
        tick.latency_us
            .saturating_record(us.clamp(1, MAX_LATENCY_US));
        tick.answered += 1;
        match sample.status {
            Some(s) if (200..300).contains(&s) => {
                tick.ok += 1;
                tick.ok_latency_us
                    .saturating_record(us.clamp(1, MAX_LATENCY_US));
            }
            Some(s) if (500..600).contains(&s) => tick.server_errors += 1,
            _ => tick.errors += 1,
        }
    }

    /// The line for second `t`, and a fresh second.
    pub fn take_line(&self, t: u64) -> String {
        let mut tick = self.tick.lock().unwrap_or_else(|e| e.into_inner());
        let ms = |h: &Histogram<u64>, q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let line = format!(
            "progress t={t}s answered={} ok={} 5xx={} errors={} p50_ms={:.1} p99_ms={:.1} ok_p99_ms={:.1}",
            tick.answered,
            tick.ok,
            tick.server_errors,
            tick.errors,
            ms(&tick.latency_us, 0.5),
            ms(&tick.latency_us, 0.99),
            ms(&tick.ok_latency_us, 0.99),
        );
        tick.latency_us.reset();
        tick.ok_latency_us.reset();
        tick.answered = 0;
        tick.ok = 0;
        tick.server_errors = 0;
        tick.errors = 0;
        line
    }
}

/// Prints a line every second from `start` until `done` is cancelled.
pub fn spawn_printer(
    progress: Arc<Progress>,
    start: Instant,
    done: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every =
            tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut t = 0;
        loop {
            tokio::select! {
                () = done.cancelled() => break,
                _ = every.tick() => {
                    t += 1;
                    eprintln!("{}", progress.take_line(t));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Outcome;

    fn sample(status: Option<u16>, ms: u64) -> Sample {
        Sample {
            latency: Duration::from_millis(ms),
            status,
            outcome: Outcome::Confirmed,
            replay: false,
            answered_as_replay: false,
            traced: false,
            sampled_trace: None,
        }
    }

    #[test]
    fn a_line_counts_the_second_and_starts_a_new_one() {
        let p = Progress::new().unwrap();
        for _ in 0..98 {
            p.record(&sample(Some(201), 10));
        }
        p.record(&sample(Some(503), 10));
        p.record(&sample(None, 500));
        let line = p.take_line(1);
        assert!(
            line.starts_with("progress t=1s answered=100 ok=98 5xx=1 errors=1 p50_ms=10.0"),
            "{line}"
        );
        assert!(line.contains("p99_ms=10.0"), "{line}");
        assert_eq!(
            p.take_line(2),
            "progress t=2s answered=0 ok=0 5xx=0 errors=0 p50_ms=0.0 p99_ms=0.0 ok_p99_ms=0.0"
        );
    }

    #[test]
    fn the_admitted_requests_latency_is_apart_from_the_refusals() {
        let p = Progress::new().unwrap();
        for _ in 0..50 {
            p.record(&sample(Some(201), 200));
        }
        for _ in 0..50 {
            p.record(&sample(Some(503), 2));
        }
        let line = p.take_line(1);
        assert!(line.contains("p50_ms=2.0"), "{line}");
        // The histogram keeps two significant digits: 200 ms reads 200.x.
        assert!(line.contains(" ok_p99_ms=200."), "{line}");
    }
}
