//! `GET /chat/messages/{other_id}`: parse the request, call the core, map the result.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::chat::{self, HistoryQuery};
use shared::domain::UserId;
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
        let query =
            HistoryQuery::parse(req.query("limit"), req.query("before"), req.query("order"))?;
        Reply::ok(&chat::history(app, me, other, query).await?)
    })
    .await)
}
