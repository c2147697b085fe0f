//! Lambda entry point for `POST /users/auth/logout_all`; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run_http(http_logout_all::handler).await
}
