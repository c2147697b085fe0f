//! `GET /chat/messages/{other_id}`: parse the request, call the core, map the result.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::chat::{self, HistoryQuery};
use shared::domain::{MessageId, UserId};
use shared::error::InputError;
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(
    app: &'static App,
    event: ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse> {
    Ok(http::handle(event, async |req| {
        let me = auth::authenticate(app, &req.token()?).await?;
        let other_id = req
            .path_param("other_id")
            .or_else(|| req.last_path_segment());
        let other = UserId::parse(other_id.unwrap_or_default())?;
        let query = HistoryQuery {
            limit: match req.query("limit") {
                None => chat::DEFAULT_LIMIT,
                Some(raw) => raw
                    .parse()
                    .ok()
                    .filter(|n| (1..=chat::MAX_LIMIT).contains(n))
                    .ok_or(InputError::InvalidLimit)?,
            },
            before: req.query("before").map(MessageId::parse).transpose()?,
            strict: match req.query("order") {
                None => false,
                Some("strict") => true,
                Some(_) => return Err(InputError::InvalidOrder.into()),
            },
        };
        Reply::ok(&chat::history(app, me, other, query).await?)
    })
    .await)
}
