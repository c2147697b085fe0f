//! WebSocket the `send_message` route (plain-JSON clients): the logic is in `shared::realtime::ws`.

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use shared::realtime::ws::{self, Action};
use shared::{App, Result};

pub async fn handler(
    app: &'static App,
    event: ApiGatewayWebsocketProxyRequest,
) -> Result<ApiGatewayProxyResponse> {
    ws::on_action(app, event, Action::SendMessage).await
}
