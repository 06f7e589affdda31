//! check-invariants: DESIGN.md's invariants (`tests/src/invariants.rs`, the same checks the
//! end-to-end tests run) against one tenant's four databases anywhere, e.g. the local mesh's
//! PostgreSQL pods after a demo. Waits until every order settled, prints what the databases
//! hold, then checks; exits 1 on the first violation.
//!
//! check-invariants --orders URL --payments URL --inventory URL --notify URL
//!                  [--stock SKU=N]... [--settle-within SECONDS]

use std::{process::ExitCode, time::Duration};

use ordermesh_e2e::{Databases, assert_invariants_in, wait_until_settled};
use sqlx::{PgPool, postgres::PgPoolOptions};

#[derive(Default)]
struct Args {
    orders: String,
    payments: String,
    inventory: String,
    notify: String,
    stock: Vec<(String, i64)>,
    settle_within: u64,
}

fn parse_args(argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        settle_within: 60,
        ..Args::default()
    };
    let mut argv = argv.peekable();
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--orders" => args.orders = value,
            "--payments" => args.payments = value,
            "--inventory" => args.inventory = value,
            "--notify" => args.notify = value,
            "--stock" => {
                let (sku, n) = value
                    .split_once('=')
                    .and_then(|(s, n)| Some((s.to_owned(), n.parse().ok()?)))
                    .ok_or_else(|| format!("--stock {value}: want SKU=N"))?;
                args.stock.push((sku, n));
            }
            "--settle-within" => {
                args.settle_within = value.parse().map_err(|_| "--settle-within SECONDS")?
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    for (name, url) in [
        ("--orders", &args.orders),
        ("--payments", &args.payments),
        ("--inventory", &args.inventory),
        ("--notify", &args.notify),
    ] {
        if url.is_empty() {
            return Err(format!("{name} URL is required"));
        }
    }
    Ok(args)
}

async fn pool(url: &str) -> Result<PgPool, String> {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .map_err(|e| format!("{url}: {e}"))
}

/// `status: count` of one of the tables with a status column, as one line.
async fn counts(db: &PgPool, table: &'static str) -> Result<String, String> {
    let sql = match table {
        "orders" => "SELECT status, count(*) FROM orders GROUP BY 1 ORDER BY 1",
        "payments" => "SELECT status, count(*) FROM payments GROUP BY 1 ORDER BY 1",
        _ => "SELECT status, count(*) FROM reservations GROUP BY 1 ORDER BY 1",
    };
    let rows: Vec<(String, i64)> = sqlx::query_as(sql)
        .fetch_all(db)
        .await
        .map_err(|e| format!("{table}: {e}"))?;
    let parts: Vec<String> = rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
    Ok(format!("{table}: {}", parts.join(", ")))
}

async fn check(args: Args) -> Result<(), String> {
    let dbs = Databases {
        orders: pool(&args.orders).await?,
        payments: pool(&args.payments).await?,
        inventory: pool(&args.inventory).await?,
        notify: pool(&args.notify).await?,
    };
    let settle = Duration::from_secs(args.settle_within);
    let orders = dbs.orders.clone();
    tokio::spawn(async move { wait_until_settled(&orders, settle).await })
        .await
        .map_err(|e| format!("orders did not settle: {}", panic_text(e)))?;
    println!("{}", counts(&dbs.orders, "orders").await?);
    println!("{}", counts(&dbs.payments, "payments").await?);
    println!("{}", counts(&dbs.inventory, "reservations").await?);
    let stock = args.stock;
    tokio::spawn(async move {
        let stock: Vec<(&str, i64)> = stock.iter().map(|(s, n)| (s.as_str(), *n)).collect();
        assert_invariants_in(&dbs, &stock).await;
    })
    .await
    .map_err(|e| format!("invariant violated: {}", panic_text(e)))
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "panic".into()),
        Err(e) => e.to_string(),
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("check-invariants: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("check-invariants: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The checks panic on a violation (they are the tests' assertions); keep the output short.
    std::panic::set_hook(Box::new(|_| {}));
    match runtime.block_on(check(args)) {
        Ok(()) => {
            println!(
                "invariants hold: every order settled; CONFIRMED = one capture + one committed reservation at the order's total; FAILED = no net charge or reservation; stock and notifications consistent"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("check-invariants: {e}");
            ExitCode::FAILURE
        }
    }
}
