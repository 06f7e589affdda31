//! The outbox dispatcher: delivers the notifications that settling an order queued, to
//! notify-service, until each is acknowledged. notify-service being down never fails an order;
//! its notifications wait here, retried with capped exponential backoff, and are delivered once
//! it is back. Deliveries are idempotent per (order, kind) on the receiving side.

use std::{sync::Arc, time::Duration};

use commerce::contracts::notify::CreateNotification;
use platform::{db::Migrated, http_client::HttpClient, propagation, telemetry::in_span_continuing};
use tokio_util::sync::CancellationToken;

use crate::{
    AppState,
    store::{self, OutboxEntry},
};

pub const NOTIFY_SERVICE: &str = "notify-service";
const BATCH: i64 = 32;
/// How long a claimed entry stays out of other dispatchers' reach while it is being delivered:
/// longer than a batch takes (a failed delivery postpones the rest of its batch at once).
const LEASE: Duration = Duration::from_secs(60);

pub struct DispatcherSettings {
    pub http: HttpClient,
    pub notify_url: url::Url,
    pub poll_interval: Duration,
    pub max_backoff: Duration,
}

/// Runs until shutdown: wakes on a settled order or every poll interval, and delivers what is due.
pub async fn run_dispatcher(
    state: AppState,
    settings: DispatcherSettings,
    migrated: Migrated,
    shutdown: CancellationToken,
) {
    let settings = Arc::new(settings);
    let endpoint = settings
        .notify_url
        .join("api/v1/notifications")
        .unwrap_or_else(|_| settings.notify_url.clone());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = state.outbox_wakeup.notified() => {}
            () = tokio::time::sleep(settings.poll_interval) => {}
        }
        if !migrated.is_done() {
            continue;
        }
        match deliver_due(&state, &settings, &endpoint).await {
            Ok(()) => {}
            Err(error) => tracing::warn!(%error, "outbox pass failed"),
        }
        if let Ok(depth) = store::outbox_depth(&state.pool).await {
            metrics::gauge!("order_outbox_pending").set(depth as f64);
        }
    }
}

/// One pass: claim the due entries (leased, in one statement), deliver them in order outside any
/// transaction, and record each result in a statement of its own. After the first delivery that
/// fails, the rest of the batch is postponed too: notify-service is then most likely down, and
/// hammering it helps nobody.
async fn deliver_due(
    state: &AppState,
    settings: &DispatcherSettings,
    endpoint: &url::Url,
) -> Result<(), sqlx::Error> {
    let pool = &state.pool;
    let entries = store::claim_due_outbox_entries(pool, BATCH, LEASE).await?;
    let mut failed = None::<String>;
    for entry in entries {
        if let Some(error) = &failed {
            let retry_in = backoff(entry.attempts, settings.max_backoff);
            store::mark_failed_attempt(pool, entry.id, retry_in, error).await?;
            continue;
        }
        match deliver(&settings.http, endpoint, &entry).await {
            Ok(()) => {
                store::mark_delivered(pool, entry.id).await?;
                metrics::counter!("order_outbox_deliveries_total", "outcome" => "delivered")
                    .increment(1);
            }
            Err(error) => {
                metrics::counter!("order_outbox_deliveries_total", "outcome" => "retry")
                    .increment(1);
                let retry_in = backoff(entry.attempts, settings.max_backoff);
                tracing::warn!(order_id = %entry.order_id, %error, retry_in_ms = retry_in.as_millis() as u64, "notification not delivered; will retry");
                store::mark_failed_attempt(pool, entry.id, retry_in, &error).await?;
                failed = Some(error);
            }
        }
    }
    Ok(())
}

async fn deliver(
    http: &HttpClient,
    endpoint: &url::Url,
    entry: &OutboxEntry,
) -> Result<(), String> {
    let body = CreateNotification {
        order_id: entry.order_id,
        kind: entry.kind.0,
        message: entry.message.clone(),
    };
    // The delivery continues the trace and the request that settled the order.
    let delivery = in_span_continuing(
        "outbox.deliver",
        Some(entry.order_id),
        propagation::extract_stored(&entry.trace_context),
        http.post_json(
            NOTIFY_SERVICE,
            endpoint.clone(),
            Some(entry.order_id),
            &body,
        ),
    );
    let reply = match propagation::stored_request_id(&entry.trace_context) {
        Some(request_id) => platform::context::continuing_request(request_id, delivery).await,
        None => delivery.await,
    }
    .map_err(|e| e.to_string())?;
    if reply.status.is_success() {
        Ok(())
    } else {
        Err(format!("notify-service answered {}", reply.status))
    }
}

/// 100 ms doubled per earlier attempt, capped at `max`.
fn backoff(attempts: i32, max: Duration) -> Duration {
    let exponent = attempts.clamp(0, 16) as u32;
    Duration::from_millis(100u64.saturating_mul(1 << exponent)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        let max = Duration::from_secs(30);
        assert_eq!(backoff(0, max), Duration::from_millis(100));
        assert_eq!(backoff(3, max), Duration::from_millis(800));
        assert_eq!(backoff(30, max), max);
        assert_eq!(backoff(-1, max), Duration::from_millis(100));
    }
}
