//! Login by mobile OTP, sessions and tokens.
//!
//! - `request_otp`: a fresh 6-digit OTP (CSPRNG), stored hashed, valid `OTP_TTL_SECS`; a new
//!   request replaces the old one; requests are limited per source IP, per IP and number
//!   and per number (`LoginLimits`), verify attempts per source IP. With
//!   `OTP_MODE=sms` it goes by text message (SNS), with `emulated` back in the response.
//! - `verify`: the first verify of a mobile creates the user, later ones find the same user
//!   (stable identity, enforced by the unique index on `mobile`); 5 wrong tries kill the OTP;
//!   an OTP works once. Starts a login session: a short-lived access token
//!   (`ACCESS_TOKEN_TTL_SECS`) and a refresh token, both of the session's family.
//! - `refresh`: a refresh token works once, for a new pair of the same session (which ends
//!   `SESSION_TTL_SECS` after the login, refreshes or not); presenting a used one ends the
//!   session.
//! - `authenticate` / `logout` / `logout_all`: tokens are stored only as HMAC-SHA256 hashes
//!   (keyed with `HASH_SECRET`) in `sessions` and `refresh_tokens`; ending a session
//!   closes every WebSocket connection it authenticated (connections belong to the session,
//!   so they outlive the access token that opened them, not the session).

use std::time::Duration;

use bson::{doc, oid::ObjectId};
use chrono::TimeDelta;
use mongodb::options::ReturnDocument;

use crate::api::{OtpIssued, SessionIssued};
use crate::app::App;
use crate::config::OtpMode;
pub use crate::domain::Authenticated;
use crate::domain::{DisplayName, Mobile, Otp, SourceIp, Token, UserId};
use crate::error::{AuthError, Error, Result, StoreError};
use crate::limits;
use crate::realtime::outbox;
use crate::sms;
use crate::store::{OtpDoc, RefreshDoc, SessionDoc, UserDoc, is_duplicate_key};
use crate::time;

/// How long an OTP record is kept after its last request.
pub const RATE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Wrong tries after which an OTP is dead.
pub const MAX_ATTEMPTS: i32 = 5;

fn delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

/// Refuses with `rate_limited` once `key` is over `limit`.
async fn limit(app: &App, key: &str, limit: crate::config::Limit) -> Result<()> {
    match limits::hit(app, key, limit).await? {
        None => Ok(()),
        Some(wait) => {
            let retry_after =
                Duration::from_secs(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
            Err(AuthError::RateLimited { retry_after }.into())
        }
    }
}

/// Issues a new OTP for `mobile`, replacing any earlier one.
pub async fn request_otp(app: &App, from: &SourceIp, mobile: Mobile) -> Result<OtpIssued> {
    let l = app.config.login_limits;
    limit(app, &format!("otp-ip:{}", from.0), l.otp_per_ip).await?;
    limit(
        app,
        &format!("otp-ip-number:{}:{}", from.0, mobile.as_str()),
        l.otp_per_ip_and_number,
    )
    .await?;
    limit(
        app,
        &format!("otp-number:{}", mobile.as_str()),
        l.otp_per_number,
    )
    .await?;
    let otps = &app.store.otps;
    // Compare-and-swap on `rev`: concurrent requests for one number cannot both replace it.
    for _ in 0..8 {
        let now = time::now();
        let existing = otps.find_one(doc! { "_id": mobile.as_str() }).await?;
        let otp = Otp::generate();
        let expires_at = now + delta(app.config.otp_ttl);
        let rev = existing.as_ref().map_or(0, |d| d.rev) + 1;
        let new_doc = OtpDoc {
            mobile: mobile.as_str().to_owned(),
            otp_hash: otp.hash(&mobile, &app.config.hash_key),
            expires_at: time::to_bson(expires_at),
            attempts: 0,
            used: false,
            rev,
            purge_at: time::to_bson(now + delta(RATE_WINDOW).max(delta(app.config.otp_ttl))),
        };
        let written = match &existing {
            Some(old) => {
                let res = otps
                    .replace_one(doc! { "_id": mobile.as_str(), "rev": old.rev }, &new_doc)
                    .await?;
                res.matched_count == 1
            }
            None => match otps.insert_one(&new_doc).await {
                Ok(_) => true,
                Err(e) if is_duplicate_key(&e) => false,
                Err(e) => return Err(e.into()),
            },
        };
        if written {
            let expires_in = app.config.otp_ttl.as_secs();
            let otp = match app.config.otp_mode {
                OtpMode::Emulated => Some(otp.as_str().to_owned()),
                OtpMode::Sms => {
                    let text = sms::otp_text(otp.as_str(), expires_in);
                    app.sms.send(&mobile, &text).await?;
                    None
                }
            };
            return Ok(OtpIssued {
                mobile: mobile.as_str().to_owned(),
                otp,
                expires_in,
            });
        }
    }
    Err(StoreError::LockTimeout(format!("otp:…{}", mobile.last_digits())).into())
}

/// Checks `otp`, creates the user on first login, and opens a session.
pub async fn verify(app: &App, from: &SourceIp, mobile: Mobile, otp: Otp) -> Result<SessionIssued> {
    let l = app.config.login_limits;
    limit(app, &format!("verify-ip:{}", from.0), l.verify_per_ip).await?;
    let otps = &app.store.otps;
    let now = time::now();
    let Some(stored) = otps.find_one(doc! { "_id": mobile.as_str() }).await? else {
        return Err(AuthError::OtpInvalid.into());
    };
    if stored.used {
        return Err(AuthError::OtpInvalid.into());
    }
    if stored.attempts >= MAX_ATTEMPTS {
        return Err(AuthError::OtpLocked.into());
    }
    if time::from_bson(stored.expires_at) <= now {
        return Err(AuthError::OtpExpired.into());
    }
    let hashed = otp.hash(&mobile, &app.config.hash_key);
    if !constant_time_eq(hashed.as_bytes(), stored.otp_hash.as_bytes()) {
        otps.update_one(
            doc! { "_id": mobile.as_str(), "rev": stored.rev, "used": false },
            doc! { "$inc": { "attempts": 1 } },
        )
        .await?;
        return Err(AuthError::OtpInvalid.into());
    }
    // Claim the OTP: only one verify can flip `used`.
    let claimed = otps
        .update_one(
            doc! { "_id": mobile.as_str(), "rev": stored.rev, "used": false, "attempts": { "$lt": MAX_ATTEMPTS } },
            doc! { "$set": { "used": true } },
        )
        .await?;
    if claimed.modified_count != 1 {
        return Err(AuthError::OtpInvalid.into());
    }
    let user = find_or_create_user(app, &mobile).await?;
    let family = ObjectId::new().to_hex();
    let family_expires_at = now + delta(app.config.session_ttl);
    issue_tokens(app, &user, family, family_expires_at).await
}

/// A new access token and refresh token for the login session `family`.
async fn issue_tokens(
    app: &App,
    user: &UserDoc,
    family: String,
    family_expires_at: time::Timestamp,
) -> Result<SessionIssued> {
    let now = time::now();
    let access = Token::generate();
    let refresh = Token::generate();
    let expires_at = (now + delta(app.config.access_token_ttl)).min(family_expires_at);
    // The refresh token first: an access token never exists without a way to renew it.
    app.store
        .refresh_tokens
        .insert_one(RefreshDoc {
            token_hash: refresh.refresh_hash(&app.config.hash_key),
            family: family.clone(),
            user_id: user.id,
            created_at: time::to_bson(now),
            expires_at: time::to_bson(family_expires_at),
            used: false,
        })
        .await?;
    app.store
        .sessions
        .insert_one(SessionDoc {
            token_hash: access.hash(&app.config.hash_key),
            user_id: user.id,
            created_at: time::to_bson(now),
            expires_at: time::to_bson(expires_at),
            family: Some(family),
            family_expires_at: Some(time::to_bson(family_expires_at)),
        })
        .await?;
    Ok(SessionIssued {
        token: access.expose().to_owned(),
        expires_at,
        refresh_token: refresh.expose().to_owned(),
        refresh_expires_at: family_expires_at,
        user_id: UserId::from_object_id(user.id),
        display_name: app.experiments.present_name(&user.display_name),
    })
}

/// Exchanges a refresh token, once, for a new access token and refresh token of the same
/// login session. Presenting a refresh token that was already exchanged means it leaked (or
/// a client replayed it): the whole session ends, every token and socket of it.
pub async fn refresh(app: &App, token: &Token) -> Result<SessionIssued> {
    let refresh_tokens = &app.store.refresh_tokens;
    let hash = token.refresh_hash(&app.config.hash_key);
    let stored = refresh_tokens
        .find_one(doc! { "_id": &hash })
        .await?
        .ok_or(AuthError::Unauthorized)?;
    let family_expires_at = time::from_bson(stored.expires_at);
    if family_expires_at <= time::now() {
        return Err(AuthError::Unauthorized.into());
    }
    // Claim it: of two exchanges racing, one wins and the other is a reuse.
    let claimed = refresh_tokens
        .update_one(
            doc! { "_id": &hash, "used": false },
            doc! { "$set": { "used": true } },
        )
        .await?;
    if claimed.modified_count != 1 {
        end_session(app, &stored.family).await?;
        return Err(AuthError::RefreshReused.into());
    }
    let user = app
        .store
        .users
        .find_one(doc! { "_id": stored.user_id })
        .await?
        .ok_or(AuthError::Unauthorized)?;
    issue_tokens(app, &user, stored.family, family_expires_at).await
}

/// Ends the login session `family`: its access and refresh tokens are deleted and every
/// connection it authenticated is closed.
async fn end_session(app: &App, family: &str) -> Result<()> {
    app.store
        .sessions
        .delete_many(doc! { "$or": [ { "family": family }, { "_id": family } ] })
        .await?;
    app.store
        .refresh_tokens
        .delete_many(doc! { "family": family })
        .await?;
    outbox::end_connections(app, doc! { "session": family }).await?;
    Ok(())
}

async fn find_or_create_user(app: &App, mobile: &Mobile) -> Result<UserDoc> {
    let users = &app.store.users;
    for _ in 0..3 {
        let res = users
            .find_one_and_update(
                doc! { "mobile": mobile.as_str() },
                doc! { "$setOnInsert": {
                    "_id": ObjectId::new(),
                    "display_name": DisplayName::default_for(mobile).into_string(),
                    "created_at": time::to_bson(time::now()),
                } },
            )
            .upsert(true)
            .return_document(ReturnDocument::After)
            .await;
        match res {
            Ok(Some(user)) => return Ok(user),
            Ok(None) => {}
            // Two first logins at once: the unique index let one insert; read it back.
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(user) = users.find_one(doc! { "mobile": mobile.as_str() }).await? {
            return Ok(user);
        }
    }
    Err(StoreError::LockTimeout(format!("user:…{}", mobile.last_digits())).into())
}

/// The user a token belongs to, if the session is live.
pub async fn authenticate(app: &App, token: &Token) -> Result<UserId> {
    Ok(authenticate_session(app, token).await?.user)
}

/// The live login session an access token belongs to: its user, its id and when it ends.
pub async fn authenticate_session(app: &App, token: &Token) -> Result<Authenticated> {
    let sessions = &app.store.sessions;
    let keyed = token.hash(&app.config.hash_key);
    let session = match sessions.find_one(doc! { "_id": &keyed }).await? {
        Some(s) => s,
        // A session from before the hashes were keyed: move it under its keyed hash.
        None => {
            let legacy = sessions
                .find_one_and_delete(doc! { "_id": token.legacy_hash() })
                .await?
                .ok_or(AuthError::Unauthorized)?;
            let moved = SessionDoc {
                token_hash: keyed,
                ..legacy
            };
            match sessions.insert_one(&moved).await {
                Ok(_) => {}
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(e.into()),
            }
            moved
        }
    };
    if time::from_bson(session.expires_at) <= time::now() {
        return Err(AuthError::Unauthorized.into());
    }
    Ok(Authenticated {
        user: UserId::from_object_id(session.user_id),
        expires_at: time::from_bson(session.family_expires_at.unwrap_or(session.expires_at)),
        session: session.family.unwrap_or(session.token_hash),
    })
}

/// Ends the login session the access token belongs to: its access and refresh tokens are
/// dead from now on, and every WebSocket connection it authenticated is closed.
pub async fn logout(app: &App, token: &Token) -> Result<()> {
    let removed = app
        .store
        .sessions
        .find_one_and_delete(
            doc! { "_id": { "$in": [token.hash(&app.config.hash_key), token.legacy_hash()] } },
        )
        .await?;
    let Some(s) = removed else {
        return Err(Error::Auth(AuthError::Unauthorized));
    };
    let live = time::from_bson(s.expires_at) > time::now();
    end_session(app, s.family.as_deref().unwrap_or(&s.token_hash)).await?;
    if live {
        Ok(())
    } else {
        Err(Error::Auth(AuthError::Unauthorized))
    }
}

/// Ends every session of the token's user, on every device: all their tokens are dead and
/// all their WebSocket connections closed.
pub async fn logout_all(app: &App, token: &Token) -> Result<()> {
    let me = authenticate_session(app, token).await?;
    app.store
        .sessions
        .delete_many(doc! { "user_id": me.user.object_id() })
        .await?;
    app.store
        .refresh_tokens
        .delete_many(doc! { "user_id": me.user.object_id() })
        .await?;
    outbox::end_connections(app, doc! { "user_id": me.user.object_id() }).await?;
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
