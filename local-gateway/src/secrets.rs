//! AWS Secrets Manager `GetSecretValue`, as the functions' SDK client calls it at cold start
//! (the AWS JSON 1.1 protocol: `POST /` with `X-Amz-Target:
//! secretsmanager.GetSecretValue` and `{"SecretId"}`; the secret's `SecretString` back, or a
//! 400 `ResourceNotFoundException`). It listens on a loopback port of its own, started
//! before the functions' cold starts, which read it.
//!
//! The secrets are `Options::secrets` (id → secret string), from `GATEWAY_SECRETS_FILE`
//! for `make dev`: a JSON object `{"<secret id>": {"MONGO_URI": "...", "HASH_SECRET": "..."}}`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;

type Secrets = Arc<HashMap<String, String>>;

/// Reads a secrets file: a JSON object of secret id → JSON object of string values.
pub fn read_file(path: &str) -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("GATEWAY_SECRETS_FILE {path}: {e}"))?;
    let all: HashMap<String, HashMap<String, String>> = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("GATEWAY_SECRETS_FILE {path}: {e}"))?;
    Ok(all
        .into_iter()
        .map(|(id, values)| (id, json!(values).to_string()))
        .collect())
}

/// Serves `secrets` on a loopback port; returns its endpoint URL (the functions'
/// `SECRETS_ENDPOINT`) and the server task.
pub async fn serve(
    secrets: HashMap<String, String>,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind((IpAddr::from([127, 0, 0, 1]), 0)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    let app = Router::new()
        .route("/", post(get_secret_value))
        .with_state(Arc::new(secrets));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((format!("http://{addr}"), task))
}

fn answer(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/x-amz-json-1.1")],
        body.to_string(),
    )
        .into_response()
}

fn error(kind: &str, message: &str) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        &json!({ "__type": kind, "message": message }),
    )
}

async fn get_secret_value(
    State(secrets): State<Secrets>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if target != "secretsmanager.GetSecretValue" {
        return error("InvalidRequestException", "only GetSecretValue is emulated");
    }
    let Some(id) = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["SecretId"].as_str().map(str::to_owned))
    else {
        return error("InvalidParameterException", "SecretId is required");
    };
    // An ARN or a name: the name is what follows `secret:` in an ARN.
    let name = id.rsplit_once(":secret:").map_or(id.as_str(), |(_, n)| n);
    match secrets.get(&id).or_else(|| secrets.get(name)) {
        Some(value) => {
            tracing::info!(secret = %name, "GetSecretValue");
            answer(
                StatusCode::OK,
                &json!({
                    "ARN": format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}"),
                    "Name": name,
                    "SecretString": value,
                    "VersionId": "local",
                    "VersionStages": ["AWSCURRENT"],
                    "CreatedDate": 0,
                }),
            )
        }
        None => error(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        ),
    }
}
