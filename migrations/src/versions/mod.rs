//! The migrations themselves, one module each, listed in order in [`ALL`].

use super::Migration;

mod v001_initial_indexes;
mod v002_realtime_indexes;

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
];
