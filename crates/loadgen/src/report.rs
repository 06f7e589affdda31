//! Aggregation of what each request got back, and the summary printed at the end of a run.
//!
//! Every finished request becomes one [`Sample`]; a [`Recorder`] counts samples (each worker
//! has its own, merged at the end, so recording takes no lock) and keeps their latencies in an
//! HDR histogram with microsecond resolution and 3 significant digits. A [`Summary`] is the
//! result: printed as text, or as one JSON document with `--json`.
//!
//! Latency is recorded for every request, answered or not (a transport error records the time
//! until it failed). In the open loop it runs from the request's intended start, so queueing
//! inside loadgen or the server is not hidden. Under overload the two populations differ: the
//! requests the platform admitted (a 2xx answer) and the ones it shed (503) get histograms of
//! their own, since a fast 503 for half the load would otherwise hide how long the admitted
//! half waited.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histogram tracks exactly; longer ones are recorded as this.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 201, order `CONFIRMED`.
    Confirmed,
    /// 201, order `FAILED` with its `failure_reason`.
    Failed(String),
    /// The order is left `PENDING`: a 503 (a dependency is down), or a 201 still pending.
    Pending,
    /// No usable answer: a transport error (`connect`, `timeout`, …), an unreadable body, or an
    /// unexpected status (`http_409`, `http_500`, …).
    Error(String),
}

/// One finished request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub latency: Duration,
    /// The HTTP status, when there was an answer.
    pub status: Option<u16>,
    pub outcome: Outcome,
    /// The request resent an earlier order's key and body.
    pub replay: bool,
    /// The answer said it was a replay (`idempotent-replayed: true`).
    pub answered_as_replay: bool,
    /// Whether the request carried a `traceparent`, and its trace id when sampled.
    pub traced: bool,
    pub sampled_trace: Option<String>,
}

/// Counts and latencies of a set of samples.
#[derive(Debug, Clone)]
pub struct Recorder {
    latency_us: Histogram<u64>,
    /// Latency of the requests answered 2xx.
    admitted_us: Histogram<u64>,
    /// Latency of the requests answered 503.
    shed_us: Histogram<u64>,
    requests: u64,
    status: BTreeMap<u16, u64>,
    confirmed: u64,
    failed: BTreeMap<String, u64>,
    pending: u64,
    errors: BTreeMap<String, u64>,
    replays_sent: u64,
    replays_answered: u64,
    traced: u64,
    traces_sampled: u64,
    example_trace: Option<String>,
}

impl Recorder {
    pub fn new() -> Result<Self, String> {
        let histogram = || {
            Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
                .map_err(|e| format!("latency histogram: {e}"))
        };
        Ok(Self {
            latency_us: histogram()?,
            admitted_us: histogram()?,
            shed_us: histogram()?,
            requests: 0,
            status: BTreeMap::new(),
            confirmed: 0,
            failed: BTreeMap::new(),
            pending: 0,
            errors: BTreeMap::new(),
            replays_sent: 0,
            replays_answered: 0,
            traced: 0,
            traces_sampled: 0,
            example_trace: None,
        })
    }

    pub fn record(&mut self, sample: Sample) {
        let us = u64::try_from(sample.latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LATENCY_US);
        self.latency_us.saturating_record(us);
        match sample.status {
            Some(200..=299) => self.admitted_us.saturating_record(us),
            Some(503) => self.shed_us.saturating_record(us),
            _ => {}
        }
        self.requests += 1;
        if let Some(status) = sample.status {
            *self.status.entry(status).or_default() += 1;
        }
        match sample.outcome {
            Outcome::Confirmed => self.confirmed += 1,
            Outcome::Failed(reason) => *self.failed.entry(reason).or_default() += 1,
            Outcome::Pending => self.pending += 1,
            Outcome::Error(kind) => *self.errors.entry(kind).or_default() += 1,
        }
        self.replays_sent += u64::from(sample.replay);
        self.replays_answered += u64::from(sample.replay && sample.answered_as_replay);
        self.traced += u64::from(sample.traced);
        if let Some(trace) = sample.sampled_trace {
            self.traces_sampled += 1;
            self.example_trace.get_or_insert(trace);
        }
    }

    pub fn merge(&mut self, other: Recorder) -> Result<(), String> {
        for (mine, theirs) in [
            (&mut self.latency_us, &other.latency_us),
            (&mut self.admitted_us, &other.admitted_us),
            (&mut self.shed_us, &other.shed_us),
        ] {
            mine.add(theirs)
                .map_err(|e| format!("merging latency histograms: {e}"))?;
        }
        self.requests += other.requests;
        for (k, v) in other.status {
            *self.status.entry(k).or_default() += v;
        }
        self.confirmed += other.confirmed;
        for (k, v) in other.failed {
            *self.failed.entry(k).or_default() += v;
        }
        self.pending += other.pending;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.replays_sent += other.replays_sent;
        self.replays_answered += other.replays_answered;
        self.traced += other.traced;
        self.traces_sampled += other.traces_sampled;
        if self.example_trace.is_none() {
            self.example_trace = other.example_trace;
        }
        Ok(())
    }
}

/// How the load was offered, for the summary's header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    /// `closed` or `open`.
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// `tenant=url` per target.
    pub targets: Vec<String>,
    pub warmup_s: f64,
    pub seed: u64,
}

/// How far the open loop's actual starts fell behind its schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ScheduleLag {
    /// Requests that started more than [`LATE_START`] after their intended time.
    pub late_starts: u64,
    pub max_lag_ms: f64,
}

/// A start this much after its intended time counts as late.
pub const LATE_START: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Orders {
    pub confirmed: u64,
    /// Failed orders by `failure_reason`.
    pub failed: BTreeMap<String, u64>,
    pub pending: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replays {
    pub sent: u64,
    /// Replays answered with `idempotent-replayed: true`.
    pub answered_as_replay: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traces {
    /// Requests that carried a `traceparent`.
    pub sent: u64,
    pub sampled: u64,
    /// One sampled trace id, to look up in the tracing UI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub example_trace_id: Option<String>,
}

/// The result of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub run: RunInfo,
    /// Wall time of the measured part: from the end of warm-up to the last measured answer.
    pub elapsed_s: f64,
    pub requests: u64,
    pub throughput_rps: f64,
    pub latency_ms: Latency,
    /// Latency of the requests answered 2xx (absent when none was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admitted_latency_ms: Option<Latency>,
    /// Latency of the requests answered 503, i.e. shed or refused (absent when none was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shed_latency_ms: Option<Latency>,
    /// Requests per HTTP status code.
    pub status: BTreeMap<String, u64>,
    pub orders: Orders,
    /// Requests without a usable answer, by kind.
    pub errors: BTreeMap<String, u64>,
    pub replays: Replays,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traces: Option<Traces>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleLag>,
}

impl Latency {
    /// The percentiles of a histogram of microseconds, in milliseconds (all 0 when empty).
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Latency {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p99_9: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        let at = |q: f64| ms(h.value_at_quantile(q));
        Latency {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p99_9: at(0.999),
            max: ms(h.max()),
            mean: h.mean().round() / 1000.0,
        }
    }
}

/// Microseconds as milliseconds (3 decimals, exact).
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Summary {
    pub fn new(
        run: RunInfo,
        recorder: &Recorder,
        elapsed: Duration,
        schedule: Option<ScheduleLag>,
    ) -> Self {
        let secs = elapsed.as_secs_f64();
        let traced = recorder.traced > 0;
        Summary {
            elapsed_s: (secs * 1000.0).round() / 1000.0,
            requests: recorder.requests,
            throughput_rps: if secs > 0.0 {
                (recorder.requests as f64 / secs * 10.0).round() / 10.0
            } else {
                0.0
            },
            latency_ms: Latency::of(&recorder.latency_us),
            admitted_latency_ms: (!recorder.admitted_us.is_empty())
                .then(|| Latency::of(&recorder.admitted_us)),
            shed_latency_ms: (!recorder.shed_us.is_empty()).then(|| Latency::of(&recorder.shed_us)),
            status: recorder
                .status
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            orders: Orders {
                confirmed: recorder.confirmed,
                failed: recorder.failed.clone(),
                pending: recorder.pending,
            },
            errors: recorder.errors.clone(),
            replays: Replays {
                sent: recorder.replays_sent,
                answered_as_replay: recorder.replays_answered,
            },
            traces: traced.then(|| Traces {
                sent: recorder.traced,
                sampled: recorder.traces_sampled,
                example_trace_id: recorder.example_trace.clone(),
            }),
            schedule,
            run,
        }
    }

    /// The human-readable summary.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let r = &self.run;
        let how = match (r.mode, r.concurrency, r.rate) {
            ("open", _, Some(rate)) => format!(
                "open loop at {rate} req/s (at most {} in flight)",
                r.max_in_flight.unwrap_or_default()
            ),
            (_, Some(c), _) => format!("closed loop, concurrency {c}"),
            _ => r.mode.to_owned(),
        };
        let _ = writeln!(
            out,
            "loadgen: {how}; {:.1} s measured after {:.1} s warm-up; seed {}",
            self.elapsed_s, r.warmup_s, r.seed
        );
        let _ = writeln!(out, "  targets     {}", r.targets.join("  "));
        let _ = writeln!(
            out,
            "  requests    {}   throughput {:.1} req/s",
            self.requests, self.throughput_rps
        );
        let latency_line = |out: &mut String, label: &str, l: &Latency| {
            let _ = writeln!(
                out,
                "  {label:<11} p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}  mean {:.2}",
                l.p50, l.p90, l.p99, l.p99_9, l.max, l.mean
            );
        };
        latency_line(&mut out, "latency ms", &self.latency_ms);
        // Split out only when both kinds were answered: otherwise the line above is either.
        if let (Some(admitted), Some(shed)) = (&self.admitted_latency_ms, &self.shed_latency_ms) {
            latency_line(&mut out, "  2xx", admitted);
            latency_line(&mut out, "  503", shed);
        }
        let _ = writeln!(out, "  status      {}", counts(&self.status));
        let o = &self.orders;
        let failed: u64 = o.failed.values().sum();
        let mut orders = format!("confirmed {}  failed {failed}", o.confirmed);
        if failed > 0 {
            let _ = write!(orders, " ({})", counts(&o.failed));
        }
        let _ = write!(orders, "  pending {}", o.pending);
        let _ = writeln!(out, "  orders      {orders}");
        let _ = writeln!(out, "  errors      {}", counts(&self.errors));
        if self.replays.sent > 0 {
            let _ = writeln!(
                out,
                "  replays     {} sent, {} answered as replays",
                self.replays.sent, self.replays.answered_as_replay
            );
        }
        if let Some(t) = &self.traces {
            let example = t
                .example_trace_id
                .as_deref()
                .map(|id| format!(" (e.g. trace {id})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  traces      {} traceparent sent, {} sampled{example}",
                t.sent, t.sampled
            );
        }
        if let Some(s) = &self.schedule {
            let _ = writeln!(
                out,
                "  schedule    {} starts > {} ms late, max lag {:.2} ms",
                s.late_starts,
                LATE_START.as_millis(),
                s.max_lag_ms
            );
        }
        out
    }
}

/// `a: 1  b: 2`, or `none`.
fn counts<K: std::fmt::Display>(map: &BTreeMap<K, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("  ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: u64, status: Option<u16>, outcome: Outcome) -> Sample {
        Sample {
            latency: Duration::from_millis(ms),
            status,
            outcome,
            replay: false,
            answered_as_replay: false,
            traced: false,
            sampled_trace: None,
        }
    }

    fn info() -> RunInfo {
        RunInfo {
            mode: "closed",
            concurrency: Some(2),
            rate: None,
            max_in_flight: None,
            targets: vec!["tenant-a=http://127.0.0.1:8081".into()],
            warmup_s: 0.0,
            seed: 1,
        }
    }

    #[test]
    fn samples_are_counted_by_status_outcome_and_error() {
        let mut a = Recorder::new().unwrap();
        for i in 1..=98 {
            a.record(sample(i, Some(201), Outcome::Confirmed));
        }
        a.record(sample(
            5,
            Some(201),
            Outcome::Failed("payment_declined".into()),
        ));
        a.record(sample(5, Some(503), Outcome::Pending));
        let mut b = Recorder::new().unwrap();
        b.record(sample(1000, None, Outcome::Error("connect".into())));
        b.record(sample(7, Some(409), Outcome::Error("http_409".into())));
        b.record(Sample {
            replay: true,
            answered_as_replay: true,
            traced: true,
            sampled_trace: Some("abc".into()),
            ..sample(3, Some(201), Outcome::Failed("out_of_stock".into()))
        });
        a.merge(b).unwrap();

        let s = Summary::new(info(), &a, Duration::from_secs(2), None);
        assert_eq!(s.requests, 103);
        assert_eq!(s.throughput_rps, 51.5);
        assert_eq!(s.orders.confirmed, 98);
        assert_eq!(s.orders.failed["payment_declined"], 1);
        assert_eq!(s.orders.failed["out_of_stock"], 1);
        assert_eq!(s.orders.pending, 1);
        assert_eq!(s.status["201"], 100);
        assert_eq!(s.status["503"], 1);
        assert_eq!(s.status["409"], 1);
        assert_eq!(s.errors["connect"], 1);
        assert_eq!(s.errors["http_409"], 1);
        assert_eq!(
            s.replays,
            Replays {
                sent: 1,
                answered_as_replay: 1
            }
        );
        let t = s.traces.clone().unwrap();
        assert_eq!((t.sent, t.sampled), (1, 1));
        assert_eq!(t.example_trace_id.as_deref(), Some("abc"));
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut r = Recorder::new().unwrap();
        for i in 1..=1000 {
            r.record(sample(i, Some(201), Outcome::Confirmed));
        }
        let l = Summary::new(info(), &r, Duration::from_secs(1), None).latency_ms;
        // 3 significant digits: each value is within 0.1% of the exact one.
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.001 + 0.001;
        assert!(close(l.p50, 500.0), "{l:?}");
        assert!(close(l.p90, 900.0), "{l:?}");
        assert!(close(l.p99, 990.0), "{l:?}");
        assert!(close(l.p99_9, 999.0), "{l:?}");
        assert!(close(l.max, 1000.0), "{l:?}");
        assert!(close(l.mean, 500.5), "{l:?}");
    }

    #[test]
    fn admitted_and_shed_requests_have_latencies_of_their_own() {
        let mut a = Recorder::new().unwrap();
        for i in 1..=100 {
            a.record(sample(1000 + i, Some(201), Outcome::Confirmed));
        }
        let mut b = Recorder::new().unwrap();
        for _ in 0..150 {
            b.record(sample(2, Some(503), Outcome::Pending));
        }
        b.record(sample(9000, None, Outcome::Error("timeout".into())));
        a.merge(b).unwrap();
        let s = Summary::new(info(), &a, Duration::from_secs(1), None);
        let admitted = s.admitted_latency_ms.clone().unwrap();
        let shed = s.shed_latency_ms.clone().unwrap();
        assert!(
            admitted.p50 > 1000.0 && admitted.max < 1101.0,
            "{admitted:?}"
        );
        assert_eq!(shed.max, 2.0, "{shed:?}");
        // Overall, the fast 503s pull the median down to theirs: why the split matters.
        assert_eq!(s.latency_ms.p50, 2.0);
        assert!(
            (9000.0..9010.0).contains(&s.latency_ms.max),
            "{:?}",
            s.latency_ms
        );
        let text = s.to_text();
        let line = |label: &str| {
            text.lines()
                .find(|l| l.trim_start().starts_with(label))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(line("2xx").contains("p50 1050"), "{text}");
        assert!(line("503").contains("p50 2.00"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert!(json["admitted_latency_ms"]["p99"].as_f64().unwrap() > 1000.0);
        assert_eq!(json["shed_latency_ms"]["p99"].as_f64(), Some(2.0));
    }

    #[test]
    fn an_empty_run_reports_zeros_not_garbage() {
        let r = Recorder::new().unwrap();
        let s = Summary::new(info(), &r, Duration::ZERO, None);
        assert_eq!(s.requests, 0);
        assert_eq!(s.throughput_rps, 0.0);
        assert_eq!(s.latency_ms.max, 0.0);
        assert!(s.to_text().contains("errors      none"));
    }

    #[test]
    fn text_and_json_carry_the_figures() {
        let mut r = Recorder::new().unwrap();
        r.record(sample(12, Some(201), Outcome::Confirmed));
        r.record(sample(
            30,
            Some(201),
            Outcome::Failed("payment_declined".into()),
        ));
        let lag = ScheduleLag {
            late_starts: 3,
            max_lag_ms: 15.5,
        };
        let mut run = info();
        run.mode = "open";
        run.rate = Some(50.0);
        run.max_in_flight = Some(64);
        run.concurrency = None;
        let s = Summary::new(run, &r, Duration::from_secs(1), Some(lag));
        let text = s.to_text();
        assert!(
            text.contains("open loop at 50 req/s (at most 64 in flight)"),
            "{text}"
        );
        assert!(
            text.contains("requests    2   throughput 2.0 req/s"),
            "{text}"
        );
        assert!(text.contains("status      201: 2"), "{text}");
        assert!(
            text.contains("confirmed 1  failed 1 (payment_declined: 1)  pending 0"),
            "{text}"
        );
        assert!(text.contains("3 starts > 10 ms late"), "{text}");
        assert!(!text.contains("traces"), "{text}");

        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(json["requests"], 2);
        assert_eq!(json["status"]["201"], 2);
        assert_eq!(json["orders"]["failed"]["payment_declined"], 1);
        assert_eq!(json["run"]["rate"], 50.0);
        assert_eq!(json["schedule"]["late_starts"], 3);
        assert!(json["latency_ms"]["p99_9"].as_f64().unwrap() >= 29.9);
        assert!(json.get("traces").is_none());
    }
}
