//! Lambda entry point for the WebSocket API's the `send_message` route (plain-JSON clients); the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run(ws_send_message::handler).await
}
