//! The real binary as a process: `creditmeter serve` on 127.0.0.1:0 with a database URL (and a
//! fixed clock when asked), for the tests that need processes (kill -9, two servers on one
//! database) and for the benchmarks (`#[path]`-included there).
#![allow(dead_code)]

/// A `creditmeter serve` process; killed (SIGKILL) when dropped.
pub struct Server {
    pub child: std::process::Child,
    pub port: u16,
}

impl Server {
    /// Start it and wait for the URL it prints on its first line of stdout.
    pub fn start(db_url: &str, now: Option<&str>) -> Server {
        Self::start_with(db_url, now, &[])
    }

    /// With extra `serve` arguments (`--no-group-commit`, ...).
    pub fn start_with(db_url: &str, now: Option<&str>, args: &[&str]) -> Server {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_creditmeter"));
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--database", db_url])
            .args(args)
            .env_remove("CREDITMETER_NOW")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if let Some(now) = now {
            command.env("CREDITMETER_NOW", now);
        }
        let mut child = command.spawn().expect("creditmeter serve starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .trim_end_matches("/login")
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Server { child, port }
    }

    /// SIGKILL now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
