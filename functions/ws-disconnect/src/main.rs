//! Lambda entry point for the WebSocket API's $disconnect; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run(ws_disconnect::handler).await
}
