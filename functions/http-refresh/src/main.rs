//! Lambda entry point for `POST /users/auth/refresh`; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run_http(http_refresh::handler).await
}
