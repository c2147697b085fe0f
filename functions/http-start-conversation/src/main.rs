//! Lambda entry point for `POST /chat/conversations`; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run_http(http_start_conversation::handler).await
}
