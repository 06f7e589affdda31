//! check-invariants: DESIGN.md's invariants (`tests/src/invariants.rs`, the same checks the
//! end-to-end tests run) against one tenant's four databases anywhere, e.g. the local mesh's
//! PostgreSQL pods after a demo. Waits until every order settled, prints what the databases
//! hold, then checks; prints every violation and exits 1 when there is any (or when the orders
//! did not settle, or a database did not answer), 2 on a usage error.
//!
//! check-invariants --orders URL --payments URL --inventory URL --notify URL
//!                  [--stock SKU=N]... [--settle-within SECONDS]

use std::{process::ExitCode, time::Duration};

use clap::Parser;
use ordermesh_e2e::{Databases, check_invariants, wait_until_settled};
use sqlx::{PgPool, postgres::PgPoolOptions};

#[derive(Debug, Parser)]
#[command(
    name = "check-invariants",
    about = "Checks DESIGN.md's invariants in SQL on one tenant's four databases, once every order settled."
)]
struct Args {
    /// order-service's database
    #[arg(long, value_name = "URL")]
    orders: String,
    /// payment-service's database
    #[arg(long, value_name = "URL")]
    payments: String,
    /// inventory-service's database
    #[arg(long, value_name = "URL")]
    inventory: String,
    /// notify-service's database
    #[arg(long, value_name = "URL")]
    notify: String,
    /// What SKU was seeded with (N units), for the stock invariants; repeat for each SKU
    #[arg(long, value_name = "SKU=N", value_parser = parse_stock)]
    stock: Vec<(String, i64)>,
    /// How long to wait for every order to settle and every notification to be delivered
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    settle_within: u64,
}

/// `SKU=N` → `(SKU, N)`.
fn parse_stock(value: &str) -> Result<(String, i64), String> {
    value
        .split_once('=')
        .and_then(|(sku, n)| Some((sku.to_owned(), n.parse().ok()?)))
        .ok_or_else(|| format!("{value}: want SKU=N"))
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
    let args = Args::parse();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line tools/internal/demo/invariants.go builds.
    #[test]
    fn the_demos_command_line_parses() {
        let args = Args::try_parse_from([
            "check-invariants",
            "--orders",
            "postgres://o",
            "--inventory",
            "postgres://i",
            "--notify",
            "postgres://n",
            "--payments",
            "postgres://p",
            "--stock",
            "SKU-1=5",
            "--stock",
            "SKU-2=0",
            "--settle-within",
            "90",
        ])
        .unwrap();
        assert_eq!(args.orders, "postgres://o");
        assert_eq!(args.payments, "postgres://p");
        assert_eq!(args.stock, [("SKU-1".into(), 5), ("SKU-2".into(), 0)]);
        assert_eq!(args.settle_within, 90);
    }

    #[test]
    fn every_database_is_required_and_stock_is_sku_equals_n() {
        assert!(Args::try_parse_from(["check-invariants", "--orders", "o"]).is_err());
        assert_eq!(parse_stock("A=x"), Err("A=x: want SKU=N".into()));
        let defaults = Args::try_parse_from([
            "check-invariants",
            "--orders=o",
            "--payments=p",
            "--inventory=i",
            "--notify=n",
        ])
        .unwrap();
        assert_eq!(defaults.settle_within, 60);
        assert!(defaults.stock.is_empty());
    }
}
