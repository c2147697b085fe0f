//! The state a function builds once per cold start: configuration, the MongoDB store, the
//! @connections pusher, the scheduler invoker and the experiments' random source.
//!
//! Lambda `main`s call [`App::from_env`]; the local gateway and tests call [`App::new`] with
//! their own config and SDK settings (endpoint override), so the same handlers run against
//! either.

use crate::config::{Config, ConfigError};
use crate::experiments::Experiments;
use crate::invoke::Invoker;
use crate::push::Pusher;
use crate::store::Store;

/// The HTTP client every AWS SDK client uses: rustls with ring.
pub fn sdk_http_client() -> aws_sdk_lambda::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("bad configuration")]
    Config(#[from] ConfigError),
    #[error("cannot use MONGO_URI")]
    Mongo(#[from] mongodb::error::Error),
    #[error("migrations failed at cold start")]
    Migrations(#[from] migrations::MigrationError),
}

/// Users known to exist (they are never deleted), bounded so a long-lived process cannot
/// grow without limit.
#[derive(Debug, Default)]
pub struct KnownUsers {
    set: std::sync::Mutex<std::collections::HashSet<crate::domain::UserId>>,
}

impl KnownUsers {
    const MAX: usize = 100_000;

    pub fn contains(&self, user: &crate::domain::UserId) -> bool {
        self.set.lock().map(|s| s.contains(user)).unwrap_or(false)
    }

    pub fn insert(&self, user: crate::domain::UserId) {
        if let Ok(mut s) = self.set.lock() {
            if s.len() >= Self::MAX {
                s.clear();
            }
            s.insert(user);
        }
    }
}

/// Settled connection records (authenticated and live), remembered by the warm process
/// that handled them. After that point a chat connection's record only changes by going
/// away (a client leaving the main namespace is closed), and connection ids are never
/// reused, so frames from a known connection need no database read.
#[derive(Debug, Default)]
pub struct SessionCache {
    map: std::sync::Mutex<std::collections::HashMap<String, crate::store::ConnectionDoc>>,
}

impl SessionCache {
    const MAX: usize = 50_000;

    pub fn get(&self, id: &str) -> Option<crate::store::ConnectionDoc> {
        self.map.lock().ok()?.get(id).cloned()
    }

    pub fn put(&self, doc: crate::store::ConnectionDoc) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= Self::MAX {
                m.clear();
            }
            m.insert(doc.connection_id.clone(), doc);
        }
    }

    pub fn forget(&self, id: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(id);
        }
    }
}

#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub store: Store,
    pub pusher: Pusher,
    pub invoker: Invoker,
    pub experiments: Experiments,
    pub known_users: KnownUsers,
    pub sessions: SessionCache,
}

impl App {
    /// Cold start inside Lambda: environment, default AWS credentials chain.
    pub async fn from_env() -> Result<&'static App, BootError> {
        let config = Config::from_env()?;
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(sdk_http_client())
            .load()
            .await;
        let app = Self::new(config, &sdk).await?;
        // One App per process, alive as long as the process: handlers borrow it for 'static.
        Ok(Box::leak(Box::new(app)))
    }

    pub async fn new(config: Config, sdk: &aws_config::SdkConfig) -> Result<App, BootError> {
        let client = mongodb::Client::with_uri_str(&config.mongo_uri).await?;
        Self::with_client(config, sdk, client).await
    }

    /// With a MongoDB client built elsewhere (the benchmarks attach command monitoring).
    pub async fn with_client(
        config: Config,
        sdk: &aws_config::SdkConfig,
        client: mongodb::Client,
    ) -> Result<App, BootError> {
        let store = Store::new(client.database(&config.mongo_db));
        if config.run_migrations {
            migrations::run_pending(&store.db).await?;
        }
        Ok(App {
            pusher: Pusher::new(sdk, config.ws.endpoint.as_deref()),
            invoker: Invoker::new(sdk, &config.scheduler_function),
            experiments: Experiments::new(&config.experiments),
            known_users: KnownUsers::default(),
            sessions: SessionCache::default(),
            store,
            config,
        })
    }
}
