//! Lambda entry point for `POST /socket.io`; the handler is in `lib.rs`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run_http(http_eio_post::handler).await
}
