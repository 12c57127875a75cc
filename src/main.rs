//! The `pushrelay` binary: parse the command line and hand over to the
//! library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    pushrelay::cli::main(pushrelay::cli::Cli::parse()).await
}
