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

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("bad configuration")]
    Config(#[from] ConfigError),
    #[error("cannot use MONGO_URI")]
    Mongo(#[from] mongodb::error::Error),
    #[error("migrations failed at cold start")]
    Migrations(#[from] migrations::MigrationError),
}

#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub store: Store,
    pub pusher: Pusher,
    pub invoker: Invoker,
    pub experiments: Experiments,
}

impl App {
    /// Cold start inside Lambda: environment, default AWS credentials chain.
    pub async fn from_env() -> Result<&'static App, BootError> {
        let config = Config::from_env()?;
        let sdk = aws_config::load_from_env().await;
        let app = Self::new(config, &sdk).await?;
        // One App per process, alive as long as the process: handlers borrow it for 'static.
        Ok(Box::leak(Box::new(app)))
    }

    pub async fn new(config: Config, sdk: &aws_config::SdkConfig) -> Result<App, BootError> {
        let client = mongodb::Client::with_uri_str(&config.mongo_uri).await?;
        let store = Store::new(client.database(&config.mongo_db));
        if config.run_migrations {
            migrations::run_pending(&store.db).await?;
        }
        Ok(App {
            pusher: Pusher::new(sdk, config.ws.endpoint.as_deref()),
            invoker: Invoker::new(sdk, &config.scheduler_function),
            experiments: Experiments::new(&config.experiments),
            store,
            config,
        })
    }
}
