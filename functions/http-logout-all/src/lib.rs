//! `POST /users/auth/logout_all`: parse the request, call the core, map the result.

use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        auth::logout_all(app, &req.token()?).await?;
        Ok(Reply::NoContent)
    })
    .await)
}
