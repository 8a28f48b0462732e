use axum::Json;
use serde_json::{Value, json};

/// `GET /healthz`: the process is alive. No I/O.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}
