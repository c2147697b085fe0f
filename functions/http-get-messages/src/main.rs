//! Lambda entry point for `GET /chat/messages/{other_id}`; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run_http(http_get_messages::handler).await
}
