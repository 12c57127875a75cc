//! The `pushrelay` binary: parse the command line and hand over to the
//! library.

use clap::Parser;

// glibc malloc spent ~45 % of the benchmark's CPU (per-request HTTP/2 and
// JSON buffers freed on other threads); mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    pushrelay::cli::main(pushrelay::cli::Cli::parse()).await
}
