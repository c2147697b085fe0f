//! The migrations themselves, one module each, listed in order in [`ALL`].

use bson::Document;
use mongodb::IndexModel;
use mongodb::options::IndexOptions;

use super::Migration;

fn index(keys: Document, options: IndexOptions) -> IndexModel {
    IndexModel::builder().keys(keys).options(options).build()
}

fn named(name: &str) -> IndexOptions {
    IndexOptions::builder().name(name.to_owned()).build()
}

fn unique(name: &str) -> IndexOptions {
    IndexOptions::builder()
        .name(name.to_owned())
        .unique(true)
        .build()
}

/// A TTL index: documents go once the indexed date has passed.
fn ttl(name: &str) -> IndexOptions {
    IndexOptions::builder()
        .name(name.to_owned())
        .expire_after(std::time::Duration::ZERO)
        .build()
}

mod v001_initial_indexes;
mod v002_realtime_indexes;
mod v003_conversations;
mod v004_delivery_leases;
mod v005_rate_limits;
mod v006_refresh_tokens;
mod v007_recovery;
mod v008_polling;
mod v009_event_log_documents;
mod v010_sweep_slots;
mod v011_log_heads_on_inboxes;

pub(crate) static ALL: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial_indexes",
        up: v001_initial_indexes::up,
    },
    Migration {
        version: 2,
        name: "realtime_indexes",
        up: v002_realtime_indexes::up,
    },
    Migration {
        version: 3,
        name: "conversations",
        up: v003_conversations::up,
    },
    Migration {
        version: 4,
        name: "delivery_leases",
        up: v004_delivery_leases::up,
    },
    Migration {
        version: 5,
        name: "rate_limits",
        up: v005_rate_limits::up,
    },
    Migration {
        version: 6,
        name: "refresh_tokens",
        up: v006_refresh_tokens::up,
    },
    Migration {
        version: 7,
        name: "recovery",
        up: v007_recovery::up,
    },
    Migration {
        version: 8,
        name: "polling",
        up: v008_polling::up,
    },
    Migration {
        version: 9,
        name: "event_log_documents",
        up: v009_event_log_documents::up,
    },
    Migration {
        version: 10,
        name: "sweep_slots",
        up: v010_sweep_slots::up,
    },
    Migration {
        version: 11,
        name: "log_heads_on_inboxes",
        up: v011_log_heads_on_inboxes::up,
    },
];
