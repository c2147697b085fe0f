//! Lambda entry point for `POST /users/auth/request_otp`; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run_http(http_request_otp::handler).await
}
