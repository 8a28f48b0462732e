use std::process::ExitCode;

use atomic_signup::cli::{Cli, Command};
use atomic_signup::config::{DatabaseSettings, Settings};
use atomic_signup::{config, startup, store, telemetry};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is fine; a broken one is reported before anything else.
    if let Err(message) = config::load_dotenv() {
        eprintln!("error: cannot read .env: {message}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    telemetry::init();

    let result = match cli.command.unwrap_or_default() {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            // Once, on stderr (where a container's runtime collects it too).
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), String> {
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    tracing::info!(?settings, "starting");
    let app = startup::Application::build(settings)
        .await
        .map_err(|e| format!("cannot start: {e}"))?;
    app.run_until_stopped()
        .await
        .map_err(|e| format!("server failed: {e}"))
}

async fn migrate() -> Result<(), String> {
    let database = DatabaseSettings::from_env().map_err(|e| e.to_string())?;
    let pool = database
        .connect_one()
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    store::migrate(&pool)
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    tracing::info!("migrations applied");
    Ok(())
}
