//! The EventBridge schedule: every period, the scheduler function receives the same
//! `Scheduled Event` JSON EventBridge sends, whether or not the previous one has finished.

use std::time::Duration;

use serde_json::json;

use crate::{Shared, ids};

pub(crate) fn spawn(shared: Shared, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Some(target) = shared
        .invocables
        .iter()
        .find(|f| f.function == "scheduler")
        .copied()
    else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let event = json!({
                "version": "0",
                "id": ids::request_id(),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": ids::ACCOUNT_ID,
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "region": "us-east-1",
                "resources": [format!("arn:aws:events:us-east-1:{}:rule/scheduler-every-minute", ids::ACCOUNT_ID)],
                "detail": {},
            });
            let app = shared.instance();
            // Like EventBridge, the schedule does not wait for the previous sweep: a slow
            // sweep never delays the next one's heartbeats (sweeps may overlap).
            tokio::spawn(async move {
                match tokio::spawn(async move { (target.handler)(app, event).await }).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "scheduled sweep failed"),
                    Err(e) => tracing::error!(error = %e, "scheduled sweep panicked"),
                }
            });
        }
    });
}
