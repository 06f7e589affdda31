//! loadgen: places orders through order-service's public API (`POST /api/v1/orders`) and
//! reports throughput, latency percentiles (HDR histogram), status codes and order outcomes.
//!
//! `args` validates the command line into a bounded, loopback-only run; `plan` decides what each
//! request sends; `run` seeds stock and drives the closed or open loop; `report` aggregates and
//! prints; `progress` prints a line per second with `--progress`. This file only wires them together. `loadgen --help` lists the options.

mod args;
mod plan;
mod progress;
mod report;
mod run;

use std::{
    process::ExitCode,
    time::{SystemTime, UNIX_EPOCH},
};

use clap::Parser;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x5eed);
    let config = match args::Config::from_args(args::Args::parse(), nonce) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(start(config, nonce)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("loadgen: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn start(config: args::Config, nonce: u64) -> Result<ExitCode, String> {
    if config.allow_remote {
        eprintln!("loadgen: --allow-remote: targets are not restricted to loopback addresses");
    }
    let http = run::http_client(&config)?;
    for line in run::seed_stock(&http, &config).await? {
        eprintln!("loadgen: {line}");
    }
    if config.seed_only {
        return Ok(ExitCode::SUCCESS);
    }

    let stop = CancellationToken::new();
    let on_ctrl_c = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("loadgen: interrupted; finishing the requests in flight");
            on_ctrl_c.cancel();
        }
    });

    let summary = run::run(&config, http, nonce, stop).await?;
    if config.json {
        let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        println!("{json}");
    } else {
        print!("{}", summary.to_text());
    }
    // A run in which nothing answered measured nothing: fail, so scripts notice.
    if summary.requests > 0 && summary.status.is_empty() {
        eprintln!("loadgen: no request got an HTTP answer; is the target running?");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
