//! The scheduler: a task from another function, or a scheduled event. The logic is in
//! `shared::scheduler`.

use serde_json::Value;
use shared::scheduler::{self, Report};
use shared::{App, Result};

pub async fn handler(app: &'static App, event: Value) -> Result<Report> {
    scheduler::handle(app, event).await
}
