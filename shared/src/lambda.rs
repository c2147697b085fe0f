//! The entry points every function's `main` calls: logging, the cold-start [`App`], and the
//! Lambda runtime loop around the function's handler. REST functions go through
//! `lambda_http` ([`run_http`]); [`invoke_http`] is the same trip for an event that arrives
//! in-process (the local gateway, handler tests).

use std::future::Future;

use lambda_http::request::LambdaRequest;
use lambda_runtime::{Context, Diagnostic, LambdaEvent, Service, service_fn};
use serde::{Serialize, de::DeserializeOwned};

use crate::app::App;
use crate::error::Error;
use crate::http::{Request, Response};

impl From<Error> for Diagnostic {
    fn from(e: Error) -> Self {
        Diagnostic {
            error_type: e.public().code.to_owned(),
            error_message: e.to_string(),
        }
    }
}

async fn cold_start() -> Result<&'static App, lambda_runtime::Error> {
    crate::telemetry::init();
    match App::from_env().await {
        Ok(app) => Ok(app),
        Err(e) => {
            tracing::error!(error = ?e, "cold start failed");
            Err(e.into())
        }
    }
}

/// Builds the [`App`] once and serves `handler` (a WebSocket route or the scheduler: typed
/// events in, typed responses out) until the runtime stops.
pub async fn run<E, R, F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    E: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(&'static App, E) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<R, Error>> + Send,
{
    let app = cold_start().await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<E>| async move {
        // Boxed: handler futures are deep, and the runtime's own layers nest them further.
        Box::pin(handler(app, event.payload)).await
    }))
    .await
}

/// Builds the [`App`] once and serves a REST `handler` through `lambda_http`.
pub async fn run_http<F, Fut>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(&'static App, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, Error>> + Send,
{
    let app = cold_start().await?;
    lambda_http::run(service_fn(move |req: Request| async move {
        Box::pin(handler(app, req)).await
    }))
    .await
}

/// One REST invocation as the Lambda runtime makes it: the event JSON API Gateway sends is
/// read by `lambda_http`, the handler runs, and its response comes back as the JSON the
/// runtime would post to API Gateway.
pub async fn invoke_http<F, Fut>(
    app: &'static App,
    handler: F,
    event: serde_json::Value,
    context: Context,
) -> Result<serde_json::Value, lambda_runtime::Error>
where
    F: Fn(&'static App, Request) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, Error>> + Send,
{
    let payload: LambdaRequest = serde_json::from_value(event)?;
    let mut adapter = lambda_http::Adapter::from(service_fn(move |req: Request| async move {
        Box::pin(handler(app, req)).await
    }));
    let response = adapter.call(LambdaEvent::new(payload, context)).await?;
    Ok(serde_json::to_value(response)?)
}
