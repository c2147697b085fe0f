//! `GET /chat/conversations`: parse the request, call the core, map the result.

use shared::conversations::{self, ListQuery};
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        let me = auth::authenticate(app, &req.token()?).await?;
        let query = ListQuery::parse(req.query("limit"), req.query("before"))?;
        Reply::ok(&conversations::list(app, me, query).await?)
    })
    .await)
}
