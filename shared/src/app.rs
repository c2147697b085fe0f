//! The state a function builds once per cold start: configuration, the MongoDB store, the
//! @connections pusher, the scheduler invoker and the experiments' random source.
//!
//! Lambda `main`s call [`App::from_env`]; the local gateway and tests call [`App::new`] with
//! their own config and SDK settings (endpoint override), so the same handlers run against
//! either.

use std::time::Duration;

use crate::config::{Config, ConfigError};
use crate::experiments::Experiments;
use crate::invoke::Invoker;
use crate::push::Pusher;
use crate::sms::Sms;
use crate::store::Store;

/// The HTTP client every AWS SDK client uses: rustls with ring.
pub fn sdk_http_client() -> aws_sdk_lambda::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The SDK configuration of a function inside Lambda, which gives every function its role's
/// credentials (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) and
/// `AWS_REGION` in the environment, fixed for the life of the execution environment: that is
/// where the SDK's default provider chain finds them there too. Built directly rather than by
/// `aws_config::defaults`, whose chain (profile files, SSO, STS web identity, container and
/// instance metadata) no function needs and which is about 250 KB of every bootstrap. The
/// clients' own defaults apply to the rest (retries, timeouts, sleep and time). Without
/// credentials in the environment there is no provider, and each AWS call fails saying so.
/// `var` reads an environment variable.
pub fn lambda_sdk_config(var: impl Fn(&str) -> Option<String>) -> aws_config::SdkConfig {
    use aws_sdk_lambda::config::{Credentials, SharedCredentialsProvider};
    let var = |name: &str| var(name).filter(|v| !v.is_empty());
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .map(aws_config::Region::new);
    let mut sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(region)
        .http_client(sdk_http_client());
    if let (Some(key), Some(secret)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
        let credentials =
            Credentials::new(key, secret, var("AWS_SESSION_TOKEN"), None, "environment");
        sdk = sdk.credentials_provider(SharedCredentialsProvider::new(credentials));
    }
    sdk.build()
}

#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("bad configuration")]
    Config(#[from] ConfigError),
    #[error("cannot use MONGO_URI")]
    Mongo(#[from] mongodb::error::Error),
    #[error("migrations failed at cold start")]
    Migrations(#[from] migrations::MigrationError),
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

/// A map kept by a warm process for facts that cannot become false while it lives (a user
/// exists; a settled connection's record). Bounded: when full it starts over, so a
/// long-lived process cannot grow without limit; a miss only costs a database read.
#[derive(Debug)]
pub struct ProcessCache<K, V> {
    map: std::sync::Mutex<std::collections::HashMap<K, V>>,
    max: usize,
}

impl<K: std::hash::Hash + Eq, V: Clone> ProcessCache<K, V> {
    pub fn new(max: usize) -> Self {
        Self {
            map: std::sync::Mutex::default(),
            max,
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.map.lock().ok()?.get(key).cloned()
    }

    pub fn put(&self, key: K, value: V) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= self.max {
                m.clear();
            }
            m.insert(key, value);
        }
    }

    pub fn forget<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        if let Ok(mut m) = self.map.lock() {
            m.remove(key);
        }
    }
}

/// Users known to exist (users are never deleted).
pub type KnownUsers = ProcessCache<crate::domain::UserId, ()>;

/// Settled connection records (authenticated and live) by connection id. After that point a
/// chat connection's record only changes by going away (a client leaving the main namespace
/// is closed), and connection ids are never reused, so frames from a known connection need
/// no database read.
pub type SessionCache = ProcessCache<String, crate::store::ConnectionDoc>;

/// The MongoDB client of `config`: the URI's options, and a server selection timeout
/// (`MONGO_TIMEOUT_MS`) unless the URI sets one.
pub async fn mongo_client(config: &Config) -> Result<mongodb::Client, mongodb::error::Error> {
    let mut options = mongodb::options::ClientOptions::parse(&config.mongo_uri).await?;
    if options.max_pool_size.is_none() {
        options.max_pool_size = Some(config.mongo_max_pool);
    }
    if options.server_selection_timeout.is_none() {
        options.server_selection_timeout = Some(config.mongo_timeout);
    }
    if options.connect_timeout.is_none() {
        options.connect_timeout = Some(config.mongo_timeout);
    }
    // A server that went away is noticed by the monitor's next check, not by a failing
    // operation (which retries against it): check as often as the timeout, so an operation
    // fails within about twice `MONGO_TIMEOUT_MS` instead of the driver's default 10 s.
    if options.heartbeat_freq.is_none() {
        options.heartbeat_freq = Some(
            config
                .mongo_timeout
                .clamp(Duration::from_millis(500), Duration::from_secs(10)),
        );
    }
    mongodb::Client::with_options(options)
}

#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub store: Store,
    pub pusher: Pusher,
    pub invoker: Invoker,
    pub sms: Sms,
    pub experiments: Experiments,
    pub known_users: KnownUsers,
    pub sessions: SessionCache,
}

impl App {
    /// Cold start inside Lambda: the configuration and the AWS credentials and region from
    /// the environment ([`lambda_sdk_config`]).
    pub async fn from_env() -> Result<&'static App, BootError> {
        let config = Config::from_env()?;
        let sdk = lambda_sdk_config(|name| std::env::var(name).ok());
        let app = Self::new(config, &sdk).await?;
        // One App per process, alive as long as the process: handlers borrow it for 'static.
        Ok(Box::leak(Box::new(app)))
    }

    pub async fn new(config: Config, sdk: &aws_config::SdkConfig) -> Result<App, BootError> {
        let config = crate::secrets::apply(config, sdk).await?;
        let client = mongo_client(&config).await?;
        Self::with_client(config, sdk, client).await
    }

    /// With a MongoDB client built elsewhere (the benchmarks attach command monitoring).
    pub async fn with_client(
        config: Config,
        sdk: &aws_config::SdkConfig,
        client: mongodb::Client,
    ) -> Result<App, BootError> {
        let config = crate::secrets::apply(config, sdk).await?;
        let store = Store::new(client.database(&config.mongo_db));
        if config.run_migrations {
            migrations::run_pending(&store.db).await?;
        }
        Ok(App {
            pusher: Pusher::new(sdk, config.ws.endpoint.as_deref()).with_polling(&store),
            invoker: Invoker::new(sdk, &config.scheduler_function),
            sms: Sms::new(sdk, config.sns_endpoint.as_deref()),
            experiments: Experiments::new(&config.experiments),
            known_users: KnownUsers::new(100_000),
            sessions: SessionCache::new(50_000),
            store,
            config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ProcessCache;

    /// What Lambda puts in a function's environment is what its AWS calls are signed with.
    #[tokio::test]
    async fn lambda_sdk_config_takes_credentials_and_region_from_the_environment() {
        use aws_sdk_lambda::config::ProvideCredentials;
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let sdk = super::lambda_sdk_config(env(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ]));
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert!(sdk.behavior_version().is_some());
        assert!(sdk.http_client().is_some());
        let creds = sdk
            .credentials_provider()
            .expect("a provider")
            .provide_credentials()
            .await
            .expect("credentials");
        assert_eq!(creds.access_key_id(), "ASIAEXAMPLE");
        assert_eq!(creds.secret_access_key(), "secret");
        assert_eq!(creds.session_token(), Some("token"));

        // AWS_DEFAULT_REGION when AWS_REGION is unset; no credentials, no provider.
        let sdk = super::lambda_sdk_config(env(&[
            ("AWS_REGION", ""),
            ("AWS_DEFAULT_REGION", "ap-south-1"),
            ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
        ]));
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("ap-south-1"));
        assert!(sdk.credentials_provider().is_none());
        assert!(super::lambda_sdk_config(env(&[])).region().is_none());
    }

    #[test]
    fn process_cache_remembers_forgets_and_starts_over_when_full() {
        let cache: ProcessCache<String, u32> = ProcessCache::new(2);
        cache.put("a".into(), 1);
        cache.put("b".into(), 2);
        assert_eq!(cache.get("a"), Some(1));
        cache.forget("a");
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("b"), Some(2));
        cache.put("c".into(), 3);
        // Full (b, c): the next insert starts over, keeping only itself.
        cache.put("d".into(), 4);
        assert_eq!((cache.get("b"), cache.get("c")), (None, None));
        assert_eq!(cache.get("d"), Some(4));
    }
}
