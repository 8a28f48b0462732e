//! Concealment by timing: answers that must not tell whether an email is registered take the
//! same time, whatever the email. Each test alternates the two kinds of request (so drift of the
//! machine hits both alike), and compares medians and the Mann-Whitney U statistic. The figures
//! are printed (`cargo test --test timing -- --nocapture`) for the README's guarantees.
//!
//! The tests of this binary run one at a time (a lock), so they do not load each other.

mod support;

use std::time::Instant;

use atomic_signup::password::HashSettings;
use support::{TestApp, assert_error, signup_body, status_json};
use tokio::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// Pairs of samples per comparison.
const SAMPLES: usize = 70;

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The z score of the Mann-Whitney U test (normal approximation, ties ranked by their mean).
fn mann_whitney_z(a: &[f64], b: &[f64]) -> f64 {
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|x| (*x, true))
        .chain(b.iter().map(|x| (*x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut rank_a = 0.0;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_a += all[i..=j].iter().filter(|x| x.1).count() as f64 * rank;
        i = j + 1;
    }
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let u = rank_a - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let sd = (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt();
    (u - mean) / sd
}

/// Asserts that two samples (milliseconds) cannot be told apart: medians within 1 ms, and no
/// significant difference (|z| < 3.3, p ≈ 0.001; the review's leak measured z = 4.5).
fn assert_indistinguishable(what: &str, a_name: &str, a: &[f64], b_name: &str, b: &[f64]) {
    let (ma, mb) = (median(a), median(b));
    let z = mann_whitney_z(a, b);
    println!(
        "{what}: median {a_name} {ma:.2} ms, {b_name} {mb:.2} ms (difference {:.2} ms), \
         Mann-Whitney z = {z:.2}, {} samples each",
        (ma - mb).abs(),
        a.len()
    );
    assert!(
        (ma - mb).abs() < 1.0,
        "{what}: medians differ by {:.2} ms",
        (ma - mb).abs()
    );
    assert!(z.abs() < 3.3, "{what}: significant difference, z = {z:.2}");
}

async fn timed<F: Future<Output = reqwest::Response>>(request: F) -> (f64, reqwest::Response) {
    let started = Instant::now();
    let res = request.await;
    (started.elapsed().as_secs_f64() * 1000.0, res)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concealed_signup_takes_as_long_for_a_registered_email_as_for_a_new_one() {
    let _one = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn_with(|s| s.conceal_existing_emails = true).await;
    let taken = signup_body("Taken", "taken@example.com", "Creator");
    assert_eq!(app.signup(&taken).await.status(), 202);
    // Warm up connections and caches on both paths.
    for i in 0..5 {
        let _ = app
            .signup(&signup_body(
                "W",
                &format!("warm{i}@example.com"),
                "Creator",
            ))
            .await;
        let _ = app.signup(&taken).await;
    }
    let (mut new, mut existing) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let fresh = signup_body("New", &format!("new{i}@example.com"), "Creator");
        let (ms, res) = timed(app.signup(&fresh)).await;
        assert_eq!(res.status(), 202);
        new.push(ms);
        let (ms, res) = timed(app.signup(&taken)).await;
        assert_eq!(res.status(), 202);
        existing.push(ms);
    }
    assert_indistinguishable(
        "concealed signup",
        "new email",
        &new,
        "registered email",
        &existing,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_login_takes_as_long_for_an_unknown_or_banned_email_as_for_a_wrong_password() {
    let _one = ONE_AT_A_TIME.lock().await;
    // A hash that costs a few milliseconds, so a skipped one would show.
    let app = TestApp::spawn_with_gotrue(|s| {
        s.argon2 = HashSettings {
            memory_kib: 4096,
            iterations: 2,
            parallelism: 1,
        };
        s.require_email_confirmation = false;
    })
    .await;
    for email in ["known@example.com", "banned@example.com"] {
        let (status, body) =
            status_json(app.signup(&signup_body("K", email, "Creator")).await).await;
        assert_eq!(status, 201, "{body}");
    }
    sqlx::query(
        "update auth.users set banned_until = 'infinity' where email = 'banned@example.com'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let wrong = "not the password";
    for _ in 0..5 {
        let _ = app.login("known@example.com", wrong).await;
        let _ = app.login("nobody@example.com", wrong).await;
    }
    let (mut known, mut unknown, mut banned) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        let (ms, res) = timed(app.login("known@example.com", wrong)).await;
        assert_error(res, 401, "invalid_credentials").await;
        known.push(ms);
        let (ms, res) = timed(app.login(&format!("nobody{i}@example.com"), wrong)).await;
        assert_error(res, 401, "invalid_credentials").await;
        unknown.push(ms);
        let (ms, res) = timed(app.login("banned@example.com", wrong)).await;
        assert_error(res, 401, "invalid_credentials").await;
        banned.push(ms);
    }
    assert_indistinguishable(
        "failed login",
        "wrong password",
        &known,
        "unknown email",
        &unknown,
    );
    assert_indistinguishable(
        "failed login",
        "wrong password",
        &known,
        "banned user",
        &banned,
    );
}
