//! The command line: `atomic-signup [serve]`, `atomic-signup migrate`,
//! `atomic-signup check [--json]`, `atomic-signup repair [--apply] …` or
//! `atomic-signup healthcheck`.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "atomic-signup",
    version,
    about = "Atomic Supabase signup service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (the default).
    #[default]
    Serve,
    /// Apply the embedded database migrations (the files in migrations/), then exit.
    Migrate,
    /// Report on the Supabase project (database, role, migrations, GoTrue, pooler, orphaned
    /// users) without changing anything. Exit status 0 when every check holds, 1 otherwise.
    Check {
        /// One JSON document on stdout instead of lines of text.
        #[arg(long)]
        json: bool,
    },
    /// List the auth users without a profile (orphans, what a two-call signup leaves behind)
    /// and what would be done with each; `--apply` does it, one transaction per user. Uses
    /// MIGRATE_DATABASE_URL, else DATABASE_URL (a direct, privileged connection, as `migrate`).
    /// Exit status 0 when nothing is (left) to do, 1 otherwise.
    Repair {
        /// Make the changes (without it, nothing is changed).
        #[arg(long)]
        apply: bool,
        /// One JSON document on stdout instead of lines of text.
        #[arg(long)]
        json: bool,
        /// The role (one of SIGNUP_ROLES) for orphans whose app metadata has none of them.
        #[arg(long, value_name = "ROLE")]
        default_role: Option<String>,
        /// Skip orphans without a valid name in their metadata, instead of naming them after
        /// their email.
        #[arg(long)]
        skip_invalid: bool,
        /// A value for a declared profile field (JSON, or else a string); repeatable.
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        set: Vec<String>,
        /// Delete, instead, orphans that never confirmed, never signed in and are older than
        /// this (e.g. 30d, 12h): abandoned signups; deleting frees their email.
        #[arg(long, value_name = "DURATION")]
        delete_unconfirmed_older_than: Option<String>,
    },
    /// GET /healthz of the service this configuration describes (BIND_ADDR; an unspecified
    /// address such as 0.0.0.0 is reached on loopback). Exit status 0 when it answers 200, 1
    /// otherwise: the container image's HEALTHCHECK.
    Healthcheck,
}
