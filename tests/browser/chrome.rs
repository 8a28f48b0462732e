//! Headless Chromium (Debian's `chromium` and `chromium-driver`) driven over WebDriver with
//! fantoccini, and the example page (`examples/web/`) served from an origin of its own, with a
//! `config.js` pointing it at the test's service.

use std::process::Stdio;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::io::AsyncReadExt;

const INSTALL: &str = "The browser tests need headless Chromium and ChromeDriver: install Debian's \
                       packages with `apt-get install chromium chromium-driver` (scripts/test.sh \
                       and .ci/run do it).";

/// One ChromeDriver with one headless Chromium session; both end when this is dropped.
pub struct Browser {
    pub client: Client,
    _driver: tokio::process::Child,
    profile: std::path::PathBuf,
}

impl Browser {
    /// Starts ChromeDriver on a port of its own choosing (read from its first lines) and opens a
    /// session in a new, empty profile. Panics with how to install Chromium when it is missing.
    pub async fn start() -> Self {
        let (Ok(_), Ok(_)) = (which("chromedriver"), which("chromium")) else {
            panic!("{INSTALL}");
        };
        // A ChromeDriver that exits before it announced its port (seen once in a CI run, with
        // six browsers starting side by side) is started again, up to three times.
        let mut started = None;
        for _ in 0..3 {
            let mut driver = tokio::process::Command::new("chromedriver")
                .arg("--port=0")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap_or_else(|e| panic!("{INSTALL} (chromedriver did not start: {e})"));
            let mut stdout = driver.stdout.take().expect("piped stdout");
            if let Some(port) = announced_port(&mut stdout).await {
                started = Some((driver, stdout, port));
                break;
            }
        }
        let (driver, mut stdout, port) =
            started.unwrap_or_else(|| panic!("chromedriver never said which port it listens on"));
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink).await;
        });

        let profile = std::env::temp_dir().join(format!(
            "atomic-signup-chromium-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=900,1100",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("{INSTALL} (no Chromium session: {e})"));
        Self {
            client,
            _driver: driver,
            profile,
        }
    }

    /// Ends the session (the driver is killed on drop).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }

    /// Types `text` into the element at `css` (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let input = self.client.find(Locator::Css(css)).await.unwrap();
        input.clear().await.unwrap();
        input.send_keys(text).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    pub async fn displayed(&self, css: &str) -> bool {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits (10 s at most) until the status line `id` shows an outcome (`ok` or `error`, not
    /// `busy`); returns its kind and text.
    pub async fn outcome(&self, id: &str) -> (String, String) {
        let css = format!("#{id}[data-kind=ok], #{id}[data-kind=error]");
        let status = self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(&css))
            .await
            .unwrap_or_else(|e| panic!("#{id} never showed an outcome: {e}"));
        let kind = status.attr("data-kind").await.unwrap().unwrap_or_default();
        (kind, status.text().await.unwrap())
    }
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

/// The example page (`examples/web/`) served on 127.0.0.1, on a port of its own, with a
/// `config.js` of the test's (see [`ExamplePage::use_api`]) in place of the one in the directory.
pub struct ExamplePage {
    /// `http://127.0.0.1:<port>`.
    pub origin: String,
    api: Arc<OnceLock<String>>,
}

impl ExamplePage {
    /// Points the page at `api`: its `config.js` says `export const apiBase = "<api>";`, as a
    /// deployment's would. Once per page; until then `config.js` answers 503 (the page cannot
    /// start).
    pub fn use_api(&self, api: &str) {
        self.api
            .set(api.to_owned())
            .expect("the page's API is set once");
    }
}

/// Starts serving `examples/web/` (the origin is known at once, e.g. for the service's CORS
/// settings; the API is set later with [`ExamplePage::use_api`]).
pub async fn serve_example_page() -> ExamplePage {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/web");
    let api = Arc::new(OnceLock::<String>::new());
    let config = {
        let api = api.clone();
        get(move || async move {
            match api.get() {
                Some(api) => (
                    [
                        (CONTENT_TYPE, "text/javascript"),
                        (CACHE_CONTROL, "no-store"),
                    ],
                    format!("export const apiBase = {};\n", json!(api)),
                )
                    .into_response(),
                None => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the test has not set the page's API (ExamplePage::use_api)",
                )
                    .into_response(),
            }
        })
    };
    let app = axum::Router::new()
        .route("/config.js", config)
        .fallback_service(tower_http::services::ServeDir::new(dir));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    ExamplePage { origin, api }
}

/// The port ChromeDriver announces on its first lines ("ChromeDriver was started successfully on
/// port 44831."); `None` when it closes its output first, or says nothing within 20 s.
async fn announced_port(stdout: &mut tokio::process::ChildStdout) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(20), async {
        let mut seen = String::new();
        let mut buf = [0u8; 512];
        loop {
            let n = stdout.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(rest) = seen.split("started successfully on port ").nth(1)
                && let Some(end) = rest.find('.')
            {
                return rest[..end].parse::<u16>().ok();
            }
        }
    })
    .await
    .ok()
    .flatten()
}
