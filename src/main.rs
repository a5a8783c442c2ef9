//! The `creditmeter` binary: parse the command line, run it, print any error as one line.

use clap::Parser;
use clap::error::ErrorKind;
use std::process::ExitCode;

use creditmeter::cli::{self, Cli};
use creditmeter::clock::Clock;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            // clap's message without its usage block, folded onto one line.
            let rendered = e.to_string();
            let message: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            eprintln!("{} (see --help)", message.join(" "));
            return ExitCode::from(2);
        }
    };
    let clock = match Clock::from_env() {
        Ok(clock) => clock,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Clock::Fixed(now) = clock {
        eprintln!(
            "warning: CREDITMETER_NOW is set: the clock is fixed at {}",
            now.to_rfc3339()
        );
    }
    match cli::run(cli, clock) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", message.join(": ").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
