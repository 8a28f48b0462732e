//! The command line: `atomic-signup [serve]`, `atomic-signup migrate`,
//! `atomic-signup check [--json]` or `atomic-signup healthcheck`.

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

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Subcommand)]
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
    /// GET /healthz of the service this configuration describes (BIND_ADDR; an unspecified
    /// address such as 0.0.0.0 is reached on loopback). Exit status 0 when it answers 200, 1
    /// otherwise: the container image's HEALTHCHECK.
    Healthcheck,
}
