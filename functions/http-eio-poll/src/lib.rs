//! `GET /socket.io`: the Engine.IO long-poll, which waits up to about 25 s for the session's
//! server packets; the logic is in `shared::realtime::poll_routes`.

use shared::{App, Result, http};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    shared::realtime::poll_routes::on_poll(app, request).await
}
