//! Lambda entry point for the scheduler (async tasks and the EventBridge schedule).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::lambda::run(scheduler::handler).await
}
