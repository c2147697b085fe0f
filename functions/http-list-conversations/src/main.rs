//! Lambda entry point for `GET /chat/conversations`; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run_http(http_list_conversations::handler).await
}
