//! Headless Chromium through ChromeDriver's WebDriver protocol, spoken with the test HTTP client.
//! No browser is downloaded: it uses Debian's /usr/bin/chromium and /usr/bin/chromedriver.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::http;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    port: u16,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

/// Start a browser, or `None` (with a note) where Chromium is not installed. Under CI it must be.
pub fn start(width: u32, height: u32) -> Option<Browser> {
    if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install chromium and chromium-driver (see .ci/run)"
        );
        eprintln!(
            "SKIPPED: browser test needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let driver = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let profile = tempfile::tempdir().unwrap();
    let caps = json!({"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
                     "--hide-scrollbars", format!("--window-size={width},{height}"),
                     format!("--user-data-dir={}", profile.path().display())]
        }
    }}});
    let answer = call(port, "POST", "/session", Some(caps));
    let session = answer["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {answer}"))
        .to_string();
    Some(Browser {
        port,
        session,
        driver,
        _profile: profile,
    })
}

fn call(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let r = http::request(
        port,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    let value = r.json();
    assert!(
        r.status < 400,
        "WebDriver {method} {path}: {} {value}",
        r.status
    );
    value
}

impl Browser {
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        call(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )["value"]
            .clone()
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        );
    }

    pub fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        );
        self.cmd(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub fn click(&self, css: &str) {
        let element = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    pub fn text(&self, css: &str) -> String {
        let element = self.find(css);
        self.cmd("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until the address ends with `suffix` and the page has loaded (clicks do not wait).
    pub fn wait_for_url(&self, suffix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url();
            let ready = self.script("return document.readyState;") == json!("complete");
            if url.ends_with(suffix) && ready {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "still at {url}, waiting for {suffix}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn source(&self) -> String {
        self.cmd("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Run a script in the page (WebDriver's own channel; the page's CSP is not involved).
    pub fn script(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    /// axe-core's violations on the current page (each "rule: how many nodes: the first ones"), or
    /// `None` where axe-core is not installed (`npm ci --prefix tests/axe`; required under CI).
    pub fn axe_violations(&self) -> Option<Vec<String>> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/axe/node_modules/axe-core/axe.min.js");
        let Ok(source) = std::fs::read_to_string(&path) else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must install axe-core (npm ci --prefix tests/axe, see .ci/run)"
            );
            eprintln!(
                "SKIPPED: the accessibility check needs axe-core (npm ci --prefix tests/axe)"
            );
            return None;
        };
        self.script(&format!("{source}\n;window.axe = axe; return true;"));
        let found = self.cmd(
            "POST",
            "/execute/async",
            Some(json!({
                "script": "const done = arguments[arguments.length - 1];
                    axe.run(document, { resultTypes: ['violations'] })
                      .then(r => done(r.violations.map(v => v.id + ': ' + v.nodes.length + ' ' +
                          v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | '))))
                      .catch(e => done(['axe failed: ' + e]));",
                "args": []
            })),
        );
        Some(
            found
                .as_array()
                .map(|list| {
                    list.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// The page fits the window: nothing is wider than the viewport.
    pub fn assert_fits_width(&self) {
        let overflow =
            self.script("return document.documentElement.scrollWidth > window.innerWidth;");
        assert_eq!(
            overflow,
            Value::Bool(false),
            "horizontal scrolling at this width"
        );
    }

    /// Nothing on the page is cut off: no horizontal scrolling of the document, and no element
    /// whose content is wider than its box where the overflow is scrolled or hidden (a table in a
    /// scroll box counts as cut off: its columns are out of sight).
    pub fn assert_nothing_cut_off(&self, page: &str) {
        let cut = self.script(
            r#"const cut = [];
            if (document.documentElement.scrollWidth > window.innerWidth)
              cut.push('document ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
            for (const el of document.querySelectorAll('body *')) {
              const cs = getComputedStyle(el);
              if (cs.display === 'none' || cs.visibility === 'hidden') continue;
              if (!['auto', 'scroll', 'hidden', 'clip'].includes(cs.overflowX)) continue;
              // Visually hidden on purpose (kept for screen readers); a text field scrolls its text.
              if (el.clientWidth <= 1 || el.tagName === 'INPUT' || el.tagName === 'TEXTAREA') continue;
              if (el.scrollWidth > el.clientWidth + 1)
                cut.push(el.tagName + '#' + el.id + '.' + (el.getAttribute('class') || '') + ' ' + el.scrollWidth + ' > ' + el.clientWidth);
            }
            return cut;"#,
        );
        assert_eq!(cut, json!([]), "{page}: cut off at this width");
    }

    /// Emulate the print media (as Ctrl+P lays the page out), or the screen again.
    pub fn emulate_print(&self, print: bool) {
        self.emulate_media(if print { "print" } else { "" }, false);
    }

    /// Emulate a media type ("" for the screen) and the system's dark mode, through DevTools.
    pub fn emulate_media(&self, media: &str, dark: bool) {
        let scheme = if dark { "dark" } else { "light" };
        self.cmd(
            "POST",
            "/goog/cdp/execute",
            Some(json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": {
                    "media": media,
                    "features": [{ "name": "prefers-color-scheme", "value": scheme }]
                }
            })),
        );
    }

    /// Save a PNG of the viewport under target/screenshots/ and return its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let data = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(data.as_str().expect("base64 PNG"));
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http::request(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
            b"",
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|&c| c == byte) else {
            continue;
        };
        buffer = (buffer << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}
