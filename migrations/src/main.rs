//! `migrate`: apply pending migrations (`up`) or list them (`status`).
//! Reads `MONGO_URI` and `MONGO_DB` like the functions do.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let uri = std::env::var("MONGO_URI").unwrap_or_else(|_| "mongodb://localhost:27017".into());
    let db_name = std::env::var("MONGO_DB").unwrap_or_else(|_| "chat".into());
    let command = std::env::args().nth(1).unwrap_or_else(|| "status".into());
    let db = match mongodb::Client::with_uri_str(&uri).await {
        Ok(client) => client.database(&db_name),
        Err(e) => {
            eprintln!("migrate: cannot use MONGO_URI: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command.as_str() {
        "up" => migrations::run_pending(&db).await.map(|applied| {
            if applied.is_empty() {
                println!("nothing to apply: {db_name} is up to date");
            }
            for a in applied {
                println!("applied {:03}_{}", a.version, a.name);
            }
        }),
        "status" => migrations::status(&db).await.map(|rows| {
            println!("{:<8} {:<28} applied_at", "version", "name");
            for r in rows {
                let at = r
                    .applied_at
                    .map(|t| t.try_to_rfc3339_string().unwrap_or_default())
                    .unwrap_or_else(|| "pending".into());
                println!("{:<8} {:<28} {at}", format!("{:03}", r.version), r.name);
            }
        }),
        other => {
            eprintln!("usage: migrate [up|status]  (got `{other}`)");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrate: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
