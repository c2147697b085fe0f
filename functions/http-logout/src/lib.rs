//! `POST /users/auth/logout`: parse the request, call the core, map the result.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(
    app: &'static App,
    event: ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse> {
    Ok(http::handle(event, async |req| {
        auth::logout(app, &req.token()?).await?;
        Ok(Reply::NoContent)
    })
    .await)
}
