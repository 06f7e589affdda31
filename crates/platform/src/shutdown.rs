//! Graceful shutdown: SIGTERM or Ctrl-C cancels the process's shutdown token; the server then
//! stops accepting, drains in-flight requests, and background tasks finish their current step.

use tokio_util::sync::CancellationToken;

/// Completes when the process is asked to stop (SIGTERM, or SIGINT from a terminal).
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// Cancels `token` when a stop signal arrives.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        signal().await;
        tracing::info!("stop signal received: draining");
        token.cancel();
    });
}
