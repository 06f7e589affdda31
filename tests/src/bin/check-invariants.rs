//! check-invariants: DESIGN.md's invariants (`tests/src/invariants.rs`, the same checks the
//! end-to-end tests run) against one tenant's four databases anywhere, e.g. the local mesh's
//! PostgreSQL pods after a demo. Waits until every order settled, prints what the databases
//! hold, then checks; prints every violation and exits 1 when there is any (or when the orders
//! did not settle, or a database did not answer), 2 on a usage error.
//!
//! check-invariants --orders URL --payments URL --inventory URL --notify URL
//!                  [--stock SKU=N]... [--settle-within SECONDS]

use std::{process::ExitCode, time::Duration};

use ordermesh_e2e::{Databases, check_invariants, wait_until_settled};
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

/// Waits, prints the counts, checks; `Ok` with how many violations it printed.
async fn check(args: Args) -> Result<usize, String> {
    let dbs = Databases {
        orders: pool(&args.orders).await?,
        payments: pool(&args.payments).await?,
        inventory: pool(&args.inventory).await?,
        notify: pool(&args.notify).await?,
    };
    let settle = Duration::from_secs(args.settle_within);
    wait_until_settled(&dbs.orders, settle)
        .await
        .map_err(|left| format!("orders did not settle within {settle:?}: {left}"))?;
    println!("{}", counts(&dbs.orders, "orders").await?);
    println!("{}", counts(&dbs.payments, "payments").await?);
    println!("{}", counts(&dbs.inventory, "reservations").await?);
    let stock: Vec<(&str, i64)> = args.stock.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    let violations = check_invariants(&dbs, &stock)
        .await
        .map_err(|e| format!("a database did not answer: {e}"))?;
    for violation in &violations {
        println!("violation: {violation}");
    }
    Ok(violations.len())
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
    match runtime.block_on(check(args)) {
        Ok(0) => {
            println!(
                "invariants hold: every order settled; CONFIRMED = one capture + one committed reservation at the order's total; FAILED = no net charge or reservation; stock and notifications consistent"
            );
            ExitCode::SUCCESS
        }
        Ok(violations) => {
            eprintln!("check-invariants: {violations} invariant violations");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("check-invariants: {e}");
            ExitCode::FAILURE
        }
    }
}
