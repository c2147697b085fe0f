//! Lambda entry point for the WebSocket API's $connect; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run(ws_connect::handler).await
}
