use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = chartcache::cli::Cli::parse();
    match chartcache::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`chartcache chart list | head`) is the reader's choice, not a failure.
        Err(err) if chartcache::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) if err.is::<chartcache::commands::Interrupted>() => {
            eprintln!("Error: {err}");
            // 128 + SIGINT, as a shell reports a command Ctrl-C ended.
            ExitCode::from(130)
        }
        Err(err) => {
            if !err.is::<chartcache::commands::Reported>() {
                eprintln!("Error: {}", chartcache::error_line(&err));
            }
            ExitCode::FAILURE
        }
    }
}
