//! The entry point every function's `main` calls: logging, the cold-start [`App`], and the
//! Lambda runtime loop around the function's handler.

use std::future::Future;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde::{Serialize, de::DeserializeOwned};

use crate::app::App;
use crate::error::Error;

impl From<Error> for Diagnostic {
    fn from(e: Error) -> Self {
        Diagnostic {
            error_type: e.public().code.to_owned(),
            error_message: e.to_string(),
        }
    }
}

/// Builds the [`App`] once and serves `handler` until the runtime stops.
pub async fn run<E, R, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(&'static App, E) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Error>> + Send,
{
    crate::telemetry::init();
    let app = match App::from_env().await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = ?e, "cold start failed");
            return Err(e.into());
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<E>| async move {
        // Boxed: handler futures are deep, and the runtime's own layers nest them further.
        Box::pin(handler(app, event.payload)).await
    }))
    .await
}
