//! What every ordermesh service shares, and nothing about orders.
//!
//! A service crate supplies its routes, domain rules and SQL; this crate supplies the rest, the
//! same way for all four: [`configuration`] from the environment, [`problem`] (RFC 9457 errors and
//! the JSON extractor), strict [`headers`], [`tenancy`] with [`xfcc`] parsing, the per-route
//! caller check of [`callers`], [`health`], [`shutdown`], the pooled [`http_client`] that
//! carries the headers contract, [`db`] (pool and migrations), [`telemetry`] (propagation itself,
//! W3C + B3, is the `trace-context` crate's), [`metrics`], the bounded HTTP [`server`], the
//! [`openapi`] document, the per-request middleware of [`observe`] (server span, request context,
//! deadline, access log, request metrics), and [`startup`], which assembles them into a running
//! service.

pub mod callers;
pub mod configuration;
pub mod context;
pub mod db;
pub mod extract;
pub mod headers;
pub mod health;
pub mod http_client;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod problem;
pub mod server;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
pub mod tenancy;
pub mod xfcc;

pub use extract::{Path, Query};
pub use problem::{Json, Problem};
