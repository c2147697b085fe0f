//! Logging: `tracing` with JSON lines inside Lambda (CloudWatch), readable lines locally.
//! `RUST_LOG` filters by target and level (`info`, `chat_shared=debug,warn`; default `info`).
//! Its directives are `tracing_subscriber::filter::Targets`: no per-span or regex matching,
//! which keeps a regex engine out of every bootstrap.

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// The filter `RUST_LOG` asks for; `info` when it is unset, and `info` with a warning line on
/// stderr when it does not parse (a bad log setting must not stop a function).
fn filter(rust_log: Option<&str>) -> Targets {
    let default = || Targets::new().with_default(LevelFilter::INFO);
    match rust_log.map(str::trim) {
        None | Some("") => default(),
        Some(s) => Targets::from_str(s).unwrap_or_else(|e| {
            eprintln!("RUST_LOG={s:?} is not a list of target=level directives ({e}); using info");
            default()
        }),
    }
}

/// Installs the global subscriber once; later calls do nothing (tests start many apps).
pub fn init() {
    let filter = filter(std::env::var("RUST_LOG").ok().as_deref());
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = if in_lambda {
        let layer = layer
            .json()
            .with_current_span(true)
            .without_time()
            .with_target(false);
        tracing_subscriber::registry()
            .with(layer.with_filter(filter))
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(layer.compact().with_filter(filter))
            .try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn unset_or_bad_rust_log_means_info() {
        for setting in [None, Some(""), Some("chat_shared=loud")] {
            let f = filter(setting);
            assert!(f.would_enable("anything", &Level::INFO), "{setting:?}");
            assert!(!f.would_enable("anything", &Level::DEBUG), "{setting:?}");
        }
    }

    #[test]
    fn rust_log_filters_by_target_and_level() {
        let f = filter(Some("chat_shared=debug,warn"));
        assert!(f.would_enable("chat_shared::service", &Level::DEBUG));
        assert!(!f.would_enable("mongodb::cmap", &Level::INFO));
        assert!(f.would_enable("mongodb::cmap", &Level::WARN));
    }
}
