//! GoTrue's `before_user_created` auth hook as a Postgres function: its input, as GoTrue v2.196.0
//! sends it (`internal/hooks/v0hooks`: `{"metadata": {"uuid", "time", "name", "ip_address"},
//! "user": models.User}`), for the user the signup is about to insert. The call itself is in the
//! signup transaction (`store::signup`).

use std::net::IpAddr;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::domain::NewUser;

/// The hook's input for `user`, about to be inserted as `user_id` at `now`.
pub fn before_user_created_input(
    user_id: Uuid,
    user: &NewUser,
    client_ip: Option<IpAddr>,
    now: OffsetDateTime,
) -> Value {
    let time = now.format(&Rfc3339).unwrap_or_default();
    let mut metadata = json!({
        "uuid": Uuid::new_v4(),
        "time": time,
        "name": "before-user-created",
    });
    if let Some(ip) = client_ip {
        metadata["ip_address"] = json!(ip.to_string());
    }
    // The fields of GoTrue's models.User JSON that a signup sets (the password never).
    let mut user_metadata = serde_json::Map::new();
    if let Some(name) = user.profile.name() {
        user_metadata.insert("name".to_owned(), json!(name));
    }
    json!({
        "metadata": metadata,
        "user": {
            "id": user_id,
            "aud": "authenticated",
            "role": "authenticated",
            "email": user.email.as_str(),
            "phone": "",
            "app_metadata": {
                "provider": "email",
                "providers": ["email"],
                "role": user.role.as_str(),
            },
            "user_metadata": user_metadata,
            "identities": [],
            "created_at": time,
            "updated_at": time,
            "is_anonymous": false,
        }
    })
}
