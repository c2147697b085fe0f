//! Work handed to the scheduler function by asynchronous invoke: plain data, with typed ids,
//! shared by the functions that queue it and the scheduler that runs it.

use serde::{Deserialize, Serialize};

use crate::domain::{ConnectionId, SlotRange, UserId};

/// A task handed to the scheduler by asynchronous invoke.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum Task {
    /// Post the Engine.IO open packet to a new Socket.IO connection.
    Open { connection_id: ConnectionId },
    /// Welcome a new plain-JSON connection and deliver what waited for it; `resume_after`:
    /// its session (the connection's `pid`) was recovered, replay the log after that offset.
    Welcome {
        connection_id: ConnectionId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_after: Option<i64>,
    },
    /// Deliver `user`'s messages that are due at `not_before_ms` (epoch milliseconds).
    Deliver { user: UserId, not_before_ms: i64 },
    /// Close a connection once it is established (a second upgrade of a long-polling
    /// session that another WebSocket connection carries already).
    Close { connection_id: ConnectionId },
    /// Sweep the connections in these slots (one shard of a sweep too big for one
    /// invocation; it fans out further if it is still too big).
    Sweep { slots: SlotRange },
    /// End a phantom typing indicator.
    PhantomStop {
        from: UserId,
        to: UserId,
        not_before_ms: i64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_round_trip_as_json() {
        let u = UserId::new();
        let t = Task::Deliver {
            user: u,
            not_before_ms: 5,
        };
        let v = serde_json::to_value(&t).expect("json");
        assert_eq!(v["task"], "deliver");
        assert_eq!(serde_json::from_value::<Task>(v).expect("task"), t);
        let open: Task =
            serde_json::from_str(r#"{"task":"open","connection_id":"abc="}"#).expect("open");
        assert_eq!(
            open,
            Task::Open {
                connection_id: ConnectionId::parse("abc=").expect("id")
            }
        );
        let sweep: Task =
            serde_json::from_str(r#"{"task":"sweep","slots":{"lo":0,"hi":512}}"#).expect("sweep");
        assert_eq!(
            sweep,
            Task::Sweep {
                slots: SlotRange::new(0, 512).expect("range")
            }
        );
        assert!(
            serde_json::from_str::<Task>(r#"{"task":"sweep","slots":{"lo":9,"hi":9000}}"#).is_err()
        );
        // Ids are parsed at the edge: a task naming a malformed connection is refused.
        assert!(serde_json::from_str::<Task>(r#"{"task":"open","connection_id":"a b"}"#).is_err());
    }
}
