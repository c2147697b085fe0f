//! Logging: `tracing` with JSON lines inside Lambda (CloudWatch), readable lines locally.
//! `RUST_LOG` filters (default `info`).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls do nothing (tests start many apps).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if in_lambda {
        builder
            .json()
            .with_current_span(true)
            .without_time()
            .with_target(false)
            .try_init()
    } else {
        builder.compact().try_init()
    };
}
