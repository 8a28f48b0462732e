//! Captcha verification (hCaptcha or Cloudflare Turnstile), as GoTrue does it before a signup:
//! the provider's siteverify endpoint is POSTed the secret, the client's token and its IP, as a
//! form, and answers `{"success": bool, "error-codes": [...]}`.

use std::net::IpAddr;

use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::config::CaptchaSettings;

#[derive(Debug, thiserror::Error)]
pub enum CaptchaError {
    /// The provider answered, and said no (its error codes, e.g. `invalid-input-response`).
    #[error("the captcha provider refused the token: {}", .0.join(", "))]
    Refused(Vec<String>),
    #[error("the captcha provider did not answer in time")]
    Timeout(#[source] reqwest::Error),
    #[error("the captcha provider could not be reached or answered nonsense")]
    Unavailable(#[source] reqwest::Error),
    /// Any other status, a redirect included: redirects are never followed, since the client
    /// would send the secret again to wherever the answer points.
    #[error("the captcha provider answered HTTP {0}")]
    Status(u16),
}

impl CaptchaError {
    /// A failed request or body read: out of time, or otherwise unavailable. The error forgets
    /// the URL (it may carry credentials or a query, and is logged with the error).
    fn from_transport(err: reqwest::Error) -> Self {
        let err = err.without_url();
        if err.is_timeout() {
            Self::Timeout(err)
        } else {
            Self::Unavailable(err)
        }
    }
}

#[derive(Clone)]
pub struct CaptchaVerifier {
    client: reqwest::Client,
    settings: CaptchaSettings,
}

#[derive(Deserialize)]
struct Verification {
    success: bool,
    #[serde(default, rename = "error-codes")]
    error_codes: Vec<String>,
}

impl CaptchaVerifier {
    pub fn new(settings: CaptchaSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client, settings })
    }

    /// `Ok` only when the provider said `success: true` for `token`.
    #[tracing::instrument(name = "captcha", skip_all, fields(otel.kind = "client"))]
    pub async fn verify(&self, token: &str, client_ip: Option<IpAddr>) -> Result<(), CaptchaError> {
        let ip = client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let form = [
            ("secret", self.settings.secret.expose_secret()),
            ("response", token),
            ("remoteip", ip.as_str()),
        ];
        let answer = self
            .client
            .post(&self.settings.verify_url)
            .headers(crate::traces::current_headers())
            .form(&form)
            .send()
            .await
            .map_err(CaptchaError::from_transport)?;
        let status = answer.status();
        if !status.is_success() {
            return Err(CaptchaError::Status(status.as_u16()));
        }
        let verification: Verification =
            answer.json().await.map_err(CaptchaError::from_transport)?;
        if verification.success {
            Ok(())
        } else {
            Err(CaptchaError::Refused(verification.error_codes))
        }
    }
}
