//! `POST /users/auth/verify`: parse the request, call the core, map the result.

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use shared::api::VerifyBody;
use shared::domain::{Mobile, Otp};
use shared::http::{self, Reply};
use shared::{App, Result, auth};

pub async fn handler(
    app: &'static App,
    event: ApiGatewayV2httpRequest,
) -> Result<ApiGatewayV2httpResponse> {
    Ok(http::handle(event, async |req| {
        let body: VerifyBody = req.json()?;
        let mobile = Mobile::parse(&body.mobile)?;
        let otp = Otp::parse(&body.otp)?;
        Reply::ok(&auth::verify(app, mobile, otp).await?)
    })
    .await)
}
