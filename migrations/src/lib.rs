//! Versioned MongoDB migrations and the runner that applies them.
//!
//! A migration is code (`versions/`), identified by a version number and a name. The runner
//! records each applied version in the `migrations` collection (`version`, `name`,
//! `applied_at`) and applies the pending ones in order. Runners started at the same time
//! (several cold starts with `RUN_MIGRATIONS=1`, or `migrate up` beside them) serialise on a
//! lease document in the same collection, so each migration is applied once. Every migration
//! is written to be safe to re-run (index creation is idempotent), so a runner that dies
//! half-way leaves nothing a later run cannot finish.

use std::time::Duration;

use bson::{Bson, DateTime, Document, doc};
use futures::{TryStreamExt, future::BoxFuture};
use mongodb::{Collection, Database, error::ErrorKind, options::ReturnDocument};
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod versions;

/// The collection that records applied migrations (and holds the runner's lease).
pub const COLLECTION: &str = "migrations";
const LOCK_ID: &str = "lock";
const LEASE: Duration = Duration::from_secs(60);
const WAIT_FOR_LOCK: Duration = Duration::from_secs(120);

type UpFn = fn(Database) -> BoxFuture<'static, mongodb::error::Result<()>>;

/// One versioned migration.
#[derive(Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub up: UpFn,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:03}_{}", self.version, self.name)
    }
}

/// Every migration, in the order they apply.
pub fn all() -> &'static [Migration] {
    versions::ALL
}

#[derive(Debug, Error)]
pub enum MigrationError {
    #[error("database error while migrating")]
    Mongo(#[from] mongodb::error::Error),
    #[error("another runner held the migration lock for longer than {0:?}")]
    LockTimeout(Duration),
    #[error("migration {version:03}_{name} failed")]
    Failed {
        version: u32,
        name: &'static str,
        #[source]
        source: mongodb::error::Error,
    },
}

/// A row of `migrate status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub version: u32,
    pub name: String,
    pub applied_at: DateTime,
}

/// What `status` reports for each known migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub version: u32,
    pub name: &'static str,
    pub applied_at: Option<DateTime>,
}

/// Applies every pending migration; returns the ones this call applied.
pub async fn run_pending(db: &Database) -> Result<Vec<Applied>, MigrationError> {
    run(db, all()).await
}

/// Applies the pending ones of `migrations` (tests pass their own list).
pub async fn run(db: &Database, migrations: &[Migration]) -> Result<Vec<Applied>, MigrationError> {
    let coll: Collection<Document> = db.collection(COLLECTION);
    // The common cold start: nothing pending, so no lease to take (and no write at all).
    let done: Vec<u32> = applied(&coll).await?.iter().map(|a| a.version).collect();
    if migrations.iter().all(|m| done.contains(&m.version)) {
        return Ok(Vec::new());
    }
    let owner = bson::oid::ObjectId::new();
    acquire(&coll, owner).await?;
    let result = apply_pending(db, &coll, migrations).await;
    // Release even when a migration failed, so the next runner can retry at once.
    let released = coll
        .update_one(
            doc! { "_id": LOCK_ID, "owner": owner },
            doc! { "$set": { "until": DateTime::from_millis(0) } },
        )
        .await;
    let applied = result?;
    released?;
    Ok(applied)
}

/// Every known migration with the time it was applied, if it was.
pub async fn status(db: &Database) -> Result<Vec<Status>, MigrationError> {
    let applied = applied(&db.collection(COLLECTION)).await?;
    Ok(all()
        .iter()
        .map(|m| Status {
            version: m.version,
            name: m.name,
            applied_at: applied
                .iter()
                .find(|a| a.version == m.version)
                .map(|a| a.applied_at),
        })
        .collect())
}

async fn applied(coll: &Collection<Document>) -> Result<Vec<Applied>, MigrationError> {
    let docs: Vec<Document> = coll
        .find(doc! { "version": { "$exists": true } })
        .sort(doc! { "version": 1 })
        .await?
        .try_collect()
        .await?;
    Ok(docs
        .into_iter()
        .filter_map(|d| bson::from_document::<Applied>(d).ok())
        .collect())
}

async fn apply_pending(
    db: &Database,
    coll: &Collection<Document>,
    migrations: &[Migration],
) -> Result<Vec<Applied>, MigrationError> {
    let done: Vec<u32> = applied(coll).await?.iter().map(|a| a.version).collect();
    let mut newly = Vec::new();
    for m in migrations.iter().filter(|m| !done.contains(&m.version)) {
        tracing::info!(version = m.version, name = m.name, "applying migration");
        (m.up)(db.clone())
            .await
            .map_err(|source| MigrationError::Failed {
                version: m.version,
                name: m.name,
                source,
            })?;
        let record = Applied {
            version: m.version,
            name: m.name.to_owned(),
            applied_at: DateTime::now(),
        };
        coll.insert_one(doc! {
            "_id": Bson::Int64(i64::from(m.version)),
            "version": Bson::Int64(i64::from(m.version)),
            "name": m.name,
            "applied_at": record.applied_at,
        })
        .await?;
        newly.push(record);
    }
    Ok(newly)
}

/// Takes the lease: an upsert that only matches an expired lease, so while another runner
/// holds it the upsert collides on `_id` and we wait.
async fn acquire(
    coll: &Collection<Document>,
    owner: bson::oid::ObjectId,
) -> Result<(), MigrationError> {
    let started = std::time::Instant::now();
    loop {
        let now = DateTime::now();
        let until = DateTime::from_millis(now.timestamp_millis() + LEASE.as_millis() as i64);
        let res = coll
            .find_one_and_update(
                doc! { "_id": LOCK_ID, "until": { "$lt": now } },
                doc! { "$set": { "owner": owner, "until": until } },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match res {
            Ok(_) => return Ok(()),
            Err(e) if is_duplicate_key(&e) => {
                if started.elapsed() > WAIT_FOR_LOCK {
                    return Err(MigrationError::LockTimeout(WAIT_FOR_LOCK));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// MongoDB's code for a write that hit a unique index (E11000).
pub const DUPLICATE_KEY: i32 = 11000;

/// Whether a driver error is a unique-index violation (E11000).
pub fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => w.code == DUPLICATE_KEY,
        ErrorKind::Command(c) => c.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(m) => m
            .write_errors
            .as_ref()
            .is_some_and(|errs| errs.iter().any(|w| w.code == DUPLICATE_KEY)),
        _ => e.to_string().contains("E11000"),
    }
}
