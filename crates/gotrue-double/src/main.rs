//! The GoTrue test double as a program, for the benchmark (bench/run.sh): the same code the
//! tests use, on 127.0.0.1:PORT, reading DATABASE_URL.
//!
//! DATABASE_URL=… cargo run --release -p gotrue-double -- 19999

use std::process::ExitCode;

use gotrue_double::{ANON_KEY, GoTrueDouble};

#[tokio::main]
async fn main() -> ExitCode {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        None => 19999,
        Some(Ok(port)) => port,
        Some(Err(_)) => {
            eprintln!("usage: gotrue-double [PORT]");
            return ExitCode::from(2);
        }
    };
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL is not set");
        return ExitCode::from(2);
    };
    let pool = match sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
    {
        Ok(pool) => pool,
        Err(err) => {
            eprintln!("cannot connect to the database: {err}");
            return ExitCode::FAILURE;
        }
    };
    let double = GoTrueDouble::start_on(pool, ("127.0.0.1", port)).await;
    println!("GoTrue double on {} (apikey {ANON_KEY})", double.url);
    std::future::pending::<()>().await;
    ExitCode::SUCCESS
}
