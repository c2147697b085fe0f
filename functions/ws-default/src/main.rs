//! Lambda entry point for the WebSocket API's $default (the Engine.IO/Socket.IO framing shim); the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run(ws_default::handler).await
}
