//! Configuration every service shares, read from the environment once at start-up.
//!
//! Each service adds its own settings (peer URLs, intervals) with the same helpers, so that every
//! variable is validated before the process binds a port and a mistake is reported as one clear
//! line naming the variable, the value and what was expected.

use std::{fmt, net::SocketAddr, str::FromStr, time::Duration};

use crate::{
    callers::{DEFAULT_TRUST_DOMAIN, PeerIdentitySettings},
    http_client::Peer,
    server::ServerLimits,
    tenancy::TenantId,
    xfcc,
};

/// A configuration value that is missing or does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is required but not set ({hint})")]
    Missing { name: String, hint: &'static str },
    #[error("{name}={value:?} is invalid: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

/// How log lines are written: JSON lines for machines, or a readable format for a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "pretty" | "text" => Ok(Self::Pretty),
            other => Err(format!("expected `json` or `pretty`, got `{other}`")),
        }
    }
}

/// What becomes of a request's work when its caller goes away before the answer (the client or
/// the sidecar closed the connection, or a gateway gave up on the stream): `ON_CALLER_GONE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallerGone {
    /// Drop the handler where it stands (hyper's default): open statements and transactions are
    /// rolled back when sqlx flushes their connection, a saga cut mid-way is left to the
    /// reconciler.
    Abort,
    /// Run the handler on to its answer, still bounded by `REQUEST_TIMEOUT_MS`; the answer is
    /// dropped, a repeat with the same Idempotency-Key finds it. The default: measured against
    /// `Abort` with callers giving up after 200 ms, it confirmed a third more orders for a
    /// fifth less CPU and database work each, and left no order for the reconciler (README,
    /// "Performance").
    #[default]
    Finish,
}

impl FromStr for CallerGone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "abort" => Ok(Self::Abort),
            "finish" => Ok(Self::Finish),
            other => Err(format!("expected `abort` or `finish`, got `{other}`")),
        }
    }
}

/// Where the service's PostgreSQL database is and how many connections it may hold.
#[derive(Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl fmt::Debug for DatabaseSettings {
    // The URL carries the password: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &"<redacted>")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// Settings shared by all four services.
#[derive(Debug, Clone)]
pub struct CommonSettings {
    /// The one tenant this process serves.
    pub tenant: TenantId,
    pub listen_addr: SocketAddr,
    pub database: DatabaseSettings,
    /// Budget for one outgoing call (connect + response), always within the caller's deadline.
    pub upstream_timeout: Duration,
    /// Deadline for handling one incoming request.
    pub request_timeout: Duration,
    /// What becomes of a request's work when its caller goes away (`ON_CALLER_GONE`).
    pub on_caller_gone: CallerGone,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Namespaces outside the tenant whose mesh identity may call this service (the ingress
    /// gateway's `istio-system` for order-service).
    pub trusted_peer_namespaces: Vec<String>,
    /// How each route's caller is checked (`REQUIRE_PEER_IDENTITY`, `MESH_TRUST_DOMAIN`).
    pub peer_identity: PeerIdentitySettings,
    /// `None` picks JSON unless standard error is a terminal.
    pub log_format: Option<LogFormat>,
    /// Connection limits of the HTTP server (`HTTP_*`).
    pub server: ServerLimits,
    /// Which build of the service this is (`SERVICE_VERSION`, e.g. `stable` or `canary`;
    /// default `dev`): answered in `x-service-version`, on every server span and as
    /// `service_info{version}`. At most 32 of `[A-Za-z0-9._-]` (a bounded metric label).
    pub service_version: String,
}

impl CommonSettings {
    /// Reads the shared settings; `LISTEN_ADDR` defaults to `0.0.0.0:8080`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let tenant = required("TENANT_ID", "the tenant this process serves, e.g. tenant-a")?;
        let tenant = TenantId::parse(&tenant).map_err(|reason| ConfigError::Invalid {
            name: "TENANT_ID".into(),
            value: tenant,
            reason,
        })?;
        Ok(Self {
            tenant,
            listen_addr: parsed_or("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)))?,
            database: DatabaseSettings {
                url: required(
                    "DATABASE_URL",
                    "postgres://user:password@host:5432/database",
                )?,
                max_connections: parsed_or("DATABASE_MAX_CONNECTIONS", 10u32)?,
                acquire_timeout: millis_or("DATABASE_ACQUIRE_TIMEOUT_MS", 2_000)?,
            },
            upstream_timeout: millis_or("UPSTREAM_TIMEOUT_MS", 2_000)?,
            request_timeout: millis_or("REQUEST_TIMEOUT_MS", 10_000)?,
            on_caller_gone: parsed_or("ON_CALLER_GONE", CallerGone::default())?,
            body_limit_bytes: parsed_or("BODY_LIMIT_BYTES", 64 * 1024usize)?,
            service_version: service_version()?,
            trusted_peer_namespaces: optional("TRUSTED_PEER_NAMESPACES")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            peer_identity: peer_identity()?,
            log_format: optional("LOG_FORMAT")
                .map(|v| {
                    v.parse().map_err(|reason| ConfigError::Invalid {
                        name: "LOG_FORMAT".into(),
                        value: v,
                        reason,
                    })
                })
                .transpose()?,
            server: server_limits()?,
        })
    }
}

/// How strictly callers are checked: `REQUIRE_PEER_IDENTITY` (`true` or `false`, default
/// `false`) and `MESH_TRUST_DOMAIN` (default [`DEFAULT_TRUST_DOMAIN`]).
fn peer_identity() -> Result<PeerIdentitySettings, ConfigError> {
    let trust_domain =
        optional("MESH_TRUST_DOMAIN").unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.to_owned());
    if !xfcc::is_trust_domain(&trust_domain) {
        return Err(ConfigError::Invalid {
            name: "MESH_TRUST_DOMAIN".into(),
            value: trust_domain,
            reason: "a trust domain: 1 to 255 of a-z 0-9 . _ -".into(),
        });
    }
    Ok(PeerIdentitySettings {
        require: parsed_or("REQUIRE_PEER_IDENTITY", false)?,
        trust_domain,
    })
}

/// The server's connection limits from `HTTP_*`; each unset variable keeps its default.
fn server_limits() -> Result<ServerLimits, ConfigError> {
    let d = ServerLimits::default();
    let positive = |name: &str, value: usize| {
        if value == 0 {
            Err(ConfigError::Invalid {
                name: name.into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            })
        } else {
            Ok(value)
        }
    };
    Ok(ServerLimits {
        header_read_timeout: millis_or(
            "HTTP_HEADER_READ_TIMEOUT_MS",
            d.header_read_timeout.as_millis() as u64,
        )?,
        idle_timeout: millis_or("HTTP_IDLE_TIMEOUT_MS", d.idle_timeout.as_millis() as u64)?,
        max_connections: positive(
            "HTTP_MAX_CONNECTIONS",
            parsed_or("HTTP_MAX_CONNECTIONS", d.max_connections)?,
        )?,
        connection_wait: millis_or(
            "HTTP_CONNECTION_WAIT_MS",
            d.connection_wait.as_millis() as u64,
        )?,
        max_header_bytes: positive(
            "HTTP_MAX_HEADER_BYTES",
            parsed_or("HTTP_MAX_HEADER_BYTES", d.max_header_bytes)?,
        )?,
        h2_max_concurrent_streams: positive(
            "HTTP2_MAX_CONCURRENT_STREAMS",
            parsed_or(
                "HTTP2_MAX_CONCURRENT_STREAMS",
                d.h2_max_concurrent_streams as usize,
            )?,
        )?
        .try_into()
        .unwrap_or(u32::MAX),
        listen_backlog: positive(
            "HTTP_LISTEN_BACKLOG",
            parsed_or("HTTP_LISTEN_BACKLOG", d.listen_backlog as usize)?,
        )?
        .try_into()
        .unwrap_or(u32::MAX),
        refusal_linger: d.refusal_linger,
    })
}

/// The value of `name`, treating an empty value as unset.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The value of `name`, or an error that says what it should hold.
pub fn required(name: &str, hint: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or_else(|| ConfigError::Missing {
        name: name.into(),
        hint,
    })
}

/// `name` parsed as `T`, or `default` when unset.
pub fn parsed_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name: name.into(),
                reason: e.to_string(),
                value,
            }),
    }
}

/// A duration given in whole milliseconds; zero is refused because every wait here must end.
pub fn millis_or(name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
    let ms = parsed_or(name, default_ms)?;
    if ms == 0 {
        return Err(ConfigError::Invalid {
            name: name.into(),
            value: "0".into(),
            reason: "must be at least 1 millisecond".into(),
        });
    }
    Ok(Duration::from_millis(ms))
}

/// A peer service's base URL (an absolute `http://` or `https://` URL), as the [`Peer`] whose
/// calls go under `service`'s name.
pub fn required_peer(
    name: &str,
    service: &'static str,
    hint: &'static str,
) -> Result<Peer, ConfigError> {
    let value = required(name, hint)?;
    let invalid = |reason: String| ConfigError::Invalid {
        name: name.into(),
        value: value.clone(),
        reason,
    };
    let url = url::Url::parse(&value).map_err(|e| invalid(e.to_string()))?;
    Peer::new(service, url).map_err(invalid)
}

/// `SERVICE_VERSION`, checked: it becomes a header value and a metric label.
fn service_version() -> Result<String, ConfigError> {
    let value = optional("SERVICE_VERSION").unwrap_or_else(|| "dev".to_owned());
    let valid = !value.is_empty()
        && value.len() <= 32
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name: "SERVICE_VERSION".into(),
            value,
            reason: "1 to 32 of A-Z a-z 0-9 . _ -".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_parses_known_values_only() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("pretty".parse::<LogFormat>(), Ok(LogFormat::Pretty));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn database_settings_never_print_the_url() {
        let db = DatabaseSettings {
            url: "postgres://u:secret@h/db".into(),
            max_connections: 1,
            acquire_timeout: Duration::from_secs(1),
        };
        assert!(!format!("{db:?}").contains("secret"));
    }

    #[test]
    fn errors_name_the_variable() {
        let e = ConfigError::Missing {
            name: "DATABASE_URL".into(),
            hint: "postgres://…",
        };
        assert!(e.to_string().starts_with("DATABASE_URL is required"));
    }
}
