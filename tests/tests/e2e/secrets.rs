//! Secrets from AWS Secrets Manager at cold start (`APP_SECRET`), through the local
//! gateway's emulation of `GetSecretValue` and the functions' own SDK client.

use std::collections::HashMap;

use bson::doc;
use harness::client::mobile;
use harness::{EnvOptions, TestEnv};
use serde_json::json;
use shared::domain::{HashKey, Token};

const SECRET: &str = "chat/test/app";
const HASH_SECRET: &str = "a-hash-secret-that-only-secrets-manager-knows-0123";

fn with_secret(secret: serde_json::Value) -> EnvOptions {
    let mut options = EnvOptions::default()
        .var("APP_SECRET", SECRET)
        // Nothing listens here: the functions must take the database from the secret.
        .var(
            "MONGO_URI",
            "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=300&connectTimeoutMS=300",
        );
    options.secrets = HashMap::from([(SECRET.to_owned(), secret.to_string())]);
    options
}

#[tokio::test]
async fn mongo_uri_and_hash_secret_come_from_the_secret() {
    let env = TestEnv::with(with_secret(json!({
        "MONGO_URI": harness::mongo_uri(),
        "HASH_SECRET": HASH_SECRET,
    })))
    .await;
    // Logging in works: the database is the secret's.
    let u = env.api.login(&mobile(970)).await;
    assert_eq!(env.api.get("/users/me", Some(&u.token)).await.status, 200);
    // The token is stored under the secret's hash key, not the local development key.
    let key = HashKey::new(HASH_SECRET.as_bytes()).unwrap();
    let token = Token::parse(&u.token).unwrap();
    let stored = env
        .db
        .collection::<bson::Document>("sessions")
        .find_one(doc! { "_id": token.hash(&key) })
        .await
        .unwrap();
    assert!(stored.is_some(), "no session under the secret's key");
    assert_eq!(env.app().config.mongo_uri, harness::mongo_uri());
}

#[tokio::test]
async fn a_secret_that_cannot_be_read_fails_the_cold_start_clearly() {
    let mut missing = with_secret(json!({}));
    missing.secrets.clear();
    let err = TestEnv::try_with(missing).await.err().expect("refused");
    assert!(
        format!("{err:#}").contains("cannot read the secret"),
        "{err:#}"
    );
    let err = TestEnv::try_with(with_secret(json!("just a string")))
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("not a JSON object"), "{err:#}");
    let err = TestEnv::try_with(with_secret(json!({ "HASH_SECRET": "short" })))
        .await
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("HASH_SECRET"), "{err:#}");
}
