//! Lambda entry point for `PATCH /users/me`; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run_http(http_update_me::handler).await
}
