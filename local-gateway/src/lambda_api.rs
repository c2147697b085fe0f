//! The Lambda `Invoke` API (`POST /2015-03-31/functions/{name}/invocations`) that the
//! functions' `aws-sdk-lambda` client calls: `Event` invocations answer 202 at once and run
//! in the background, `RequestResponse` ones return the function's result. Like Lambda, an
//! asynchronous invocation that fails is retried twice, a minute apart here shortened to a
//! second.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Shared;

fn aws_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    let mut r = (
        status,
        json!({ "Type": "User", "message": message }).to_string(),
    )
        .into_response();
    r.headers_mut().insert(
        HeaderName::from_static("x-amzn-errortype"),
        HeaderValue::from_static(kind),
    );
    r
}

/// `name`, `name:qualifier` or an ARN `arn:aws:lambda:region:account:function:name[:qualifier]`.
fn function_name(raw: &str) -> &str {
    let tail = raw.split_once(":function:").map_or(raw, |(_, t)| t);
    tail.split(':').next().unwrap_or(tail)
}

pub(crate) async fn invoke(
    State(shared): State<Shared>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared.api_latency().await;
    let name = function_name(&name);
    let Some(target) = shared
        .invocables
        .iter()
        .find(|f| f.function == name)
        .copied()
    else {
        return aws_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {name}"),
        );
    };
    let payload: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                return aws_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequestContentException",
                    &format!("Could not parse request body into json: {e}"),
                );
            }
        }
    };
    let kind = headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse");
    match kind {
        "Event" => {
            tokio::spawn(async move {
                for attempt in 0..3 {
                    // Each attempt may land on another instance, as Lambda's retries do.
                    let app = shared.instance();
                    let payload = payload.clone();
                    let result =
                        tokio::spawn(async move { (target.handler)(app, payload).await }).await;
                    match result {
                        Ok(Ok(_)) => return,
                        Ok(Err(e)) => {
                            tracing::warn!(function = target.function, attempt, error = %e, "async invocation failed")
                        }
                        Err(e) => {
                            tracing::error!(function = target.function, attempt, error = %e, "async invocation panicked")
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
            StatusCode::ACCEPTED.into_response()
        }
        "DryRun" => StatusCode::NO_CONTENT.into_response(),
        _ => match tokio::spawn({
            let app = shared.instance();
            async move { (target.handler)(app, payload).await }
        })
        .await
        {
            Ok(Ok(v)) => (StatusCode::OK, v.to_string()).into_response(),
            Ok(Err(e)) => {
                let mut r = (
                    StatusCode::OK,
                    json!({ "errorMessage": e, "errorType": "Error" }).to_string(),
                )
                    .into_response();
                r.headers_mut().insert(
                    HeaderName::from_static("x-amz-function-error"),
                    HeaderValue::from_static("Unhandled"),
                );
                r
            }
            Err(_) => {
                let mut r = (
                    StatusCode::OK,
                    json!({ "errorMessage": "panicked", "errorType": "Runtime.ExitError" })
                        .to_string(),
                )
                    .into_response();
                r.headers_mut().insert(
                    HeaderName::from_static("x-amz-function-error"),
                    HeaderValue::from_static("Unhandled"),
                );
                r
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::function_name;

    #[test]
    fn names_and_arns() {
        assert_eq!(function_name("scheduler"), "scheduler");
        assert_eq!(function_name("scheduler:live"), "scheduler");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:scheduler:3"),
            "scheduler"
        );
    }
}
