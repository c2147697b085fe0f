//! Secrets read once per cold start from AWS Secrets Manager (`aws-sdk-secretsmanager`):
//! with `APP_SECRET` set, `MONGO_URI` and `HASH_SECRET` come from that secret (a JSON object
//! of strings) instead of the environment, so neither sits in the function configuration.
//! Locally the endpoint is the gateway's emulation (`SECRETS_ENDPOINT`); without
//! `APP_SECRET` the environment is used as it is.

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

use crate::config::{Config, ConfigError, SecretSource};
use crate::domain::HashKey;

/// The keys a secret may hold; anything else in it is ignored.
pub const KEYS: [&str; 2] = ["MONGO_URI", "HASH_SECRET"];

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The secret could not be read (missing, no permission, service trouble).
    #[error("cannot read the secret APP_SECRET names: {0}")]
    Unreadable(String),
    /// The secret is not a JSON object of strings.
    #[error("the secret APP_SECRET names is not a JSON object of strings")]
    Malformed,
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Reads the secret `config.secrets` names, if any, and puts what it holds in place.
pub async fn apply(
    mut config: Config,
    sdk: &aws_config::SdkConfig,
) -> Result<Config, SecretsError> {
    let Some(source) = config.secrets.take() else {
        return Ok(config);
    };
    let values = fetch(sdk, &source).await?;
    overlay(&mut config, &source, &values)?;
    Ok(config)
}

async fn fetch(
    sdk: &aws_config::SdkConfig,
    source: &SecretSource,
) -> Result<HashMap<String, String>, SecretsError> {
    let mut conf = aws_sdk_secretsmanager::config::Builder::from(sdk);
    if let Some(endpoint) = &source.endpoint {
        conf = conf.endpoint_url(endpoint);
    }
    let client = Client::from_conf(conf.build());
    let out = client
        .get_secret_value()
        .secret_id(&source.id)
        .send()
        .await
        .map_err(|e| SecretsError::Unreadable(DisplayErrorContext(e).to_string()))?;
    let text = out.secret_string().ok_or(SecretsError::Malformed)?;
    serde_json::from_str(text).map_err(|_| SecretsError::Malformed)
}

/// Puts the secret's values into `config` (the secret wins over the environment).
fn overlay(
    config: &mut Config,
    source: &SecretSource,
    values: &HashMap<String, String>,
) -> Result<(), SecretsError> {
    if let Some(uri) = values.get("MONGO_URI").filter(|v| !v.is_empty()) {
        config.mongo_uri.clone_from(uri);
    }
    match values.get("HASH_SECRET") {
        Some(secret) => {
            config.hash_key = HashKey::new(secret.as_bytes()).ok_or(ConfigError {
                key: "HASH_SECRET",
                value: "(hidden)".to_owned(),
                why: "must be at least 32 characters",
            })?;
        }
        None if source.hash_secret_required => {
            return Err(ConfigError {
                key: "HASH_SECRET",
                value: String::new(),
                why: "a deployed stage needs its own secret for the hashes at rest, in APP_SECRET or the environment",
            }
            .into());
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Config {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|k| vars.get(k).cloned()).unwrap()
    }

    fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_secret_wins_over_the_environment() {
        let mut c = config(&[("APP_SECRET", "chat/prod"), ("MONGO_URI", "mongodb://env")]);
        let source = c.secrets.take().unwrap();
        assert_eq!(source.id, "chat/prod");
        let local_key = c.hash_key.clone();
        let secret = "0123456789abcdef0123456789abcdef-secret";
        overlay(
            &mut c,
            &source,
            &values(&[("MONGO_URI", "mongodb://secret"), ("HASH_SECRET", secret)]),
        )
        .unwrap();
        assert_eq!(c.mongo_uri, "mongodb://secret");
        assert_eq!(c.hash_key, HashKey::new(secret.as_bytes()).unwrap());
        assert_ne!(c.hash_key, local_key);
    }

    #[test]
    fn inside_lambda_the_hash_secret_must_come_from_somewhere() {
        // In Lambda without HASH_SECRET: only accepted with APP_SECRET, which must hold it.
        let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "http-verify");
        let otp = ("OTP_MODE", "sms");
        let no_secret: HashMap<String, String> = [lambda, otp]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert!(Config::from_lookup(|k| no_secret.get(k).cloned()).is_err());
        let mut c = config(&[lambda, otp, ("APP_SECRET", "chat/prod")]);
        let source = c.secrets.take().unwrap();
        assert!(source.hash_secret_required);
        let e = overlay(&mut c, &source, &values(&[("MONGO_URI", "mongodb://x")]));
        assert!(matches!(
            e,
            Err(SecretsError::Config(ConfigError {
                key: "HASH_SECRET",
                ..
            }))
        ));
        let e = overlay(&mut c, &source, &values(&[("HASH_SECRET", "short")]));
        assert!(matches!(e, Err(SecretsError::Config(_))));
    }
}
