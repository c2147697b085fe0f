//! `GET /users/me`: parse the request, call the core, map the result.

use shared::http::{self, Reply};
use shared::{App, Result, auth, users};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        let me = auth::authenticate(app, &req.token()?).await?;
        Reply::ok(&users::me(app, me).await?)
    })
    .await)
}
