//! GoTrue's auth hooks as the service calls them: a [`HookTarget`] is a Postgres function
//! ([`PgHook`], called with a statement of the caller's: `store::signup`, `store::hook_outbox`)
//! or an HTTP endpoint ([`HttpHook`]).
//!
//! An HTTP auth hook is called as GoTrue v2.196.0 calls one (`internal/hooks/hookshttp`): a JSON
//! POST signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`:
//! `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` per secret, `, `-separated), 5 s for the
//! whole call including retries, at most 3 attempts: a 429 or 503 with `Retry-After` is tried
//! again at once, a failed connection after 2 s. 204, and 200/202 with a JSON body without an
//! `error`, accept; 200/202 with `{"error": {"message", "http_code"?}}` refuse, as do 400 and 401.
//! Redirects are never followed (the hook's URL is the only place the user's data goes).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::{Hook, WebhookSecret};

/// Where an auth hook is called (HOOK_*_USER_CREATED_URI), ready to call.
#[derive(Debug, Clone)]
pub enum HookTarget {
    /// A Postgres function, called on the service's connection.
    Pg(PgHook),
    /// An HTTP endpoint, called signed.
    Http(HttpHook),
}

impl HookTarget {
    pub fn new(hook: &Hook) -> Result<Self, reqwest::Error> {
        Ok(match hook {
            Hook::PgFunction { schema, function } => Self::Pg(PgHook::new(schema, function)),
            Hook::Http { url, secrets } => Self::Http(HttpHook::new(url, secrets)?),
        })
    }
}

/// GoTrue's timeout for a Postgres function hook.
pub const PG_HOOK_TIMEOUT: Duration = Duration::from_secs(2);

/// A `pg-functions://…/<schema>/<function>` hook.
#[derive(Debug, Clone)]
pub struct PgHook {
    /// `"schema"."function"`, both parts checked identifiers (config::hooks).
    pub function: String,
    pub timeout: Duration,
}

impl PgHook {
    pub fn new(schema: &str, function: &str) -> Self {
        Self {
            function: format!("\"{schema}\".\"{function}\""),
            timeout: PG_HOOK_TIMEOUT,
        }
    }
}

/// GoTrue's limits.
const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: usize = 3;
const BACKOFF: Duration = Duration::from_secs(2);
const ANSWER_LIMIT: usize = 200 * 1024;

/// What the hook said.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// The status to answer (4xx/5xx) and the hook's message.
    Refuse {
        status: u16,
        message: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// Out of time, unreachable, or busy on every attempt: try again later.
    #[error("the hook could not be reached in time")]
    Unavailable,
    /// An answer the service cannot use (a status, content type or body GoTrue refuses too).
    #[error("the hook answered {0}")]
    Invalid(String),
}

#[derive(Clone)]
pub struct HttpHook {
    client: reqwest::Client,
    url: String,
    secrets: Vec<WebhookSecret>,
    timeout: Duration,
    backoff: Duration,
}

impl std::fmt::Debug for HttpHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpHook")
    }
}

impl HttpHook {
    pub fn new(url: &str, secrets: &[WebhookSecret]) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            client,
            url: url.to_owned(),
            secrets: secrets.to_vec(),
            timeout: TIMEOUT,
            backoff: BACKOFF,
        })
    }

    /// Calls the hook with `input` (see the module's comment), each attempt with a new
    /// `webhook-id`, as GoTrue does.
    pub async fn call(&self, input: &serde_json::Value) -> Result<Verdict, HookError> {
        self.call_with_id(input, None).await
    }

    /// Calls the hook with `input`, every attempt with `webhook-id: id` (the after_user_created
    /// hook's id fixed per user, so that a receiver can drop what it already had).
    pub async fn call_as(&self, input: &serde_json::Value, id: &str) -> Result<Verdict, HookError> {
        self.call_with_id(input, Some(id)).await
    }

    #[tracing::instrument(name = "auth_hook", skip_all, fields(otel.kind = "client"))]
    async fn call_with_id(
        &self,
        input: &serde_json::Value,
        id: Option<&str>,
    ) -> Result<Verdict, HookError> {
        let body = serde_json::to_vec(input).map_err(|e| HookError::Invalid(e.to_string()))?;
        match tokio::time::timeout(self.timeout, self.attempts(&body, id)).await {
            Ok(verdict) => verdict,
            Err(_) => Err(HookError::Unavailable),
        }
    }

    async fn attempts(&self, body: &[u8], id: Option<&str>) -> Result<Verdict, HookError> {
        for attempt in 1..=ATTEMPTS {
            let id = id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
            let timestamp = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
            let signatures = self
                .secrets
                .iter()
                .map(|secret| sign(secret, &id, &timestamp, body))
                .collect::<Result<Vec<_>, _>>()?;
            let sent = self
                .client
                .post(&self.url)
                .headers(crate::traces::current_headers())
                .header("content-type", "application/json")
                .header("webhook-id", &id)
                .header("webhook-timestamp", &timestamp)
                .header("webhook-signature", signatures.join(", "))
                .body(body.to_vec())
                .send()
                .await;
            let answer = match sent {
                Ok(answer) => answer,
                Err(_) if attempt < ATTEMPTS => {
                    tokio::time::sleep(self.backoff).await;
                    continue;
                }
                Err(_) => return Err(HookError::Unavailable),
            };
            match answer.status().as_u16() {
                204 => return Ok(Verdict::Accept),
                200 | 202 => return read_verdict(answer).await,
                429 | 503 if answer.headers().contains_key("retry-after") => continue,
                429 | 503 => return Err(HookError::Unavailable),
                status @ (400 | 401) => {
                    return Ok(Verdict::Refuse {
                        status: 500,
                        message: format!("the signup was refused by its hook (HTTP {status})"),
                    });
                }
                status => return Err(HookError::Invalid(format!("HTTP {status}"))),
            }
        }
        Err(HookError::Unavailable)
    }
}

/// A hook's answer that refuses, as GoTrue reads it (`hookserrors.Check`): `{"error": {"message":
/// non-empty, "http_code"?}}`; the status is the hook's when it is a 4xx or 5xx, else 500 (GoTrue
/// takes 500 when there is none). The message is cut to 500 characters.
pub fn refusal(answer: Option<&serde_json::Value>) -> Option<(u16, String)> {
    let error = answer?.get("error")?;
    let message = error.get("message")?.as_str().filter(|m| !m.is_empty())?;
    let status = error
        .get("http_code")
        .and_then(serde_json::Value::as_u64)
        .and_then(|code| u16::try_from(code).ok())
        .filter(|code| (400..=599).contains(code))
        .unwrap_or(500);
    Some((status, message.chars().take(500).collect()))
}

/// Standard Webhooks' symmetric signature: `v1,` and the base64 HMAC-SHA256, keyed with the
/// decoded secret, of `id.timestamp.body`.
fn sign(
    secret: &WebhookSecret,
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> Result<String, HookError> {
    let key = STANDARD
        .decode(secret.key())
        .map_err(|_| HookError::Invalid("a secret that is not base64".to_owned()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| HookError::Invalid("an unusable secret".to_owned()))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// A 200/202: JSON (by its content type), at most 200 KiB, refusing when it carries an error.
async fn read_verdict(answer: reqwest::Response) -> Result<Verdict, HookError> {
    let json = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(HookError::Invalid("without a JSON content type".to_owned()));
    }
    let body = crate::answer::read_at_most(answer, ANSWER_LIMIT)
        .await
        .map_err(|_| HookError::Unavailable)?
        .ok_or_else(|| HookError::Invalid("with a body over 200 KiB".to_owned()))?;
    let value: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    Ok(match refusal(value.as_ref()) {
        Some((status, message)) => Verdict::Refuse { status, message },
        None => Verdict::Accept,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_hook_refuses_as_gotrue_reads_its_answer() {
        assert_eq!(super::refusal(None), None);
        let refusal = |answer: serde_json::Value| super::refusal(Some(&answer));
        assert_eq!(refusal(json!({})), None);
        assert_eq!(refusal(json!({"decision": "continue"})), None);
        assert_eq!(
            refusal(json!({"error": {"http_code": 403}})),
            None,
            "no message: no refusal"
        );
        assert_eq!(
            refusal(json!({"error": {"http_code": 403, "message": "no"}})),
            Some((403, "no".to_owned()))
        );
        assert_eq!(
            refusal(json!({"error": {"message": "no"}})),
            Some((500, "no".to_owned()))
        );
        assert_eq!(
            refusal(json!({"error": {"http_code": 200, "message": "no"}})),
            Some((500, "no".to_owned()))
        );
        let long = refusal(json!({"error": {"message": "x".repeat(5000)}})).unwrap();
        assert_eq!(long.1.len(), 500);
    }

    #[test]
    fn the_signature_is_standard_webhooks() {
        // The example of the Standard Webhooks specification.
        let secret = WebhookSecret::parse("v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
