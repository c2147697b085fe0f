//! `GET /chat/messages/{other_id}`: parse the request, call the core, map the result.

use shared::chat::{self, HistoryQuery};
use shared::domain::UserId;
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        let me = auth::authenticate(app, &req.token()?).await?;
        let other_id = req
            .path_param("other_id")
            .or_else(|| req.last_path_segment());
        let other = UserId::parse(other_id.unwrap_or_default())?;
        let query =
            HistoryQuery::parse(req.query("limit"), req.query("before"), req.query("order"))?;
        Reply::ok(&chat::history(app, me, other, query).await?)
    })
    .await)
}
