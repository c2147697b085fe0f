//! WebSocket $connect: the logic is in `shared::realtime::ws`.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use shared::realtime::ws;
use shared::{App, Result};

pub async fn handler(
    app: &'static App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse> {
    ws::on_connect(app, event).await
}
