//! `POST /chat/conversations`: parse the request, call the core, map the result.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::api::StartConversationBody;
use shared::domain::Mobile;
use shared::http::{self, Reply};
use shared::{App, Result, auth, conversations};

pub async fn handler(
    app: &'static App,
    event: ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse> {
    Ok(http::handle(event, async |req| {
        let me = auth::authenticate(app, &req.token()?).await?;
        let body: StartConversationBody = req.json()?;
        let mobile = Mobile::parse(&body.mobile)?;
        Reply::ok(&conversations::start(app, me, mobile).await?)
    })
    .await)
}
