use std::process::ExitCode;

use atomic_signup::cli::{Cli, Command};
use atomic_signup::config::{DatabaseSettings, GoTrueSettings, HookSettings, Settings};
use atomic_signup::{check, config, healthcheck, repair, startup, store, telemetry};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing ./.env is fine; a broken one (or a missing ENV_FILE) is reported first.
    if let Err(message) = config::load_dotenv() {
        eprintln!("error: cannot read .env: {message}");
        return ExitCode::FAILURE;
    }
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Check { .. } | Command::Repair { .. }) => telemetry::init_on_stderr(),
        _ => telemetry::init(),
    }

    let result = match cli.command.unwrap_or_default() {
        Command::Serve => serve().await,
        Command::Migrate => migrate().await,
        Command::Check { json } => return check(json).await,
        Command::Repair {
            apply,
            json,
            default_role,
            skip_invalid,
            set,
            delete_unconfirmed_older_than,
        } => {
            let options = repair_options(
                apply,
                default_role,
                skip_invalid,
                &set,
                delete_unconfirmed_older_than.as_deref(),
            );
            return match options {
                Ok(options) => repair(options, json).await,
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::FAILURE
                }
            };
        }
        Command::Healthcheck => healthcheck().await,
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
    let served = app
        .run_until_stopped()
        .await
        .map_err(|e| format!("server failed: {e}"));
    // The spans still queued go to the collector, within a short flush.
    atomic_signup::traces::shutdown().await;
    served
}

async fn healthcheck() -> Result<(), String> {
    let bind = config::bind_addr_from_env().map_err(|e| e.to_string())?;
    healthcheck::run(bind).await
}

/// One direct, privileged connection for `migrate` and `repair`: MIGRATE_DATABASE_URL, else
/// DATABASE_URL, refused when it goes through a transaction pooler.
async fn operator_pool(database: &DatabaseSettings) -> Result<sqlx::PgPool, String> {
    let url = database.migration_url()?;
    // A transaction pooler on another port than Supabase's, or not declared: found by probing,
    // before anything is changed.
    let pooled = store::pooler::behind_transaction_pooler(&url.connect_options())
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))?;
    if pooled {
        return Err(database.refuse_migration("the URL goes through a transaction pooler"));
    }
    DatabaseSettings::connect_one(url)
        .await
        .map_err(|e| format!("cannot connect to the database: {e}"))
}

async fn migrate() -> Result<(), String> {
    let database = DatabaseSettings::from_env().map_err(|e| e.to_string())?;
    let roles = config::signup_roles_from_env().map_err(|e| e.to_string())?;
    let (profile, profile_table) = config::profile_from_env().map_err(|e| e.to_string())?;
    let external = config::external_users_from_env(&roles).map_err(|e| e.to_string())?;
    let pool = operator_pool(&database).await?;
    store::migrate(&pool)
        .await
        .map_err(|e| format!("migration failed: {e}"))?;
    // The signup function refuses any role the database does not list (SIGNUP_ROLES).
    store::signup_roles::write(&pool, roles.names())
        .await
        .map_err(|e| format!("cannot write SIGNUP_ROLES into atomic_signup.signup_roles: {e}"))?;
    // The signup function writes only the columns the database lists (PROFILE_SCHEMA_PATH).
    store::profile_columns::write(&pool, &profile_table, &profile)
        .await
        .map_err(|e| {
            format!(
                "cannot write PROFILE_TABLE and PROFILE_SCHEMA_PATH into atomic_signup.profile_table \
                 and atomic_signup.profile_columns: {e}"
            )
        })?;
    // Profiles for users GoTrue creates itself (PROFILE_FOR_EXTERNAL_USERS): the trigger's switch.
    let defaults = profile.defaults();
    store::external_users::write(&pool, external.as_deref().map(|role| (role, &defaults)))
        .await
        .map_err(|e| {
            format!("cannot write PROFILE_FOR_EXTERNAL_USERS into atomic_signup.external_user_profiles: {e}")
        })?;
    tracing::info!(
        roles = ?roles.names(),
        profile_for_external_users = external.is_some(),
        "migrations applied; signup roles, profile fields and the external users' switch written"
    );
    Ok(())
}

/// Prints the report on stdout; 0 when every check holds, 1 otherwise (also for a bad setting).
async fn check(json: bool) -> ExitCode {
    let settings = DatabaseSettings::from_env().and_then(|database| {
        let gotrue = GoTrueSettings::from_env()?;
        Ok((
            database,
            gotrue,
            config::profile_from_env()?,
            HookSettings::from_env()?,
        ))
    });
    let (database, gotrue, profile, hooks) = match settings {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    let report = check::run(&database, gotrue.as_ref(), (&profile.0, &profile.1), &hooks).await;
    print_report(json, &report, report.text(), report.ok)
}

/// Prints an operator command's report (`--json`: one JSON document) on stdout; exit status 0
/// when `fine`, else 1.
fn print_report(json: bool, report: &impl serde::Serialize, text: String, fine: bool) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(report) {
            Ok(text) => println!("{text}"),
            Err(err) => {
                eprintln!("error: cannot write the report: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{text}");
    }
    if fine {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn repair_options(
    apply: bool,
    default_role: Option<String>,
    skip_invalid: bool,
    set: &[String],
    delete_unconfirmed_older_than: Option<&str>,
) -> Result<repair::RepairOptions, String> {
    Ok(repair::RepairOptions {
        apply,
        default_role,
        skip_invalid,
        set: set
            .iter()
            .map(|s| repair::parse_set(s).map_err(|e| format!("--set {e}")))
            .collect::<Result<_, _>>()?,
        delete_unconfirmed_older_than: delete_unconfirmed_older_than
            .map(|d| {
                repair::parse_duration(d)
                    .map_err(|e| format!("--delete-unconfirmed-older-than {e}"))
            })
            .transpose()?,
    })
}

/// Prints the report on stdout (progress on stderr when it is a terminal); 0 when nothing is
/// (left) to do, 1 otherwise.
async fn repair(options: repair::RepairOptions, json: bool) -> ExitCode {
    let result = async {
        let database = DatabaseSettings::from_env().map_err(|e| e.to_string())?;
        let roles = config::signup_roles_from_env().map_err(|e| e.to_string())?;
        let (schema, table) = config::profile_from_env().map_err(|e| e.to_string())?;
        let pool = operator_pool(&database).await?;
        // The fields must be the ones `migrate` wrote, or the profiles would miss some.
        let problems = store::profile_columns::check(
            &store::Database::from_operator_pool(pool.clone(), database.statement_timeout),
            &table,
            &schema,
        )
        .await
        .map_err(|e| e.to_string())?;
        if !problems.is_empty() {
            return Err(format!(
                "the profile schema (PROFILE_SCHEMA_PATH, PROFILE_TABLE) does not fit the \
                 database: {}; run `atomic-signup migrate` with this configuration first",
                problems.join("; ")
            ));
        }
        let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
        let rules = repair::Rules {
            schema: &schema,
            table: &table,
            roles: &roles,
            options: &options,
        };
        let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
        repair::run(&mut conn, &rules, |done, total| {
            if terminal && (done % 100 == 0 || done == total) {
                eprint!("\r{done}/{total} orphans handled");
                if done == total {
                    eprintln!();
                }
            }
        })
        .await
        .map_err(|e| e.to_string())
    }
    .await;
    let report = match result {
        Ok(report) => report,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    print_report(json, &report, report.text(), report.nothing_left())
}
