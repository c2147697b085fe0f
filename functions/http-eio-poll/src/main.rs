//! Lambda entry point for `GET /socket.io`; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run_http(http_eio_poll::handler).await
}
