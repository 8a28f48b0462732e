//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::Json;
use utoipa::OpenApi;

use super::{health, login, signup};
use crate::error::{ErrorBody, ErrorResponse};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "atomic-signup",
        description = "Supabase signup that never leaves an orphaned auth user: auth.users, \
                       auth.identities and public.profiles in one SQL transaction; login through GoTrue."
    ),
    paths(
        signup::signup,
        login::login,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json
    ),
    components(schemas(
        signup::SignupRequest,
        signup::SignupResponse,
        signup::ConcealedResponse,
        login::LoginRequest,
        login::LoginResponse,
        login::SessionBody,
        login::UserBody,
        login::ProfileBody,
        health::Readiness,
        health::ReadinessChecks,
        ErrorResponse,
        ErrorBody
    )),
    tags(
        (name = "auth", description = "Signup and login"),
        (name = "operations", description = "Health, readiness, metrics, this document")
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
