//! Lambda entry point for the WebSocket API's the `typing` route (plain-JSON clients); the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run(ws_typing::handler).await
}
