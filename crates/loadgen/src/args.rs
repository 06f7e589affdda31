//! Command-line arguments, and their validation into a [`Config`] the drivers can trust.
//!
//! Everything here is pure: [`Config::from_args`] turns what clap parsed into targets, a load
//! mode and bounds, or into one clear message. Two rules are enforced here and nowhere else:
//! every run is bounded (at most [`MAX_RUN`] of wall time and [`MAX_REQUESTS`] requests), and
//! only loopback addresses are targeted unless `--allow-remote` is given.

use std::{net::IpAddr, time::Duration};

use clap::Parser;
use commerce::values::{Amount, Currency, Quantity, Sku};
use url::{Host, Url};

/// Longest run, warm-up included.
pub const MAX_RUN: Duration = Duration::from_secs(10 * 60);
/// Most measured requests in one run.
pub const MAX_REQUESTS: u64 = 10_000_000;
/// Most concurrent requests (closed-loop workers, or open-loop requests in flight).
pub const MAX_CONCURRENCY: usize = 4096;
/// Highest open-loop arrival rate, requests per second.
pub const MAX_RATE: f64 = 100_000.0;
/// Open-loop cap on requests in flight when `--concurrency` does not set one.
pub const DEFAULT_OPEN_LOOP_IN_FLIGHT: usize = 1024;
/// The stock ceiling inventory-service accepts (`PUT /api/v1/items/{sku}`).
pub use commerce::values::MAX_STOCK;

const DEFAULT_TARGET: &str = "http://127.0.0.1:8081";
const DEFAULT_TENANT: &str = "tenant-a";
const DEFAULT_CONCURRENCY: usize = 4;
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Places orders through order-service's public API and reports throughput, latency percentiles and order outcomes.",
    after_help = "Closed loop: --concurrency N workers, each sending its next order when the previous one is answered.\n\
Open loop: --rate R orders/s at constant arrival times; latency is measured from each order's intended start, so a\n\
slow server cannot hide its queueing (no coordinated omission). --concurrency then caps requests in flight.\n\
Every run is bounded: --duration (default 10s) and/or --requests, at most 10 minutes.\n\
Targets must be loopback addresses (127.0.0.0/8, ::1, localhost) unless --allow-remote is given."
)]
pub struct Args {
    /// order-service base URL, as `URL` or `TENANT=URL`; repeat for several targets/tenants
    /// (orders are spread over them round-robin). Default http://127.0.0.1:8081
    #[arg(long = "target", value_name = "[TENANT=]URL")]
    pub targets: Vec<String>,
    /// Tenant (`x-tenant-id`) of the plain-URL targets: once for all of them, or once per
    /// target in the same order. Default tenant-a
    #[arg(long = "tenant", value_name = "TENANT")]
    pub tenants: Vec<String>,
    /// Closed loop with N workers; with --rate, the cap on requests in flight
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
    /// Open loop: R orders per second at constant intervals
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// How long to measure, e.g. 500ms, 30s, 2m (default 10s unless --requests is given)
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after N measured requests (also bounded by --duration when given, and by 10 minutes)
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Send load for this long before measuring; those requests are not reported
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub warmup: Duration,
    /// SKUs to order, comma-separated; each order has one line with one of them, chosen at random
    #[arg(long, value_delimiter = ',', default_value = "SKU-001")]
    pub skus: Vec<String>,
    /// Units per order line
    #[arg(long, default_value_t = 1)]
    pub quantity: i64,
    /// The price of one unit the orders expect to pay, in minor units (optional: without it the
    /// catalog's price is charged; with it, an order whose catalog price differs fails with
    /// `price_changed`)
    #[arg(long)]
    pub unit_price: Option<i64>,
    /// ISO 4217 currency of the orders
    #[arg(long, default_value = "EUR")]
    pub currency: String,
    /// Fraction of orders paid with `card_declined` (0..=1)
    #[arg(long, default_value_t = 0.0)]
    pub decline_ratio: f64,
    /// Fraction of requests that resend an earlier order's Idempotency-Key and body (0..=1)
    #[arg(long, default_value_t = 0.0)]
    pub replay_ratio: f64,
    /// Send a W3C `traceparent` on every request, with the sampled flag on this fraction (0..=1)
    #[arg(long)]
    pub trace_sample_ratio: Option<f64>,
    /// Per-request timeout
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// Seed of the random choices (SKU, decline, replay, sampling); printed when not given
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the summary as one JSON document instead of text
    #[arg(long)]
    pub json: bool,
    /// Before the run, set SKU's available stock to N through inventory-service (repeatable;
    /// needs --inventory)
    #[arg(long = "seed-stock", value_name = "SKU=N")]
    pub seed_stock: Vec<String>,
    /// Catalog price of one unit set with --seed-stock, in minor units of --currency
    #[arg(long, default_value_t = 1999)]
    pub seed_price: i64,
    /// inventory-service base URL for --seed-stock, as `URL` (tenant of the target at the same
    /// position) or `TENANT=URL`; repeatable
    #[arg(long = "inventory", value_name = "[TENANT=]URL")]
    pub inventories: Vec<String>,
    /// Only seed stock, send no orders
    #[arg(long)]
    pub seed_only: bool,
    /// Allow targets outside 127.0.0.0/8 and ::1 (off by default: load tests stay on this machine)
    #[arg(long)]
    pub allow_remote: bool,
    /// Send orders with this `Host` header, e.g. a tenant's host on an ingress gateway
    /// (`tenant-a.ordermesh.local`) while --target names the gateway's address
    #[arg(long, value_name = "HOST")]
    pub host_header: Option<String>,
    /// Print one line per second on stderr while the load runs: answers, 2xx, 5xx, errors and
    /// p50/p99 latency of the requests answered in that second (warm-up included)
    #[arg(long)]
    pub progress: bool,
}

/// One service to send requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tenant: String,
    /// Base URL, without a trailing slash.
    pub base: String,
}

impl Target {
    pub fn orders_url(&self) -> String {
        format!("{}/api/v1/orders", self.base)
    }

    pub fn item_url(&self, sku: &str) -> String {
        format!("{}/api/v1/items/{sku}", self.base)
    }
}

/// How load is offered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// `concurrency` workers, each sending its next request when the last is answered.
    Closed { concurrency: usize },
    /// Requests start at `rate` per second regardless of answers, at most `max_in_flight` at once.
    Open { rate: f64, max_in_flight: usize },
}

/// What each order contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderShape {
    pub skus: Vec<String>,
    pub quantity: i64,
    pub unit_price: Option<i64>,
    pub currency: String,
}

/// A validated run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub targets: Vec<Target>,
    pub mode: Mode,
    /// Measured time (after warm-up).
    pub duration: Duration,
    pub requests: Option<u64>,
    pub warmup: Duration,
    pub order: OrderShape,
    pub decline_ratio: f64,
    pub replay_ratio: f64,
    pub trace_sample_ratio: Option<f64>,
    pub timeout: Duration,
    pub seed: u64,
    pub json: bool,
    pub seed_stock: Vec<(String, i64)>,
    pub seed_price: i64,
    pub inventories: Vec<Target>,
    pub seed_only: bool,
    pub allow_remote: bool,
    pub host_header: Option<String>,
    pub progress: bool,
}

impl Config {
    /// Validates `args`; `default_seed` is used when `--seed` is absent.
    pub fn from_args(args: Args, default_seed: u64) -> Result<Config, String> {
        let targets = resolve_targets(&args.targets, &args.tenants, args.allow_remote)?;
        let inventories = resolve_inventories(&args.inventories, &targets, args.allow_remote)?;
        let seed_stock = args
            .seed_stock
            .iter()
            .map(|s| parse_seed_stock(s))
            .collect::<Result<Vec<_>, _>>()?;
        if !seed_stock.is_empty() && inventories.is_empty() {
            return Err("--seed-stock needs --inventory URL (inventory-service's base URL)".into());
        }
        if seed_stock.is_empty() && (!inventories.is_empty() || args.seed_only) {
            return Err("--inventory and --seed-only are only used with --seed-stock SKU=N".into());
        }

        let mode = match (args.rate, args.concurrency) {
            (None, concurrency) => Mode::Closed {
                concurrency: check_concurrency(concurrency.unwrap_or(DEFAULT_CONCURRENCY))?,
            },
            (Some(rate), concurrency) => {
                if !(rate > 0.0 && rate <= MAX_RATE) {
                    return Err(format!(
                        "--rate must be > 0 and at most {MAX_RATE} requests/s"
                    ));
                }
                Mode::Open {
                    rate,
                    max_in_flight: check_concurrency(
                        concurrency.unwrap_or(DEFAULT_OPEN_LOOP_IN_FLIGHT),
                    )?,
                }
            }
        };

        let duration = match (args.duration, args.requests) {
            (Some(d), _) => d,
            (None, Some(_)) => MAX_RUN.saturating_sub(args.warmup),
            (None, None) => DEFAULT_DURATION,
        };
        if duration.is_zero() {
            return Err("--duration must be more than 0".into());
        }
        if duration + args.warmup > MAX_RUN {
            return Err(format!(
                "--warmup plus --duration must be at most {} s (this machine's bound on a load run)",
                MAX_RUN.as_secs()
            ));
        }
        if let Some(n) = args.requests
            && !(1..=MAX_REQUESTS).contains(&n)
        {
            return Err(format!("--requests must be between 1 and {MAX_REQUESTS}"));
        }
        if args.timeout.is_zero() || args.timeout > Duration::from_secs(120) {
            return Err("--timeout must be more than 0 and at most 120s".into());
        }

        if args.skus.is_empty() {
            return Err("--skus needs at least one SKU".into());
        }
        for sku in &args.skus {
            Sku::parse(sku).map_err(|e| format!("--skus: `{sku}` {e}"))?;
        }
        let quantity = Quantity::parse(args.quantity).map_err(|e| format!("--quantity {e}"))?;
        for (flag, price) in [
            ("--unit-price", args.unit_price),
            ("--seed-price", Some(args.seed_price)),
        ] {
            let Some(price) = price else { continue };
            let price = Amount::parse(price)
                .ok()
                .filter(|p| p.get() > 0)
                .ok_or_else(|| format!("{flag} must be at least 1 minor unit"))?;
            if price.times(quantity).is_none() {
                return Err(format!(
                    "{flag} times --quantity exceeds the largest order total"
                ));
            }
        }
        let currency = Currency::parse(&args.currency).map_err(|e| format!("--currency {e}"))?;
        if let Some(host) = &args.host_header {
            check_host_header(host)?;
        }

        let decline_ratio = check_ratio("--decline-ratio", args.decline_ratio)?;
        let replay_ratio = check_ratio("--replay-ratio", args.replay_ratio)?;
        let trace_sample_ratio = args
            .trace_sample_ratio
            .map(|r| check_ratio("--trace-sample-ratio", r))
            .transpose()?;

        Ok(Config {
            targets,
            mode,
            duration,
            requests: args.requests,
            warmup: args.warmup,
            order: OrderShape {
                skus: args.skus,
                quantity: args.quantity,
                unit_price: args.unit_price,
                currency: currency.code().to_owned(),
            },
            decline_ratio,
            replay_ratio,
            trace_sample_ratio,
            timeout: args.timeout,
            seed: args.seed.unwrap_or(default_seed),
            json: args.json,
            seed_stock,
            seed_price: args.seed_price,
            inventories,
            seed_only: args.seed_only,
            allow_remote: args.allow_remote,
            host_header: args.host_header,
            progress: args.progress,
        })
    }
}

/// A `Host` header value: a host name or address with an optional port, nothing else.
fn check_host_header(host: &str) -> Result<(), String> {
    let valid = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if valid {
        Ok(())
    } else {
        Err(format!("--host-header `{host}` is not a host[:port]"))
    }
}

fn check_concurrency(n: usize) -> Result<usize, String> {
    if (1..=MAX_CONCURRENCY).contains(&n) {
        Ok(n)
    } else {
        Err(format!(
            "--concurrency must be between 1 and {MAX_CONCURRENCY}"
        ))
    }
}

fn check_ratio(flag: &str, value: f64) -> Result<f64, String> {
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("{flag} must be between 0 and 1"))
    }
}

/// Parses `500ms`, `30s`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{value}` is not a duration (e.g. 500ms, 30s, 2m)"))?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{value}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{value}` is out of range"))
}

/// The tenant rule every service applies (`commerce::values::TenantId`).
fn check_tenant(value: &str) -> Result<(), String> {
    commerce::values::TenantId::parse(value)
        .map(drop)
        .map_err(|reason| format!("tenant `{value}`: {reason}"))
}

/// Splits `TENANT=URL` into its parts; a plain URL gives `None` as the tenant.
fn split_tenant(value: &str) -> (Option<&str>, &str) {
    match value.split_once('=') {
        Some((tenant, url)) if !tenant.contains([':', '/', '?']) => (Some(tenant), url),
        _ => (None, value),
    }
}

/// Parses a base URL and applies the loopback policy.
pub fn parse_base_url(value: &str, allow_remote: bool) -> Result<String, String> {
    let url = Url::parse(value).map_err(|e| format!("`{value}` is not a URL: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "`{value}`: only http:// is supported (loadgen talks plain HTTP to a service or an ingress)"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{value}`: a base URL has no query or fragment"));
    }
    if !allow_remote {
        let loopback = match url.host() {
            Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if !loopback {
            return Err(format!(
                "`{value}` is not a loopback address: load tests here target only 127.0.0.0/8, \
                 ::1 or localhost (pass --allow-remote to override)"
            ));
        }
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn resolve_targets(
    raw: &[String],
    tenants: &[String],
    allow_remote: bool,
) -> Result<Vec<Target>, String> {
    let default = [DEFAULT_TARGET.to_owned()];
    let raw = if raw.is_empty() { &default[..] } else { raw };
    let plain = raw.iter().filter(|r| split_tenant(r).0.is_none()).count();
    if tenants.len() > 1 && tenants.len() != plain {
        return Err(format!(
            "give --tenant once, or once per plain --target URL ({plain} of them), not {} times",
            tenants.len()
        ));
    }
    let mut plain_index = 0;
    raw.iter()
        .map(|entry| {
            let (tenant, url) = split_tenant(entry);
            let tenant = match tenant {
                Some(t) => t.to_owned(),
                None => {
                    let t = match tenants {
                        [] => DEFAULT_TENANT.to_owned(),
                        [one] => one.clone(),
                        many => many[plain_index].clone(),
                    };
                    plain_index += 1;
                    t
                }
            };
            check_tenant(&tenant)?;
            Ok(Target {
                tenant,
                base: parse_base_url(url, allow_remote)?,
            })
        })
        .collect()
}

fn resolve_inventories(
    raw: &[String],
    targets: &[Target],
    allow_remote: bool,
) -> Result<Vec<Target>, String> {
    raw.iter()
        .enumerate()
        .map(|(i, entry)| {
            let (tenant, url) = split_tenant(entry);
            let tenant = match tenant {
                Some(t) => t.to_owned(),
                None => targets.get(i).map(|t| t.tenant.clone()).ok_or_else(|| {
                    format!(
                        "--inventory `{entry}`: no target at position {}; write TENANT=URL",
                        i + 1
                    )
                })?,
            };
            check_tenant(&tenant)?;
            Ok(Target {
                tenant,
                base: parse_base_url(url, allow_remote)?,
            })
        })
        .collect()
}

/// Parses `SKU=N`.
fn parse_seed_stock(value: &str) -> Result<(String, i64), String> {
    let (sku, n) = value
        .split_once('=')
        .ok_or_else(|| format!("--seed-stock `{value}`: expected SKU=N"))?;
    Sku::parse(sku).map_err(|e| format!("--seed-stock: SKU `{sku}` {e}"))?;
    let n: i64 = n
        .trim()
        .parse()
        .map_err(|_| format!("--seed-stock `{value}`: N must be a whole number"))?;
    if !(0..=MAX_STOCK).contains(&n) {
        return Err(format!(
            "--seed-stock `{value}`: N must be between 0 and {MAX_STOCK}"
        ));
    }
    Ok((sku.to_owned(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(argv: &[&str]) -> Result<Config, String> {
        let args = Args::try_parse_from(std::iter::once("loadgen").chain(argv.iter().copied()))
            .map_err(|e| e.to_string())?;
        Config::from_args(args, 7)
    }

    #[test]
    fn defaults_are_a_short_closed_loop_against_local_tenant_a() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.targets,
            [Target {
                tenant: "tenant-a".into(),
                base: "http://127.0.0.1:8081".into()
            }]
        );
        assert_eq!(c.mode, Mode::Closed { concurrency: 4 });
        assert_eq!(c.duration, Duration::from_secs(10));
        assert_eq!(c.requests, None);
        assert_eq!(c.seed, 7);
        assert_eq!(c.order.skus, ["SKU-001"]);
        assert_eq!(c.trace_sample_ratio, None);
    }

    #[test]
    fn host_header_is_a_host_and_optional_port() {
        let c = config(&["--host-header", "tenant-a.ordermesh.local"]).unwrap();
        assert_eq!(c.host_header.as_deref(), Some("tenant-a.ordermesh.local"));
        assert!(config(&["--host-header", "gw.local:8080"]).is_ok());
        assert!(config(&["--host-header", "a b"]).is_err());
        assert!(config(&["--host-header", "a\r\nX-Evil: 1"]).is_err());
        assert_eq!(config(&[]).unwrap().host_header, None);
    }

    #[test]
    fn rate_selects_the_open_loop_and_concurrency_caps_it() {
        let c = config(&["--rate", "200", "--concurrency", "32"]).unwrap();
        assert_eq!(
            c.mode,
            Mode::Open {
                rate: 200.0,
                max_in_flight: 32
            }
        );
        let c = config(&["--rate", "5"]).unwrap();
        assert_eq!(
            c.mode,
            Mode::Open {
                rate: 5.0,
                max_in_flight: DEFAULT_OPEN_LOOP_IN_FLIGHT
            }
        );
        assert!(config(&["--rate", "0"]).is_err());
        assert!(config(&["--rate", "NaN"]).is_err());
        assert!(config(&["--concurrency", "0"]).is_err());
    }

    #[test]
    fn targets_pair_with_tenants() {
        let c = config(&[
            "--target",
            "tenant-b=http://127.0.0.1:8091/",
            "--target",
            "http://localhost:8081",
            "--tenant",
            "tenant-a",
        ])
        .unwrap();
        assert_eq!(c.targets[0].tenant, "tenant-b");
        assert_eq!(c.targets[0].base, "http://127.0.0.1:8091");
        assert_eq!(
            c.targets[0].orders_url(),
            "http://127.0.0.1:8091/api/v1/orders"
        );
        assert_eq!(c.targets[1].tenant, "tenant-a");

        let c = config(&[
            "--target",
            "http://127.0.0.1:8081",
            "--target",
            "http://127.0.0.1:8091",
            "--tenant",
            "tenant-a",
            "--tenant",
            "tenant-b",
        ])
        .unwrap();
        let tenants: Vec<_> = c.targets.iter().map(|t| t.tenant.as_str()).collect();
        assert_eq!(tenants, ["tenant-a", "tenant-b"]);

        assert!(config(&["--tenant", "a", "--tenant", "b"]).is_err());
        assert!(config(&["--tenant", "Tenant_A"]).is_err());
    }

    #[test]
    fn only_loopback_targets_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8081",
            "http://127.1.2.3:80",
            "http://[::1]:8081",
            "http://localhost:8081",
        ] {
            assert!(config(&["--target", ok]).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.5:8081",
            "http://192.168.1.1",
            "http://example.com",
            "http://[::2]:80",
            "http://0.0.0.0:8081",
        ] {
            let err = config(&["--target", bad]).unwrap_err();
            assert!(err.contains("loopback"), "{bad}: {err}");
        }
        assert!(config(&["--target", "http://10.0.0.5:8081", "--allow-remote"]).is_ok());
        assert!(config(&["--target", "https://127.0.0.1"]).is_err());
        assert!(config(&["--target", "not a url"]).is_err());
        // Seeding goes through the same policy.
        let err = config(&[
            "--seed-stock",
            "SKU-001=5",
            "--inventory",
            "http://10.1.1.1:8083",
        ])
        .unwrap_err();
        assert!(err.contains("loopback"), "{err}");
    }

    #[test]
    fn runs_are_always_bounded() {
        let c = config(&["--requests", "100"]).unwrap();
        assert_eq!(c.requests, Some(100));
        assert_eq!(c.duration, MAX_RUN);
        assert!(config(&["--duration", "11m"]).is_err());
        assert!(config(&["--duration", "10m", "--warmup", "1s"]).is_err());
        assert!(config(&["--duration", "0s"]).is_err());
        assert!(config(&["--requests", "0"]).is_err());
        assert!(config(&["--requests", "10000001"]).is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("3 fortnights").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn order_shape_and_ratios_are_checked() {
        let c = config(&[
            "--skus",
            "SKU-001,SKU-002",
            "--quantity",
            "3",
            "--currency",
            "USD",
        ]);
        let c = c.unwrap();
        assert_eq!(c.order.skus, ["SKU-001", "SKU-002"]);
        assert_eq!(c.order.quantity, 3);
        assert!(config(&["--skus", "bad sku"]).is_err());
        assert!(config(&["--quantity", "0"]).is_err());
        assert!(config(&["--unit-price", "0"]).is_err());
        assert!(config(&["--seed-price", "0"]).is_err());
        assert_eq!(c.order.unit_price, None, "no expected price unless asked");
        assert!(config(&["--currency", "EURO"]).is_err());
        assert!(config(&["--decline-ratio", "1.5"]).is_err());
        assert!(config(&["--replay-ratio", "-0.1"]).is_err());
        assert_eq!(
            config(&["--trace-sample-ratio", "0.25"])
                .unwrap()
                .trace_sample_ratio,
            Some(0.25)
        );
    }

    #[test]
    fn seed_stock_needs_an_inventory() {
        let c = config(&[
            "--seed-stock",
            "SKU-001=1000",
            "--seed-stock",
            "SKU-002=5",
            "--inventory",
            "http://127.0.0.1:8083",
            "--inventory",
            "tenant-b=http://127.0.0.1:8093",
        ])
        .unwrap();
        assert_eq!(
            c.seed_stock,
            [("SKU-001".to_owned(), 1000), ("SKU-002".to_owned(), 5)]
        );
        assert_eq!(c.inventories[0].tenant, "tenant-a");
        assert_eq!(c.inventories[1].tenant, "tenant-b");
        assert_eq!(
            c.inventories[1].item_url("SKU-002"),
            "http://127.0.0.1:8093/api/v1/items/SKU-002"
        );
        assert!(config(&["--seed-stock", "SKU-001=5"]).is_err());
        assert!(
            config(&[
                "--seed-stock",
                "SKU-001",
                "--inventory",
                "http://127.0.0.1:1"
            ])
            .is_err()
        );
        assert!(
            config(&[
                "--seed-stock",
                "SKU-001=-1",
                "--inventory",
                "http://127.0.0.1:1"
            ])
            .is_err()
        );
        assert!(config(&["--inventory", "http://127.0.0.1:8083"]).is_err());
        // A plain inventory URL with no target at its position has no tenant.
        assert!(
            config(&[
                "--seed-stock",
                "SKU-001=5",
                "--inventory",
                "http://127.0.0.1:8083",
                "--inventory",
                "http://127.0.0.1:8093",
            ])
            .is_err()
        );
    }
}
