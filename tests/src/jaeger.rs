//! A real Jaeger (all-in-one, built from its Go module by `make jaeger`) for one test: its own
//! process on free loopback ports with in-memory storage, stopped when dropped.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use serde_json::Value;

pub struct Jaeger {
    pub otlp_http: u16,
    pub query: u16,
    child: Child,
    client: reqwest::Client,
}

fn binary() -> PathBuf {
    std::env::var_os("JAEGER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.local/bin/jaeger"))
}

impl Jaeger {
    pub async fn start() -> Jaeger {
        let (otlp_http, otlp_grpc, query, query_grpc, health) = (
            crate::free_port(),
            crate::free_port(),
            crate::free_port(),
            crate::free_port(),
            crate::free_port(),
        );
        let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/jaeger.yaml");
        let child = Command::new(binary())
            .arg("--config")
            .arg(config)
            .env("JAEGER_OTLP_HTTP_PORT", otlp_http.to_string())
            .env("JAEGER_OTLP_GRPC_PORT", otlp_grpc.to_string())
            .env("JAEGER_UI_PORT", query.to_string())
            .env("JAEGER_QUERY_GRPC_PORT", query_grpc.to_string())
            .env("JAEGER_HEALTH_PORT", health.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Jaeger from {:?} ({e}); run `make jaeger`",
                    binary()
                )
            });
        let jaeger = Jaeger {
            otlp_http,
            query,
            child,
            client: reqwest::Client::new(),
        };
        let url = format!("http://127.0.0.1:{query}/api/services");
        crate::eventually(
            "Jaeger answers its query API",
            Duration::from_secs(30),
            || {
                let request = jaeger.client.get(&url).send();
                async move {
                    request
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(drop)
                }
            },
        )
        .await;
        jaeger
    }

    /// Environment that points a service's OTLP exporter at this Jaeger, exporting promptly.
    pub fn exporter_env(&self) -> Vec<(String, String)> {
        vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".into(),
                format!("http://127.0.0.1:{}", self.otlp_http),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ]
    }

    /// The trace with this id, if Jaeger has any span of it.
    pub async fn trace(&self, trace_id: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/api/traces/{trace_id}", self.query);
        let response = self.client.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        body["data"].as_array()?.first().cloned()
    }
}

impl Jaeger {
    /// The traces that have a span `operation` of `service`.
    pub async fn traces_with(&self, service: &str, operation: &str) -> Vec<Value> {
        let mut url = url::Url::parse(&format!("http://127.0.0.1:{}/api/traces", self.query))
            .expect("query URL");
        url.query_pairs_mut()
            .append_pair("service", service)
            .append_pair("operation", operation)
            .append_pair("lookback", "1h")
            .append_pair("limit", "50");
        let request = self.client.get(url);
        let Ok(response) = request.send().await else {
            return Vec::new();
        };
        let body: Value = response.json().await.unwrap_or_default();
        body["data"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
