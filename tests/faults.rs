//! Faults and load (growing; see the "Hold up under faults" issue): every test ends with the
//! invariant checker (tests/invariants.sql) at zero.

mod support;

use std::time::Duration;

use atomic_signup::password::HashSettings;
use support::{TestApp, assert_invariants, signup_body};

fn raise_open_file_limit() {
    // 1,000 client sockets and 1,000 server sockets live in this one process.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_thousand_concurrent_signups_get_only_201_or_503_overloaded() {
    // Every 201 is in the database; every other answer is a clean 503 with Retry-After.
    raise_open_file_limit();
    let app = TestApp::spawn_with(|s| {
        s.hash_queue_per_core = 2;
        s.argon2 = HashSettings {
            memory_kib: 4096,
            iterations: 2,
            parallelism: 1,
        };
    })
    .await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let requests = (0..1000).map(|i| {
        let client = client.clone();
        let url = format!("{}/api/auth/signup", app.address);
        let body = signup_body("Load", &format!("load{i}@example.com"), "Creator");
        tokio::spawn(async move {
            let res = client
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("an answer");
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = res.json().await.expect("a JSON body");
            (
                status,
                retry_after,
                body["error"]["code"].as_str().map(str::to_owned),
            )
        })
    });
    let mut created = 0;
    let mut overloaded = 0;
    for task in futures::future::join_all(requests).await {
        let (status, retry_after, code) = task.expect("no panic");
        match status {
            201 => created += 1,
            503 => {
                assert_eq!(code.as_deref(), Some("overloaded"));
                assert_eq!(retry_after.as_deref(), Some("1"));
                overloaded += 1;
            }
            other => panic!("unexpected status {other} ({code:?})"),
        }
    }
    println!(
        "1,000 concurrent signups: {created} created, {overloaded} overloaded; test process peak RSS {} MiB",
        rss_kib() / 1024
    );
    assert_eq!(created + overloaded, 1000);
    assert!(
        created >= 1 && overloaded >= 1,
        "{created} created, {overloaded} overloaded"
    );
    let (users, identities, profiles) = support::counts(&app.db).await;
    assert_eq!((users, identities, profiles), (created, created, created));
    assert_invariants(&app.db).await;
}
