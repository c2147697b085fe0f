//! `POST /socket.io`: a long-polling session's client packets (an Engine.IO payload); the
//! logic is in `shared::realtime::poll_routes`.

use shared::{App, Result, http};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    shared::realtime::poll_routes::on_post(app, request).await
}
