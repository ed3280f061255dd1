use std::process::ExitCode;

use clap::Parser;

/// mimalloc rather than the system allocator: `serve` over a large cache frees one snapshot of
/// it and builds the next, from several threads, at every change, and glibc's per-thread
/// arenas kept that memory (100,000 charts: 700 MiB resident after four rebuilds, against
/// 360 MiB, level, with mimalloc; `bench/serve.sh` and the README's serve section).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = chartcache::cli::Cli::parse();
    match chartcache::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`chartcache chart list | head`) is the reader's choice, not a failure.
        Err(err) if chartcache::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            if !err.is::<chartcache::commands::Reported>() {
                eprintln!("Error: {}", chartcache::error_line(&err));
            }
            ExitCode::FAILURE
        }
    }
}
