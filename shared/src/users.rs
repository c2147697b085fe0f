//! The current user's profile: read it, rename it. Display names shown to clients go through
//! identity drift (`experiments`); the stored name never drifts.

use bson::doc;
use mongodb::options::ReturnDocument;

use crate::api::Profile;
use crate::app::App;
use crate::domain::{DisplayName, UserId};
use crate::error::{AuthError, Result};
use crate::store::UserDoc;
use crate::time;

fn present(app: &App, user: UserDoc) -> Profile {
    Profile {
        user_id: UserId::from_object_id(user.id),
        mobile: user.mobile,
        display_name: app.experiments.present_name(&user.display_name),
        created_at: time::from_bson(user.created_at),
    }
}

/// `GET /users/me`
pub async fn me(app: &App, user: UserId) -> Result<Profile> {
    let doc = app
        .store
        .users
        .find_one(doc! { "_id": user.object_id() })
        .await?
        // A session whose user no longer exists is no session.
        .ok_or(AuthError::Unauthorized)?;
    Ok(present(app, doc))
}

/// `PATCH /users/me`
pub async fn rename(app: &App, user: UserId, name: DisplayName) -> Result<Profile> {
    let doc = app
        .store
        .users
        .find_one_and_update(
            doc! { "_id": user.object_id() },
            doc! { "$set": { "display_name": name.as_str() } },
        )
        .return_document(ReturnDocument::After)
        .await?
        .ok_or(AuthError::Unauthorized)?;
    Ok(present(app, doc))
}

/// Whether a user exists. Users are never deleted, so a yes is remembered for the life of
/// the process (a warm Lambda container asks the database once per user).
pub async fn exists(app: &App, user: UserId) -> Result<bool> {
    if app.known_users.get(&user).is_some() {
        return Ok(true);
    }
    let found = app
        .store
        .users
        .clone_with_type::<bson::Document>()
        .find_one(doc! { "_id": user.object_id() })
        .projection(doc! { "_id": 1 })
        .await?
        .is_some();
    if found {
        app.known_users.put(user, ());
    }
    Ok(found)
}
