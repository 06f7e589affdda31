//! payment-service's entry point: everything is in the library so tests can start it in-process.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    platform::startup::run(&payment_service::SERVICE, payment_service::build).await
}
