//! `make test-contracts`: every service's OpenAPI document checked against the service itself by
//! schemathesis. Starts the four real binaries of tenant-a and of tenant-b (the end-to-end
//! harness: free loopback ports, fresh databases, real dependencies, so payment-service pays
//! through its tenant's inventory-service), seeds each tenant's catalog with the SKUs the
//! schemathesis configuration steers orders to, then runs schemathesis against the eight
//! services — every check, every phase (stateful included, along the documents' links), one
//! seed. Each tenant's four runs go one after another, the two tenants side by side; prints one
//! line per run and the whole report of each that failed; exits 1 on any finding. Every process
//! and database it started is gone when it returns, whether the runs passed, failed or it was
//! interrupted (SIGINT, SIGTERM; only a tenant interrupted while its services start may leave
//! databases, `test_…` ones, which `make clean-test-dbs` drops).
//!
//! Usage: contracts --schemathesis PATH --config PATH --logs DIR [--seed N]

use std::{
    path::{Path, PathBuf},
    process::{ExitCode, Stdio},
    time::{Duration, Instant},
};

use clap::Parser;
use ordermesh_e2e::{Cluster, Svc};
use sqlx::{Connection, Executor, PgConnection};

const TENANTS: [&str; 2] = ["tenant-a", "tenant-b"];
/// In this order: inventory-service's own run last, because it rewrites catalog items (a
/// `PUT /api/v1/items/{sku}` with any valid body) that the runs of order-service and
/// payment-service order from.
const RUN_ORDER: [Svc; 4] = [Svc::Order, Svc::Payment, Svc::Notify, Svc::Inventory];
/// Units of each catalog SKU: more than any run can sell.
const STOCK: i64 = 1_000_000_000;
/// One run that has not finished after this has hung: it fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(20 * 60);

#[derive(Debug, Parser)]
#[command(
    name = "contracts",
    about = "Runs schemathesis against every service of two tenants' clusters, each checked against its own OpenAPI document."
)]
struct Args {
    /// The schemathesis executable
    #[arg(long, value_name = "PATH")]
    schemathesis: PathBuf,
    /// schemathesis' configuration (its dictionaries name the catalog to seed)
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
    /// Where each run's report goes
    #[arg(long, value_name = "DIR")]
    logs: PathBuf,
    /// schemathesis' seed
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
}

/// The catalog the configuration's dictionaries steer generated orders to: the SKUs of
/// `[dictionaries.catalog]`, each at the one price of `[dictionaries.catalog-price]`. Read from
/// the configuration so that the SKUs seeded and the SKUs ordered are one list.
#[derive(Debug, PartialEq)]
struct Catalog {
    skus: Vec<String>,
    unit_price: i64,
}

fn catalog(config: &str) -> Result<Catalog, String> {
    let skus: Vec<String> = serde_json::from_value(dictionary(config, "catalog")?)
        .map_err(|e| format!("[dictionaries.catalog]: {e}"))?;
    let prices: Vec<i64> = serde_json::from_value(dictionary(config, "catalog-price")?)
        .map_err(|e| format!("[dictionaries.catalog-price]: {e}"))?;
    match (skus.is_empty(), prices.as_slice()) {
        (false, [unit_price]) => Ok(Catalog {
            skus,
            unit_price: *unit_price,
        }),
        _ => Err("the catalog needs SKUs and exactly one price".into()),
    }
}

/// The `values` of `[dictionaries.<name>]`: a one-line array of strings or integers, where TOML
/// and JSON are spelled alike.
fn dictionary(config: &str, name: &str) -> Result<serde_json::Value, String> {
    let header = format!("[dictionaries.{name}]");
    config
        .lines()
        .skip_while(|line| line.trim() != header)
        .skip(1)
        .take_while(|line| !line.trim_start().starts_with('['))
        .find_map(|line| line.trim().strip_prefix("values"))
        .and_then(|rest| rest.trim_start().strip_prefix('='))
        .ok_or_else(|| format!("no `values = [...]` line under {header}"))
        .and_then(|array| {
            serde_json::from_str(array.trim()).map_err(|e| format!("{header} values: {e}"))
        })
}

/// What one schemathesis run against one service gave.
struct Outcome {
    tenant: &'static str,
    service: &'static str,
    passed: bool,
    elapsed: Duration,
    /// The closing line of schemathesis' report (e.g. "No issues found in 12.3s").
    summary: String,
    log: PathBuf,
}

async fn run_schemathesis(
    args: &Args,
    cluster: &Cluster,
    tenant: &'static str,
    svc: Svc,
) -> Outcome {
    let log = args.logs.join(format!("{tenant}-{}.log", svc.binary()));
    let started = Instant::now();
    let result = schemathesis(args, cluster, tenant, svc, &log).await;
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    let (passed, summary) = match result {
        Ok(status) => (
            status.success(),
            report
                .lines()
                .rev()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("no report")
                .trim_matches(|c: char| c == '=' || c.is_whitespace())
                .to_owned(),
        ),
        Err(error) => (false, error),
    };
    Outcome {
        tenant,
        service: svc.binary(),
        passed,
        elapsed: started.elapsed(),
        summary,
        log,
    }
}

/// Runs schemathesis against `svc`, its report written to `log`; the exit status, or why it
/// did not finish. Its working directory is the configuration's, where the hooks it names are.
async fn schemathesis(
    args: &Args,
    cluster: &Cluster,
    tenant: &str,
    svc: Svc,
    log: &Path,
) -> Result<std::process::ExitStatus, String> {
    let output = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let errors = output.try_clone().map_err(|e| e.to_string())?;
    let config_dir = args
        .config
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let document = cluster.url(svc, platform::openapi::OPENAPI_PATH);
    let mut child = tokio::process::Command::new(&args.schemathesis)
        .arg("--config-file")
        .arg(&args.config)
        .args(["run", document.as_str()])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--seed", &args.seed.to_string()])
        .args(["--header", &format!("x-tenant-id: {tenant}")])
        .arg("--no-color")
        .current_dir(config_dir)
        // Python's and Hypothesis' state stays out of the source tree, and none is carried
        // from one run to the next: hash order fixed, no bytecode beside the hooks, Hypothesis'
        // storage (caches of Unicode tables and constants) in a directory made anew per run.
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("HYPOTHESIS_STORAGE_DIRECTORY", args.logs.join("hypothesis"))
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(errors)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", args.schemathesis.display()))?;
    match tokio::time::timeout(RUN_TIMEOUT, child.wait()).await {
        Ok(status) => status.map_err(|e| e.to_string()),
        Err(_) => Err(format!("did not finish within {} s", RUN_TIMEOUT.as_secs())),
    }
}

/// The databases of the clusters started so far, dropped once they have stopped.
type Databases = std::sync::Mutex<Vec<String>>;

/// One tenant: its services, its catalog, then the four runs one after another. The services
/// stop when it returns (or is dropped); their databases are recorded in `databases`.
async fn test_tenant(
    args: &Args,
    catalog: &Catalog,
    tenant: &'static str,
    databases: &Databases,
) -> Vec<Outcome> {
    let cluster = Cluster::start(tenant).await;
    if let Ok(mut databases) = databases.lock() {
        databases.extend(
            Svc::ALL
                .iter()
                .map(|svc| cluster.database_url(*svc).to_owned()),
        );
    }
    for sku in &catalog.skus {
        cluster.seed_item(sku, STOCK, catalog.unit_price).await;
    }
    let mut outcomes = Vec::new();
    for svc in RUN_ORDER {
        let outcome = run_schemathesis(args, &cluster, tenant, svc).await;
        println!(
            "contracts: {:<8} {:<17} {} in {:>3} s — {}",
            outcome.tenant,
            outcome.service,
            if outcome.passed { "passed" } else { "FAILED" },
            outcome.elapsed.as_secs(),
            outcome.summary
        );
        outcomes.push(outcome);
    }
    outcomes
}

/// Drops the databases the harness created for a cluster that has stopped.
async fn drop_databases(urls: &[String]) {
    let Ok(mut admin) = PgConnection::connect(&testkit::admin_url()).await else {
        eprintln!("contracts: cannot reach PostgreSQL to drop the test databases");
        return;
    };
    for url in urls {
        let Some(name) = url.rsplit('/').next().filter(|n| n.starts_with("test_")) else {
            continue;
        };
        // The name is the harness' own (`test_`, a label, a UUID), so building the statement
        // from it is safe.
        let statement = format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#);
        if let Err(e) = admin.execute(sqlx::AssertSqlSafe(statement)).await {
            eprintln!("contracts: dropping {name}: {e}");
        }
    }
}

async fn run(args: Args, databases: &Databases) -> Result<Vec<Outcome>, String> {
    let config = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("{}: {e}", args.config.display()))?;
    let catalog = catalog(&config)?;
    let hypothesis = args.logs.join("hypothesis");
    if hypothesis.exists() {
        std::fs::remove_dir_all(&hypothesis)
            .map_err(|e| format!("{}: {e}", hypothesis.display()))?;
    }
    std::fs::create_dir_all(&args.logs).map_err(|e| format!("{}: {e}", args.logs.display()))?;
    let (a, b) = tokio::join!(
        test_tenant(&args, &catalog, TENANTS[0], databases),
        test_tenant(&args, &catalog, TENANTS[1], databases),
    );
    Ok(a.into_iter().chain(b).collect())
}

/// Resolves when the process is asked to stop.
async fn stop_requested() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let seed = args.seed;
    let started = Instant::now();
    let databases = Databases::default();
    // The run ends by itself or is dropped when a stop is requested; either way every process it
    // started is killed by then (the harness kills a cluster's services when it is dropped, and
    // schemathesis is killed when its handle is).
    let outcomes = tokio::select! {
        outcomes = run(args, &databases) => Some(outcomes),
        () = stop_requested() => None,
    };
    let databases = databases.into_inner().unwrap_or_default();
    drop_databases(&databases).await;
    let Some(outcomes) = outcomes else {
        eprintln!(
            "contracts: interrupted; every service and schemathesis run it started is stopped"
        );
        return ExitCode::from(130);
    };
    let outcomes = match outcomes {
        Ok(outcomes) => outcomes,
        Err(error) => {
            eprintln!("contracts: {error}");
            return ExitCode::FAILURE;
        }
    };
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.passed).collect();
    for outcome in &failed {
        println!(
            "\n==== {} {}: schemathesis' report ({}) ====",
            outcome.tenant,
            outcome.service,
            outcome.log.display()
        );
        println!(
            "{}",
            std::fs::read_to_string(&outcome.log).unwrap_or_default()
        );
    }
    println!(
        "contracts: {} passed, {} failed (seed {seed}, {} s)",
        outcomes.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_is_read_from_the_dictionaries() {
        let config = r#"
[dictionaries.catalog]
# the SKUs
values = ["A-1", "B-2"]

[dictionaries.catalog-price]
values = [1999]

[parameters]
values = ["not", "this"]
"#;
        assert_eq!(
            catalog(config),
            Ok(Catalog {
                skus: vec!["A-1".into(), "B-2".into()],
                unit_price: 1999
            })
        );
        assert!(catalog("[dictionaries.catalog]\nvalues = [\"A\"]\n").is_err());
        let two_prices = "[dictionaries.catalog]\nvalues = [\"A\"]\n[dictionaries.catalog-price]\nvalues = [1, 2]\n";
        assert!(catalog(two_prices).is_err());
        let no_values = "[dictionaries.catalog]\n[parameters]\nvalues = [\"A\"]\n";
        assert!(dictionary(no_values, "catalog").is_err());
    }

    #[test]
    fn the_checked_in_configuration_has_a_catalog() {
        let config = include_str!("../../contracts/schemathesis.toml");
        let catalog = catalog(config).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            catalog
                .skus
                .iter()
                .all(|sku| commerce::values::Sku::parse(sku).is_ok())
        );
        assert!(catalog.unit_price > 0);
    }
}
