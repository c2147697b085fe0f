//! `POST /users/auth/request_otp`: parse the request, call the core, map the result.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::api::RequestOtpBody;
use shared::domain::Mobile;
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(
    app: &'static App,
    event: ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse> {
    Ok(http::handle(event, async |req| {
        let body: RequestOtpBody = req.json()?;
        let mobile = Mobile::parse(&body.mobile)?;
        Reply::ok(&auth::request_otp(app, mobile).await?)
    })
    .await)
}
