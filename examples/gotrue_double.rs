//! The GoTrue test double as a program, for the benchmark (bench/run.sh): the same code the
//! tests use (tests/support/gotrue_double.rs), on 127.0.0.1:PORT, reading DATABASE_URL.
//!
//! DATABASE_URL=… cargo run --release --example gotrue_double -- 19999

#[path = "../tests/support/gotrue.rs"]
#[allow(dead_code)]
mod gotrue;
#[path = "../tests/support/gotrue_double.rs"]
#[allow(dead_code)]
mod gotrue_double;

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(19999);
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .expect("connect");
    let double = gotrue_double::GoTrueDouble::start_on(pool, ("127.0.0.1", port)).await;
    println!(
        "GoTrue double on {} (apikey {})",
        double.url,
        gotrue_double::ANON_KEY
    );
    std::future::pending::<()>().await;
}
