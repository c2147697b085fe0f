//! `POST /chat/conversations`: parse the request, call the core, map the result.

use shared::api::StartConversationBody;
use shared::domain::Mobile;
use shared::http::{self, Reply};
use shared::{App, Result, auth, conversations};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        let me = auth::authenticate(app, &req.token()?).await?;
        let body: StartConversationBody = req.json()?;
        let mobile = Mobile::parse(&body.mobile)?;
        Reply::ok(&conversations::start(app, me, mobile).await?)
    })
    .await)
}
