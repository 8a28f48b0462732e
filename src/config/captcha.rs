//! Captcha on signup (CAPTCHA_*), meaning what GoTrue's GOTRUE_SECURITY_CAPTCHA_* mean.

use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;
use super::parse::{Lookup, millis, parse_opt, parse_or, required};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptchaProvider {
    Hcaptcha,
    Turnstile,
}

impl CaptchaProvider {
    fn parse(v: &str) -> Result<Self, String> {
        match v.to_ascii_lowercase().as_str() {
            "hcaptcha" => Ok(Self::Hcaptcha),
            "turnstile" => Ok(Self::Turnstile),
            _ => Err("expected hcaptcha or turnstile".to_owned()),
        }
    }

    /// The provider's siteverify endpoint, as GoTrue calls it.
    pub fn default_verify_url(self) -> &'static str {
        match self {
            Self::Hcaptcha => "https://hcaptcha.com/siteverify",
            Self::Turnstile => "https://challenges.cloudflare.com/turnstile/v0/siteverify",
        }
    }
}

#[derive(Clone)]
pub struct CaptchaSettings {
    pub provider: CaptchaProvider,
    pub secret: SecretString,
    pub timeout: Duration,
    /// May carry credentials or a query (a proxy's token): shown by `Debug` without them.
    pub verify_url: String,
}

/// For the startup log: the verify URL without credentials, query or fragment.
impl std::fmt::Debug for CaptchaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptchaSettings")
            .field("provider", &self.provider)
            .field("secret", &self.secret)
            .field("timeout", &self.timeout)
            .field("verify_url", &url_for_logs(&self.verify_url))
            .finish()
    }
}

/// `url` without user, password, query and fragment (what a log may show of it).
fn url_for_logs(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

impl CaptchaSettings {
    /// `None` when CAPTCHA_PROVIDER is unset or empty (captcha off).
    pub(super) fn from_lookup(get: &Lookup<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(provider) = parse_opt(get, "CAPTCHA_PROVIDER", CaptchaProvider::parse)? else {
            return Ok(None);
        };
        let secret = required(get, "CAPTCHA_SECRET", |v| Ok(v.to_owned()))?;
        let timeout = parse_or(
            get,
            "CAPTCHA_TIMEOUT_MS",
            Duration::from_secs(10),
            millis(600_000),
        )?;
        let verify_url = parse_or(
            get,
            "CAPTCHA_VERIFY_URL",
            provider.default_verify_url().to_owned(),
            |url| {
                if url.starts_with("https://") || url.starts_with("http://") {
                    Ok(url.to_owned())
                } else {
                    Err("expected an http:// or https:// URL".to_owned())
                }
            },
        )?;
        Ok(Some(Self {
            provider,
            secret: SecretString::from(secret),
            timeout,
            verify_url,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verify_url_is_logged_without_credentials_or_query() {
        let settings = CaptchaSettings {
            provider: CaptchaProvider::Hcaptcha,
            secret: SecretString::from("s3cret"),
            timeout: Duration::from_secs(1),
            verify_url: "https://user:pa55@verify.example/siteverify?token=t0ken#frag".to_owned(),
        };
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("https://verify.example/siteverify"),
            "{shown}"
        );
        for hidden in ["user", "pa55", "t0ken", "frag", "s3cret"] {
            assert!(!shown.contains(hidden), "{hidden} in {shown}");
        }
    }
}
