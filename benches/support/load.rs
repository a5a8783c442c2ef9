//! A small closed-loop HTTP/1.1 load generator: N keep-alive connections on 127.0.0.1, each
//! sending the next request when the previous answer is read. Bounded in time and count.
#![allow(dead_code)]

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

pub struct Figures {
    pub label: String,
    pub requests: usize,
    pub errors: usize,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl Figures {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn print(&self) {
        println!(
            "{:<34} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {} non-2xx)",
            self.label,
            self.rps(),
            self.p50_ms,
            self.p99_ms,
            self.requests,
            self.errors
        );
    }
}

/// Read one response from a keep-alive connection; returns its status.
pub fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<u16> {
    thread_local! {
        static CHUNK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 64 * 1024]);
    }
    CHUNK.with(|chunk| read_into(stream, buf, &mut chunk.borrow_mut()))
}

fn read_into(stream: &mut TcpStream, buf: &mut Vec<u8>, chunk: &mut [u8]) -> std::io::Result<u16> {
    buf.clear();
    loop {
        if let Some(status) = complete_response(buf) {
            return Ok(status);
        }
        let n = stream.read(chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The status of the response in `buf` once all of it (head and Content-Length body) is there.
fn complete_response(buf: &[u8]) -> Option<u16> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..split]).unwrap_or("");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    (buf.len() >= split + 4 + length).then_some(status)
}

/// Run `connections` loops for `duration`, each sending `request` (a full HTTP/1.1 request) and
/// the next one when the answer is read. The connections are driven by one thread with epoll (a
/// tokio current-thread runtime), as load generators such as wrk do: a thread per connection
/// would spend a third of these two cores on context switches and take them from the server.
pub fn run(
    label: &str,
    port: u16,
    connections: usize,
    duration: Duration,
    request: &[u8],
) -> Figures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    let start = Instant::now();
    let results = runtime.block_on(async {
        let tasks = tokio::task::LocalSet::new();
        let handles: Vec<_> = (0..connections)
            .map(|_| {
                let request = request.to_vec();
                tasks.spawn_local(connection_loop(port, request, start, duration))
            })
            .collect();
        tasks
            .run_until(async {
                let mut results = Vec::with_capacity(handles.len());
                for h in handles {
                    results.push(h.await.expect("connection task"));
                }
                results
            })
            .await
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut all = Vec::new();
    let mut errors = 0;
    for (lat, err) in results {
        all.extend(lat);
        errors += err;
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Figures {
        label: label.to_string(),
        requests: all.len(),
        errors,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

async fn connect(port: u16) -> tokio::net::TcpStream {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.set_nodelay(true).ok();
    stream
}

async fn connection_loop(
    port: u16,
    request: Vec<u8>,
    start: Instant,
    duration: Duration,
) -> (Vec<Duration>, usize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = connect(port).await;
    let mut latencies = Vec::with_capacity(100_000);
    let mut errors = 0;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    while start.elapsed() < duration {
        let sent = Instant::now();
        stream.write_all(&request).await.expect("send");
        buf.clear();
        let status = loop {
            if let Some(status) = complete_response(&buf) {
                break Some(status);
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        match status {
            Some(status) if (200..300).contains(&status) => {}
            Some(_) => errors += 1,
            None => {
                errors += 1;
                stream = connect(port).await;
            }
        }
        latencies.push(sent.elapsed());
    }
    (latencies, errors)
}

pub fn get_request(path: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra_headers}\r\n").into_bytes()
}

/// Start a server for a benchmark on 127.0.0.1:0, on its own thread; returns its port.
pub fn start_server(
    settings: creditmeter::startup::Settings,
    pool: creditmeter::db::DbPool,
) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let app = creditmeter::startup::Application::build_with_pool(settings, pool)
                .expect("server builds");
            tx.send(app.port()).unwrap();
            app.run().await
        })
    });
    rx.recv().expect("server starts")
}

/// A fresh SQLite database in a temporary directory (kept as long as the returned directory).
pub fn temp_database(
    name: &str,
    pool_size: u32,
) -> (
    tempfile::TempDir,
    creditmeter::db::DatabaseUrl,
    creditmeter::db::DbPool,
) {
    let dir = tempfile::tempdir().unwrap();
    let url = creditmeter::db::DatabaseUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join(name).display()
    ))
    .unwrap();
    let pool = creditmeter::db::connect(&url, pool_size).unwrap();
    (dir, url, pool)
}
