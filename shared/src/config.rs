//! Configuration, read from the environment once per cold start.
//!
//! Every knob the README documents lives here with its default. [`Config::from_lookup`]
//! takes any key lookup so tests and the local gateway can build a config without touching
//! the process environment.

use std::time::Duration;

use crate::domain::HashKey;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("environment variable {key}={value:?} is invalid: {why}")]
pub struct ConfigError {
    pub key: &'static str,
    pub value: String,
    pub why: &'static str,
}

/// How OTPs reach the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpMode {
    /// The seed's mode, for local development: the OTP comes back in the response of
    /// `request_otp`. Refused at cold start inside Lambda unless `ALLOW_EMULATED_OTP=true`.
    Emulated,
    /// By text message through Amazon SNS `Publish`; the response carries no OTP.
    Sms,
}

/// The hash key when `HASH_SECRET` is not set outside Lambda (local development only).
const LOCAL_HASH_SECRET: &str = "local-development-only-hash-secret-not-for-deployment";

/// Browser origins allowed to call the APIs: the HTTP API's CORS and the WebSocket
/// `$connect` `Origin` check share it (`CORS_ALLOWED_ORIGINS`, comma-separated; `*` or unset:
/// any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    Any,
    List(Vec<String>),
}

impl AllowedOrigins {
    pub fn parse(raw: Option<&str>) -> Self {
        let list: Vec<String> = raw
            .unwrap_or("")
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect();
        if list.is_empty() || list.iter().any(|o| o == "*") {
            AllowedOrigins::Any
        } else {
            AllowedOrigins::List(list)
        }
    }

    /// Whether a request with this `Origin` header may proceed.
    pub fn allows(&self, origin: &str) -> bool {
        match self {
            AllowedOrigins::Any => true,
            AllowedOrigins::List(list) => {
                let origin = origin.trim_end_matches('/');
                list.iter().any(|o| o.eq_ignore_ascii_case(origin))
            }
        }
    }
}

/// At most `max` hits per `window` (a fixed window, or a token bucket's capacity and refill).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u64,
    pub window: Duration,
}

impl Limit {
    pub fn per(max: u64, window_secs: u64) -> Self {
        Self {
            max,
            window: Duration::from_secs(window_secs),
        }
    }
}

/// Login abuse limits. OTP requests count per source IP first (one client cannot walk
/// through many numbers), then per IP and number, then per number across all IPs, a much
/// higher limit (a stranger cannot lock a victim out from one address, and nobody can flood
/// one phone with texts). Verify attempts count per source IP (on top of 5 wrong tries
/// killing an OTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// `OTP_REQUESTS_PER_IP` per 15 minutes (default 20).
    pub otp_per_ip: Limit,
    /// `OTP_REQUESTS_PER_IP_AND_NUMBER` per 15 minutes (default 5).
    pub otp_per_ip_and_number: Limit,
    /// `OTP_REQUESTS_PER_NUMBER` per hour, from any address (default 20).
    pub otp_per_number: Limit,
    /// `VERIFY_ATTEMPTS_PER_IP` per 15 minutes (default 30).
    pub verify_per_ip: Limit,
}

/// The seed's UX experiments (see `experiments.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentsConfig {
    /// `CHAT_EXPERIMENTS=off` turns all four off.
    pub enabled: bool,
    /// `CHAT_RNG_SEED`: makes every experiment's choices reproducible.
    pub seed: Option<u64>,
    /// `IDENTITY_DRIFT_RATE` (0..=1, default 0.01).
    pub identity_drift_rate: f64,
    /// `LATENCY_ILLUSION` (on/off, default on) and its range `LATENCY_MIN_MS`..=`LATENCY_MAX_MS`.
    pub latency_enabled: bool,
    pub latency_min: Duration,
    pub latency_max: Duration,
    /// `CHRONOLOGY_RATE` (0..=1, default 0.05) and `CHRONOLOGY_WINDOW_MS` (default 2000):
    /// how close in time two messages must be to be swapped.
    pub chronology_rate: f64,
    pub chronology_window: Duration,
    /// `PHANTOM_TYPING` (on/off, default off) and `PHANTOM_TYPING_RATE` (0..=1, default 0.05
    /// per connected user per scheduler sweep), `PHANTOM_TYPING_MS` (default 1500).
    pub phantom_typing_enabled: bool,
    pub phantom_typing_rate: f64,
    pub phantom_typing_duration: Duration,
}

impl ExperimentsConfig {
    /// Everything off: what `CHAT_EXPERIMENTS=off` gives.
    pub fn off() -> Self {
        Self {
            enabled: false,
            seed: None,
            identity_drift_rate: 0.0,
            latency_enabled: false,
            latency_min: Duration::ZERO,
            latency_max: Duration::ZERO,
            chronology_rate: 0.0,
            chronology_window: Duration::ZERO,
            phantom_typing_enabled: false,
            phantom_typing_rate: 0.0,
            phantom_typing_duration: Duration::ZERO,
        }
    }
}

/// Engine.IO / WebSocket settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WsConfig {
    /// `WS_ENDPOINT`: the @connections management endpoint, `https://{api}.execute-api.{region}.amazonaws.com/{stage}`.
    pub endpoint: Option<String>,
    /// `PING_INTERVAL_MS` / `PING_TIMEOUT_MS`: advertised in the open packet; a connection
    /// silent for their sum is dropped. In AWS their sum must exceed the schedule's period.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// `MAX_PAYLOAD`: advertised in the open packet; no larger than an API Gateway message.
    pub max_payload: u32,
    /// `CONNECT_TIMEOUT_MS`: a Socket.IO connection that has not sent CONNECT by then is closed.
    pub connect_timeout: Duration,
    /// `RECOVERY_WINDOW_SECS` (default 8100, 2 h 15 min; `0` turns recovery off): how long
    /// after a connection ends its session can be recovered (Socket.IO connection state
    /// recovery, `?resume=` for plain-JSON clients), and how long each user's event log
    /// keeps an event.
    pub recovery_window: Duration,
    /// `RECOVERY_MAX_EVENTS` (default 1000): the most events one user's log keeps; a client
    /// further behind than that gets a new session instead.
    pub recovery_max_events: u32,
}

/// Where the secrets come from when `APP_SECRET` is set (see `secrets.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSource {
    /// `APP_SECRET`: the Secrets Manager secret (name or ARN) holding `MONGO_URI` and
    /// `HASH_SECRET` as a JSON object.
    pub id: String,
    /// `SECRETS_ENDPOINT`: where Secrets Manager is reached (the local gateway's emulation);
    /// AWS's own when unset.
    pub endpoint: Option<String>,
    /// The secret must hold `HASH_SECRET` (inside Lambda, when the environment has none).
    pub hash_secret_required: bool,
}

/// Everything a function needs to know, read once.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Read once per cold start, before anything else uses `mongo_uri` or `hash_key`; `None`
    /// once applied (or when the environment holds them, as in local development).
    pub secrets: Option<SecretSource>,
    pub mongo_uri: String,
    pub mongo_db: String,
    /// `MONGO_TIMEOUT_MS`: how long the driver looks for a usable server before an operation
    /// fails (`unavailable`), well below the functions' timeout so a client hears an error
    /// instead of a timeout. A `serverSelectionTimeoutMS` in `MONGO_URI` wins.
    pub mongo_timeout: Duration,
    /// `MONGO_MAX_POOL` (default 10): connections one function instance may open, so that
    /// instances × pool stays under the cluster's connection limit (the template caps the
    /// instances with reserved concurrency).
    pub mongo_max_pool: u32,
    pub run_migrations: bool,
    pub otp_mode: OtpMode,
    /// `SNS_ENDPOINT`: where SNS is reached (the local gateway's emulation); AWS's own when
    /// unset.
    pub sns_endpoint: Option<String>,
    pub otp_ttl: Duration,
    /// Abuse limits on logging in (see `limits.rs`).
    pub login_limits: LoginLimits,
    /// `send_message` + `typing` events per user (all connections): a token bucket of
    /// `EVENTS_PER_USER` (default 30) refilled at that many per `EVENTS_WINDOW_SECS`
    /// (default 10), so a burst of 30, then 3 a second.
    pub events_per_user: Limit,
    /// Live connections a user may have at once (`MAX_CONNECTIONS_PER_USER`, default 10).
    pub max_connections_per_user: u64,
    /// `CORS_ALLOWED_ORIGINS`.
    pub allowed_origins: AllowedOrigins,
    /// `HASH_SECRET` (at least 32 characters): the key of the OTP and token hashes at rest.
    /// Required inside Lambda; locally a fixed development key stands in.
    pub hash_key: HashKey,
    /// `ACCESS_TOKEN_TTL_SECS` (default 900): how long an access token works.
    pub access_token_ttl: Duration,
    /// `SESSION_TTL_SECS` (default 30 days): how long a login session (its refresh tokens,
    /// and the sockets it opened) lasts, counted from the OTP login.
    pub session_ttl: Duration,
    /// `SCHEDULER_FUNCTION`: name or ARN of the scheduler function that other functions invoke
    /// asynchronously.
    pub scheduler_function: String,
    /// `SWEEP_SHARD_MAX` (default 1000): the most connections one sweep invocation looks
    /// after; beyond that the sweep fans out to shards by asynchronous invoke.
    pub sweep_shard_max: u64,
    pub ws: WsConfig,
    pub experiments: ExperimentsConfig,
}

/// How long a connection record may live: API Gateway closes every connection after 2
/// hours (and a margin for its `$disconnect`).
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(2 * 3600 + 600);

/// API Gateway's WebSocket message limit.
pub const API_GATEWAY_MAX_MESSAGE: usize = 128 * 1024;
/// API Gateway's WebSocket frame limit.
pub const API_GATEWAY_MAX_FRAME: usize = 32 * 1024;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let r = Reader { get: &get };
        let otp_mode = match r.string("OTP_MODE", "emulated").as_str() {
            "emulated" => OtpMode::Emulated,
            "sms" => OtpMode::Sms,
            other => {
                return Err(ConfigError {
                    key: "OTP_MODE",
                    value: other.to_owned(),
                    why: "must be `sms` or `emulated`",
                });
            }
        };
        // Inside Lambda (a deployed stage) the emulated mode would let anyone log in as any
        // number: it takes an explicit opt-in.
        let in_lambda = (r.get)("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let allow_emulated = r.string("ALLOW_EMULATED_OTP", "false") == "true";
        if otp_mode == OtpMode::Emulated && in_lambda && !allow_emulated {
            return Err(ConfigError {
                key: "OTP_MODE",
                value: "emulated".to_owned(),
                why: "returns the OTP to the caller; a deployed stage needs ALLOW_EMULATED_OTP=true for it",
            });
        }
        if otp_mode == OtpMode::Emulated && in_lambda {
            tracing::warn!("OTP_MODE=emulated in a deployed stage: request_otp returns the code");
        }
        let sns_endpoint = (r.get)("SNS_ENDPOINT").filter(|s| !s.is_empty());
        let secrets = r.opt_string("APP_SECRET").map(|id| SecretSource {
            id,
            endpoint: r.opt_string("SECRETS_ENDPOINT"),
            hash_secret_required: in_lambda && r.opt_string("HASH_SECRET").is_none(),
        });
        let hash_key = match r.opt_string("HASH_SECRET") {
            Some(secret) => HashKey::new(secret.as_bytes()).ok_or_else(|| ConfigError {
                key: "HASH_SECRET",
                value: "(hidden)".to_owned(),
                why: "must be at least 32 characters",
            })?,
            None if in_lambda && secrets.is_none() => {
                return Err(ConfigError {
                    key: "HASH_SECRET",
                    value: String::new(),
                    why: "a deployed stage needs its own secret for the hashes at rest",
                });
            }
            None => HashKey::new(LOCAL_HASH_SECRET.as_bytes()).ok_or_else(|| ConfigError {
                key: "HASH_SECRET",
                value: String::new(),
                why: "the local development key is too short",
            })?,
        };
        let experiments_on = match r.string("CHAT_EXPERIMENTS", "on").as_str() {
            "off" => false,
            "on" => true,
            other => {
                return Err(ConfigError {
                    key: "CHAT_EXPERIMENTS",
                    value: other.to_owned(),
                    why: "use `on` or `off`",
                });
            }
        };
        let experiments = if experiments_on {
            let latency_min = r.millis("LATENCY_MIN_MS", 40)?;
            let latency_max = r.millis("LATENCY_MAX_MS", 250)?;
            if latency_min > latency_max {
                return Err(ConfigError {
                    key: "LATENCY_MIN_MS",
                    value: format!("{}", latency_min.as_millis()),
                    why: "must not exceed LATENCY_MAX_MS",
                });
            }
            ExperimentsConfig {
                enabled: true,
                seed: r.opt_u64("CHAT_RNG_SEED")?,
                identity_drift_rate: r.rate("IDENTITY_DRIFT_RATE", 0.01)?,
                latency_enabled: r.flag("LATENCY_ILLUSION", true)?,
                latency_min,
                latency_max,
                chronology_rate: r.rate("CHRONOLOGY_RATE", 0.05)?,
                chronology_window: r.millis("CHRONOLOGY_WINDOW_MS", 2000)?,
                phantom_typing_enabled: r.flag("PHANTOM_TYPING", false)?,
                phantom_typing_rate: r.rate("PHANTOM_TYPING_RATE", 0.05)?,
                phantom_typing_duration: r.millis("PHANTOM_TYPING_MS", 1500)?,
            }
        } else {
            ExperimentsConfig {
                seed: r.opt_u64("CHAT_RNG_SEED")?,
                ..ExperimentsConfig::off()
            }
        };
        let max_payload = r.u64("MAX_PAYLOAD", 100_000)?;
        if max_payload == 0 || max_payload > API_GATEWAY_MAX_MESSAGE as u64 {
            return Err(ConfigError {
                key: "MAX_PAYLOAD",
                value: max_payload.to_string(),
                why: "must be 1..=131072 (an API Gateway WebSocket message)",
            });
        }
        Ok(Self {
            secrets,
            mongo_uri: r.string("MONGO_URI", "mongodb://localhost:27017"),
            mongo_db: r.string("MONGO_DB", "chat"),
            mongo_timeout: r.millis("MONGO_TIMEOUT_MS", 5_000)?,
            mongo_max_pool: u32::try_from(r.u64("MONGO_MAX_POOL", 10)?.clamp(1, 1000))
                .unwrap_or(10),
            run_migrations: r.flag("RUN_MIGRATIONS", false)?,
            otp_mode,
            sns_endpoint,
            otp_ttl: Duration::from_secs(r.u64("OTP_TTL_SECS", 300)?),
            events_per_user: Limit::per(
                r.u64("EVENTS_PER_USER", 30)?,
                r.u64("EVENTS_WINDOW_SECS", 10)?.max(1),
            ),
            max_connections_per_user: r.u64("MAX_CONNECTIONS_PER_USER", 10)?,
            sweep_shard_max: r.u64("SWEEP_SHARD_MAX", 1000)?.max(1),
            hash_key,
            allowed_origins: AllowedOrigins::parse(r.opt_string("CORS_ALLOWED_ORIGINS").as_deref()),
            login_limits: LoginLimits {
                otp_per_ip: Limit::per(r.u64("OTP_REQUESTS_PER_IP", 20)?, 15 * 60),
                otp_per_ip_and_number: Limit::per(
                    r.u64("OTP_REQUESTS_PER_IP_AND_NUMBER", 5)?,
                    15 * 60,
                ),
                otp_per_number: Limit::per(r.u64("OTP_REQUESTS_PER_NUMBER", 20)?, 3600),
                verify_per_ip: Limit::per(r.u64("VERIFY_ATTEMPTS_PER_IP", 30)?, 15 * 60),
            },
            access_token_ttl: Duration::from_secs(r.u64("ACCESS_TOKEN_TTL_SECS", 15 * 60)?),
            session_ttl: Duration::from_secs(r.u64("SESSION_TTL_SECS", 30 * 24 * 3600)?),
            scheduler_function: r.string("SCHEDULER_FUNCTION", "scheduler"),
            ws: WsConfig {
                endpoint: r.opt_string("WS_ENDPOINT"),
                ping_interval: r.millis("PING_INTERVAL_MS", 25_000)?,
                ping_timeout: r.millis("PING_TIMEOUT_MS", 20_000)?,
                max_payload: max_payload as u32,
                connect_timeout: r.millis("CONNECT_TIMEOUT_MS", 45_000)?,
                recovery_window: Duration::from_secs(r.u64("RECOVERY_WINDOW_SECS", 8100)?),
                recovery_max_events: u32::try_from(
                    r.u64("RECOVERY_MAX_EVENTS", 1000)?.clamp(1, 100_000),
                )
                .unwrap_or(1000),
            },
            experiments,
        })
    }
}

struct Reader<'a, F: Fn(&str) -> Option<String>> {
    get: &'a F,
}

impl<F: Fn(&str) -> Option<String>> Reader<'_, F> {
    fn opt_string(&self, key: &str) -> Option<String> {
        (self.get)(key).filter(|v| !v.trim().is_empty())
    }

    fn string(&self, key: &str, default: &str) -> String {
        self.opt_string(key).unwrap_or_else(|| default.to_owned())
    }

    fn flag(&self, key: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.opt_string(key) {
            None => Ok(default),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "on" | "yes" => Ok(true),
                "0" | "false" | "off" | "no" => Ok(false),
                _ => Err(ConfigError {
                    key,
                    value: v,
                    why: "use 1/0, true/false or on/off",
                }),
            },
        }
    }

    fn opt_u64(&self, key: &'static str) -> Result<Option<u64>, ConfigError> {
        self.opt_string(key)
            .map(|v| {
                v.trim().parse().map_err(|_| ConfigError {
                    key,
                    value: v,
                    why: "must be a non-negative integer",
                })
            })
            .transpose()
    }

    fn u64(&self, key: &'static str, default: u64) -> Result<u64, ConfigError> {
        Ok(self.opt_u64(key)?.unwrap_or(default))
    }

    fn millis(&self, key: &'static str, default: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.u64(key, default)?))
    }

    fn rate(&self, key: &'static str, default: f64) -> Result<f64, ConfigError> {
        match self.opt_string(key) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
                _ => Err(ConfigError {
                    key,
                    value: v,
                    why: "must be a number from 0 to 1",
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).expect("defaults are valid");
        assert_eq!(c.mongo_uri, "mongodb://localhost:27017");
        assert_eq!(c.mongo_db, "chat");
        assert!(!c.run_migrations);
        assert_eq!(c.access_token_ttl, Duration::from_secs(15 * 60));
        assert_eq!(c.session_ttl, Duration::from_secs(30 * 24 * 3600));
        assert!(c.experiments.enabled);
        assert_eq!(c.experiments.identity_drift_rate, 0.01);
        assert_eq!(c.experiments.latency_min, Duration::from_millis(40));
        assert_eq!(c.experiments.latency_max, Duration::from_millis(250));
        assert!(!c.experiments.phantom_typing_enabled);
        let l = c.login_limits;
        assert_eq!(l.otp_per_ip, Limit::per(20, 15 * 60));
        assert_eq!(l.otp_per_ip_and_number, Limit::per(5, 15 * 60));
        assert_eq!(l.otp_per_number, Limit::per(20, 3600));
        assert_eq!(l.verify_per_ip, Limit::per(30, 15 * 60));
    }

    #[test]
    fn emulated_otp_needs_an_opt_in_inside_lambda() {
        assert_eq!(cfg(&[]).expect("local").otp_mode, OtpMode::Emulated);
        let secret = ("HASH_SECRET", "0123456789abcdef0123456789abcdef");
        let deployed = [("AWS_LAMBDA_FUNCTION_NAME", "request-otp"), secret];
        assert_eq!(cfg(&deployed).map(|_| ()).unwrap_err().key, "OTP_MODE");
        let c = cfg(&[deployed[0], secret, ("ALLOW_EMULATED_OTP", "true")]).expect("opted in");
        assert_eq!(c.otp_mode, OtpMode::Emulated);
        let c = cfg(&[deployed[0], secret, ("OTP_MODE", "sms")]).expect("sms");
        assert_eq!((c.otp_mode, c.sns_endpoint), (OtpMode::Sms, None));
    }

    #[test]
    fn the_hash_secret_is_required_inside_lambda_and_long() {
        let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "f");
        let sms = ("OTP_MODE", "sms");
        assert_eq!(
            cfg(&[lambda, sms]).map(|_| ()).unwrap_err().key,
            "HASH_SECRET"
        );
        let short = ("HASH_SECRET", "short");
        assert_eq!(cfg(&[short]).map(|_| ()).unwrap_err().key, "HASH_SECRET");
        let long = ("HASH_SECRET", "0123456789abcdef0123456789abcdef");
        assert!(cfg(&[lambda, sms, long]).is_ok());
        // The error never shows the secret.
        let e = cfg(&[("HASH_SECRET", "tooshortsecret")]).unwrap_err();
        assert!(!e.to_string().contains("tooshortsecret"));
    }

    #[test]
    fn allowed_origins() {
        assert_eq!(AllowedOrigins::parse(None), AllowedOrigins::Any);
        assert_eq!(AllowedOrigins::parse(Some("a, *")), AllowedOrigins::Any);
        let o = AllowedOrigins::parse(Some("https://app.example.com, http://localhost:5173/"));
        assert!(o.allows("https://app.example.com"));
        assert!(o.allows("http://localhost:5173"));
        assert!(!o.allows("https://evil.example.com"));
        assert!(!o.allows("null"));
    }

    #[test]
    fn experiments_off_turns_all_off() {
        let c = cfg(&[("CHAT_EXPERIMENTS", "off"), ("PHANTOM_TYPING", "on")]).expect("valid");
        assert_eq!(c.experiments, ExperimentsConfig::off());
    }

    #[test]
    fn bad_values_are_reported() {
        assert_eq!(
            cfg(&[("OTP_MODE", "pigeon")]).map(|_| ()).unwrap_err().key,
            "OTP_MODE"
        );
        assert_eq!(
            cfg(&[("RUN_MIGRATIONS", "maybe")])
                .map(|_| ())
                .unwrap_err()
                .key,
            "RUN_MIGRATIONS"
        );
        assert_eq!(
            cfg(&[("IDENTITY_DRIFT_RATE", "2")])
                .map(|_| ())
                .unwrap_err()
                .key,
            "IDENTITY_DRIFT_RATE"
        );
        assert_eq!(
            cfg(&[("MAX_PAYLOAD", "1000000")])
                .map(|_| ())
                .unwrap_err()
                .key,
            "MAX_PAYLOAD"
        );
    }
}
