//! `POST /users/auth/refresh`: parse the request, call the core, map the result.

use shared::api::RefreshBody;
use shared::domain::Token;
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        let body: RefreshBody = req.json()?;
        let token = Token::parse(&body.refresh_token)?;
        Reply::ok(&auth::refresh(app, &token).await?)
    })
    .await)
}
