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
    /// CPU time of this whole process (server and load generator) per request, in µs: steadier
    /// than req/s on a shared machine, where neighbours take CPU away but not add to this.
    pub cpu_us: f64,
}

/// A benchmark setting from the environment, or its default when unset or unreadable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// User plus system CPU time of this process so far, in seconds (from /proc; 0 elsewhere).
pub fn process_cpu_seconds() -> f64 {
    cpu_seconds("/proc/self/stat")
}

/// User plus system CPU time of the calling thread so far, in seconds (from /proc; 0 elsewhere).
pub fn thread_cpu_seconds() -> f64 {
    cpu_seconds("/proc/thread-self/stat")
}

fn cpu_seconds(stat_path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(stat_path) else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) end with ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; 100 ticks/s.
    (ticks(11) + ticks(12)) / 100.0
}

impl Figures {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }

    pub fn print(&self) {
        println!(
            "{:<34} {:>9.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms   {:>5.1} µs CPU/req   ({} requests, {} non-2xx)",
            self.label,
            self.rps(),
            self.p50_ms,
            self.p99_ms,
            self.cpu_us,
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
/// the next one when the answer is read. The connections are driven with epoll by a few threads
/// (`BENCH_CLIENT_THREADS`, default 1), as load generators such as wrk do: a thread per connection
/// would spend a good part of these two cores on context switches and take them from the server
/// under test.
pub fn run(
    label: &str,
    port: u16,
    connections: usize,
    duration: Duration,
    request: &[u8],
) -> Figures {
    run_targets(label, &[(port, request)], connections, duration)
}

/// `run` over several servers or requests: connection i sends `targets[i % targets.len()]`'s
/// request to its port (two server processes, or one token per org).
pub fn run_targets(
    label: &str,
    targets: &[(u16, &[u8])],
    connections: usize,
    duration: Duration,
) -> Figures {
    let threads: usize = env_or("BENCH_CLIENT_THREADS", 1).clamp(1, connections.max(1));
    // Every thread connects first; the clock starts when all are connected. One thread is this one:
    // a load generator on a thread of its own was seen to make the writer's batches a third
    // smaller (the scheduler places a fresh thread differently), which is not what is measured here.
    let ready = std::sync::Barrier::new(threads);
    // Connections of load thread t: an even share, the first threads taking one more each.
    let share = |t: usize| connections / threads + usize::from(t < connections % threads);
    // The targets of load thread t's connections, in global connection order.
    let mine = |t: usize| -> Vec<(u16, &[u8])> {
        let first: usize = (0..t).map(share).sum();
        (first..first + share(t))
            .map(|i| targets[i % targets.len()])
            .collect()
    };
    let (parts, cpu) = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads)
            .map(|t| {
                let (ready, targets) = (&ready, mine(t));
                scope.spawn(move || drive(&targets, ready, duration))
            })
            .collect();
        let cpu_start = process_cpu_seconds();
        let mut parts = vec![drive(&mine(0), &ready, duration)];
        parts.extend(others.into_iter().map(|h| h.join().expect("load thread")));
        (parts, process_cpu_seconds() - cpu_start)
    });
    let seconds = parts.iter().map(|p| p.2).fold(0.0, f64::max);
    let errors = parts.iter().map(|p| p.1).sum();
    let mut latencies: Vec<Duration> = parts.into_iter().flat_map(|p| p.0).collect();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Figures {
        label: label.to_string(),
        requests: latencies.len(),
        errors,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        cpu_us: cpu * 1e6 / latencies.len().max(1) as f64,
    }
}

/// One load thread: connect, wait for the others, then a closed loop per target (a port and its
/// request) for `duration`; the latencies of the answers, the count of errors and the seconds it
/// ran.
fn drive(
    targets: &[(u16, &[u8])],
    ready: &std::sync::Barrier,
    duration: Duration,
) -> (Vec<Duration>, usize, f64) {
    use mio::{Events, Interest, Poll, Token};
    let mut poll = Poll::new().expect("epoll");
    let connections = targets.len();
    let mut conns: Vec<Conn> = targets
        .iter()
        .enumerate()
        .map(|(i, (port, _))| {
            let mut conn = Conn::connect(*port);
            poll.registry()
                .register(&mut conn.stream, Token(i), Interest::READABLE)
                .expect("register");
            conn
        })
        .collect();
    let mut latencies = Vec::with_capacity(1_000_000);
    let mut errors = 0;
    let mut open = connections;
    ready.wait();
    let start = Instant::now();
    for (conn, (_, request)) in conns.iter_mut().zip(targets) {
        conn.send(request);
    }
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 64 * 1024];
    while open > 0 {
        match poll.poll(&mut events, Some(Duration::from_millis(100))) {
            Ok(()) => {}
            // A signal (a profiler or strace attaching) is not an error of the server.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("poll: {e}"),
        }
        for event in events.iter() {
            let i = event.token().0;
            let (port, request) = targets[i];
            let conn = &mut conns[i];
            if conn.done {
                continue;
            }
            let status = match conn.read(&mut chunk) {
                Ok(Some(status)) => status,
                Ok(None) => continue,
                Err(_) => {
                    // Closed by the server: count it and start over on a new connection.
                    errors += 1;
                    let _ = poll.registry().deregister(&mut conn.stream);
                    *conn = Conn::connect(port);
                    poll.registry()
                        .register(&mut conn.stream, Token(i), Interest::READABLE)
                        .expect("register");
                    conn.send(request);
                    continue;
                }
            };
            if !(200..300).contains(&status) {
                errors += 1;
            }
            latencies.push(conn.sent.elapsed());
            if start.elapsed() < duration {
                conn.send(request);
            } else {
                conn.done = true;
                open -= 1;
            }
        }
    }
    (latencies, errors, start.elapsed().as_secs_f64())
}

/// One keep-alive connection of the load generator.
struct Conn {
    stream: mio::net::TcpStream,
    buf: Vec<u8>,
    sent: Instant,
    done: bool,
}

impl Conn {
    fn connect(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).ok();
        stream.set_nonblocking(true).expect("non-blocking");
        Conn {
            stream: mio::net::TcpStream::from_std(stream),
            buf: Vec::with_capacity(64 * 1024),
            sent: Instant::now(),
            done: false,
        }
    }

    /// Send a whole request (small: it fits the socket buffer of an idle connection).
    fn send(&mut self, request: &[u8]) {
        use std::io::Write;
        self.buf.clear();
        self.sent = Instant::now();
        let mut rest = request;
        while !rest.is_empty() {
            match self.stream.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("send: {e}"),
            }
        }
    }

    /// Read what has arrived; the status once the whole response is there. The poll is
    /// edge-triggered and every arrival raises a new edge, so what is read here is all there is.
    fn read(&mut self, chunk: &mut [u8]) -> std::io::Result<Option<u16>> {
        loop {
            match self.stream.read(chunk) {
                Ok(0) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "connection closed",
                    ));
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if let Some(status) = complete_response(&self.buf) {
                        return Ok(Some(status));
                    }
                    if n < chunk.len() {
                        return Ok(None);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
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

/// An org on Ultimate with a billion licences: no maximum and enough free credits that no call of
/// a benchmark is refused. Returns its id.
pub fn unlimited_org(
    conn: &mut creditmeter::db::DbConn,
    now: chrono::DateTime<chrono::Utc>,
) -> creditmeter::domain::types::OrgId {
    use creditmeter::domain::allowance::{Allowance, Edition};
    let org = creditmeter::store::orgs::NewOrg {
        name: "Bench".into(),
        zone: chrono_tz::UTC,
        allowance: Allowance {
            edition: Edition::Ultimate,
            licences: 1_000_000_000,
            add_on_credits: 0,
        },
    };
    creditmeter::store::orgs::create(conn, &org, now).expect("bench org")
}

/// Calls per transaction so far, from the server's /metrics.
pub fn print_batches(port: u16, label: &str) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let (batches, jobs) = (
        value("creditmeter_writer_batches_total"),
        value("creditmeter_writer_events_total"),
    );
    println!(
        "    {label}: {batches:.0} transactions, {:.1} calls per transaction on average, at most {:.0}; \
         {:.0} from the writer's cache, {:.0} of them stale",
        jobs / batches.max(1.0),
        value("creditmeter_writer_largest_batch_calls"),
        value("creditmeter_writer_cached_batches_total"),
        value("creditmeter_writer_stale_batches_total")
    );
}

/// A keep-alive `POST /api/v1/consume` of one credit with `token`.
pub fn consume_request(token: &str) -> Vec<u8> {
    let body = "{\"credits\":1,\"operation\":\"search\",\"client\":\"bench\"}";
    format!(
        "POST /api/v1/consume HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
