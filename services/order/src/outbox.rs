//! The outbox dispatcher: delivers the notifications that settling an order queued, to
//! notify-service, until each is acknowledged. notify-service being down never fails an order;
//! its notifications wait here, retried with capped exponential backoff, and are delivered once
//! it is back. Deliveries are idempotent per (order, kind) on the receiving side.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use commerce::contracts::notify::CreateNotification;
use futures::StreamExt;
use platform::{
    db::{Database, Migrated},
    http_client::{HttpClient, Peer},
    telemetry::in_span_continuing,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{self, OutboxEntry};

/// Deliveries by outcome (`delivered`, `retry`).
const DELIVERIES: &str = "order_outbox_deliveries_total";
const BATCH: i64 = 64;
/// Deliveries in flight at once. One at a time, a dispatcher delivers a few hundred notifications
/// a second, fewer than the orders a loaded service settles: its backlog grew without bound.
const IN_FLIGHT: usize = 16;
/// How long a claimed entry stays out of other dispatchers' reach while it is being delivered:
/// longer than a batch takes (a failed delivery postpones the rest of its batch at once).
const LEASE: Duration = Duration::from_secs(60);

pub struct DispatcherSettings {
    pub http: HttpClient,
    pub notify: Peer,
    pub poll_interval: Duration,
    pub max_backoff: Duration,
}

/// Runs until shutdown: wakes when the saga settles an order (`wakeup`) or every poll interval,
/// and delivers what is due.
pub async fn run_dispatcher(
    db: Database,
    wakeup: Arc<Notify>,
    settings: DispatcherSettings,
    migrated: Migrated,
    shutdown: CancellationToken,
) {
    let mut gauged: Option<Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wakeup.notified() => {}
            () = tokio::time::sleep(settings.poll_interval) => {}
        }
        if !migrated.is_done() {
            continue;
        }
        // A full batch means more is due: go on without waiting for the next wake-up.
        loop {
            match deliver_due(&db, &settings).await {
                Ok(claimed) if claimed == BATCH as usize && !shutdown.is_cancelled() => {}
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "outbox pass failed");
                    break;
                }
            }
        }
        // Counting the backlog is a statement of its own: under load, passes follow each other
        // much faster than anyone scrapes the gauge, so it is refreshed once per poll interval.
        if gauged.is_none_or(|at| at.elapsed() >= settings.poll_interval) {
            gauged = Some(Instant::now());
            if let Ok(depth) = store::outbox_depth(&db).await {
                metrics::gauge!("order_outbox_pending").set(depth as f64);
            }
        }
    }
}

/// One pass: claim the due entries (leased, in one statement), deliver them outside any
/// transaction — up to [`IN_FLIGHT`] orders at once, each order's own notifications in the order
/// they were queued — then record every delivery in one statement. After the first delivery that
/// fails, the deliveries not yet started are postponed too: notify-service is then most likely
/// down, and hammering it helps nobody. Returns how many entries it claimed.
async fn deliver_due(db: &Database, settings: &DispatcherSettings) -> Result<usize, sqlx::Error> {
    let entries = store::claim_due_outbox_entries(db, BATCH, LEASE).await?;
    let claimed = entries.len();
    let failing = AtomicBool::new(false);
    let outcomes: Vec<Vec<(OutboxEntry, Result<(), String>)>> =
        futures::stream::iter(by_order(entries))
            .map(|entries| deliver_in_order(settings, entries, &failing))
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
    let mut delivered = Vec::with_capacity(claimed);
    for (entry, outcome) in outcomes.into_iter().flatten() {
        match outcome {
            Ok(()) => delivered.push(entry.id),
            Err(error) => {
                let retry_in = backoff(entry.attempts, settings.max_backoff);
                store::mark_failed_attempt(db, entry.id, retry_in, &error).await?;
            }
        }
    }
    store::mark_delivered(db, &delivered).await?;
    metrics::counter!(DELIVERIES, "outcome" => "delivered").increment(delivered.len() as u64);
    Ok(claimed)
}

/// The claimed entries grouped per order, each group oldest first (the claim returns them by id).
fn by_order(entries: Vec<OutboxEntry>) -> Vec<Vec<OutboxEntry>> {
    let mut groups: Vec<Vec<OutboxEntry>> = Vec::new();
    for entry in entries {
        match groups.iter_mut().find(|g| g[0].order_id == entry.order_id) {
            Some(group) => group.push(entry),
            None => groups.push(vec![entry]),
        }
    }
    groups
}

/// Delivers one order's notifications one after the other; once a delivery of this pass has
/// failed, the rest are not tried (their outcome is that failure).
async fn deliver_in_order(
    settings: &DispatcherSettings,
    entries: Vec<OutboxEntry>,
    failing: &AtomicBool,
) -> Vec<(OutboxEntry, Result<(), String>)> {
    let mut outcomes = Vec::with_capacity(entries.len());
    for entry in entries {
        let outcome = if failing.load(Ordering::Relaxed) {
            Err("postponed: an earlier delivery of this pass failed".to_owned())
        } else {
            let outcome = deliver(&settings.http, &settings.notify, &entry).await;
            if let Err(error) = &outcome {
                failing.store(true, Ordering::Relaxed);
                metrics::counter!(DELIVERIES, "outcome" => "retry").increment(1);
                tracing::warn!(order_id = %entry.order_id, %error, "notification not delivered; will retry");
            }
            outcome
        };
        outcomes.push((entry, outcome));
    }
    outcomes
}

async fn deliver(http: &HttpClient, notify: &Peer, entry: &OutboxEntry) -> Result<(), String> {
    let body = CreateNotification {
        order_id: entry.order_id,
        kind: entry.kind.0,
        message: entry.message.clone(),
    };
    // The delivery continues the trace and the request that settled the order.
    let delivery = in_span_continuing(
        "outbox.deliver",
        Some(entry.order_id),
        trace_context::extract_stored(&entry.trace_context),
        http.post_json(notify, &["notifications"], Some(entry.order_id), &body),
    );
    let reply = match trace_context::stored_request_id(&entry.trace_context) {
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

    fn entry(id: i64, order_id: uuid::Uuid) -> OutboxEntry {
        OutboxEntry {
            id,
            order_id,
            kind: platform::db::Text(commerce::contracts::notify::NotificationKind::OrderConfirmed),
            message: String::new(),
            attempts: 0,
            trace_context: Default::default(),
        }
    }

    #[test]
    fn a_pass_keeps_each_orders_notifications_in_queue_order() {
        let (a, b, c) = (
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4(),
        );
        let claimed = vec![
            entry(1, a),
            entry(2, b),
            entry(3, a),
            entry(4, c),
            entry(5, a),
            entry(6, b),
        ];
        let groups: Vec<Vec<i64>> = by_order(claimed)
            .iter()
            .map(|group| group.iter().map(|e| e.id).collect())
            .collect();
        assert_eq!(groups, vec![vec![1, 3, 5], vec![2, 6], vec![4]]);
    }

    #[test]
    fn backoff_doubles_then_caps() {
        let max = Duration::from_secs(30);
        assert_eq!(backoff(0, max), Duration::from_millis(100));
        assert_eq!(backoff(3, max), Duration::from_millis(800));
        assert_eq!(backoff(30, max), max);
        assert_eq!(backoff(-1, max), Duration::from_millis(100));
    }
}
