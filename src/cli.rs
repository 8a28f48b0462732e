//! The command line: `atomic-signup [serve]` or `atomic-signup migrate`.

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
}
