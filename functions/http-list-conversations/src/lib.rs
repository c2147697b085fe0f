//! `GET /chat/conversations`: parse the request, call the core, map the result.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::conversations::{self, ListQuery};
use shared::error::InputError;
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(
    app: &'static App,
    event: ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse> {
    Ok(http::handle(event, async |req| {
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
