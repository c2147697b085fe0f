//! `PATCH /users/me`: parse the request, call the core, map the result.

use shared::api::UpdateProfileBody;
use shared::domain::DisplayName;
use shared::http::{self, Reply};
use shared::{App, Result, auth, users};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        let me = auth::authenticate(app, &req.token()?).await?;
        let body: UpdateProfileBody = req.json()?;
        let name = DisplayName::parse(&body.display_name)?;
        Reply::ok(&users::rename(app, me, name).await?)
    })
    .await)
}
