//! `GET /chat/conversations`: parse the request, call the core, map the result.

use shared::conversations::{self, ListQuery};
use shared::error::InputError;
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(app: &'static App, request: http::Request) -> Result<http::Response> {
    Ok(http::handle(request, async |req| {
        let me = auth::authenticate(app, &req.token()?).await?;
        let query = ListQuery {
            limit: match req.query("limit") {
                None => conversations::DEFAULT_LIMIT,
                Some(raw) => raw
                    .parse()
                    .ok()
                    .filter(|n| (1..=conversations::MAX_LIMIT).contains(n))
                    .ok_or(InputError::InvalidLimit)?,
            },
            before: req.query("before"),
        };
        Reply::ok(&conversations::list(app, me, query).await?)
    })
    .await)
}
