//! Fault test #7, "same email, many doors": 50 simultaneous signups for one email in mixed letter
//! case, some with one shared Idempotency-Key and some without, against two replicas. Exactly one
//! user; every other answer is a replay of its 201, 409 `email_taken` or 409 `request_in_progress`.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Barrier;

use crate::support::{TestApp, assert_invariants, counts, signup_body, status_json};

/// "same@example.com" with the letters' case chosen by the bits of `i`.
fn mixed_case(local: &str, i: usize) -> String {
    format!("{local}@example.com")
        .chars()
        .enumerate()
        .map(|(n, c)| {
            if (i >> (n % 12)) & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// Which of the 50 requests carry the shared Idempotency-Key.
type Keyed = fn(usize) -> bool;

#[derive(Debug)]
struct Answer {
    keyed: bool,
    status: u16,
    replayed: bool,
    body: Value,
}

/// 50 signups for `local`@example.com released at once; `keyed(i)` says which carry the key.
async fn fifty_doors(apps: &[&TestApp], local: &str, keyed: Keyed) -> Vec<Answer> {
    let barrier = Arc::new(Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let app = apps[i % apps.len()];
            let url = format!("{}/api/auth/signup", app.address);
            let client = app.client.clone();
            let barrier = Arc::clone(&barrier);
            let body = signup_body("Door", &mixed_case(local, i), "Creator");
            let keyed = keyed(i);
            let key = format!("door-key-{local}");
            tokio::spawn(async move {
                let mut req = client.post(url).json(&body);
                if keyed {
                    req = req.header("idempotency-key", key);
                }
                barrier.wait().await;
                let res = req.send().await.expect("an answer");
                let replayed = res.headers().contains_key("idempotent-replayed");
                let (status, body) = status_json(res).await;
                Answer {
                    keyed,
                    status,
                    replayed,
                    body,
                }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }
    answers
}

fn check(answers: &[Answer]) {
    let originals: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == 201 && !a.replayed)
        .collect();
    assert_eq!(originals.len(), 1, "exactly one signup wins: {answers:#?}");
    let original = originals[0];
    for a in answers {
        let code = a.body["error"]["code"].as_str();
        match (a.status, a.replayed, code) {
            (201, false, _) => {}
            (201, true, _) => {
                assert!(a.keyed && original.keyed, "only a keyed winner is replayed");
                assert_eq!(a.body, original.body, "a replay is the winner's answer");
            }
            (409, false, Some("email_taken")) => {}
            (409, false, Some("request_in_progress")) => assert!(a.keyed),
            _ => panic!("unexpected answer {a:?}"),
        }
    }
}

#[tokio::test]
async fn fifty_signups_for_one_email_through_many_doors_make_exactly_one_user() {
    let a = TestApp::spawn().await;
    let b = a.another_instance().spawn().await;
    // Half with the shared key, half without; then all with it; then none with it.
    let rounds: [(&str, Keyed); 3] = [
        ("half", |i| i % 2 == 0),
        ("all", |_| true),
        ("none", |_| false),
    ];
    let mut summary = Vec::new();
    for (n, (local, keyed)) in rounds.into_iter().enumerate() {
        let answers = fifty_doors(&[&a, &b], local, keyed).await;
        check(&answers);
        let count = |status: u16, replayed: bool, code: Option<&str>| {
            answers
                .iter()
                .filter(|x| {
                    x.status == status
                        && x.replayed == replayed
                        && x.body["error"]["code"].as_str() == code
                })
                .count()
        };
        summary.push(format!(
            "{local}: 1 created, {} replayed, {} email_taken, {} request_in_progress",
            count(201, true, None),
            count(409, false, Some("email_taken")),
            count(409, false, Some("request_in_progress")),
        ));
        let users = (n + 1) as i64;
        assert_eq!(counts(&a.db).await, (users, users, users));
        let stored: i64 = sqlx::query_scalar(
            "select count(*) from auth.users where lower(email) = $1 || '@example.com'",
        )
        .bind(local)
        .fetch_one(&a.db.pool)
        .await
        .unwrap();
        assert_eq!(stored, 1, "one user for {local}@example.com");
    }
    println!("{}", summary.join("\n"));
    assert_invariants(&a.db).await;
}
