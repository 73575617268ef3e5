//! Just enough of a W3C WebDriver client to drive a real headless Chromium through Debian's
//! `chromedriver`: open a page, run a script, click, type, read the console, take a screenshot.
//!
//! `chromedriver` is found on the PATH (or at `$TICKWATCH_CHROMEDRIVER`); `scripts/setup-test-env`
//! installs it with `chromium` from the Debian packages. Nothing is downloaded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long one WebDriver command may take before the test fails (a hang, not a speed test).
const COMMAND_TIMEOUT_S: u64 = 60;

/// A headless Chromium session and the chromedriver that runs it; both end when it is dropped.
pub(crate) struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session.
    pub(crate) fn start() -> Browser {
        let program =
            std::env::var("TICKWATCH_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let mut driver = Command::new(&program)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {program}: {e}. The browser tests need Debian's chromium and chromium-driver: scripts/setup-test-env installs them"
                )
            });
        let stdout = driver.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("chromedriver says where it listens")
                .expect("chromedriver's output");
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().to_owned();
            }
        };
        // Keep reading so that chromedriver never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            runtime,
        };
        let session = browser.send(
            reqwest::Method::POST,
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1600,1000",
                    "--no-first-run", "--disable-extensions"
                ]},
                "goog:loggingPrefs": {"browser": "ALL"}
            }}}),
        );
        let id = session["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let request = self.http.request(method.clone(), &url);
        let request = if method == reqwest::Method::GET {
            request
        } else {
            request.json(&body)
        };
        let answer: Value = self.runtime.block_on(async {
            let response =
                tokio::time::timeout(Duration::from_secs(COMMAND_TIMEOUT_S), request.send())
                    .await
                    .unwrap_or_else(|_| panic!("WebDriver {method} {path}: no answer"))
                    .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
            response.json().await.expect("WebDriver answers JSON")
        });
        let value = answer["value"].clone();
        if let Some(error) = value.get("error") {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                value["message"].as_str().unwrap_or_default()
            );
        }
        value
    }

    /// Opens `url` and waits until it has loaded.
    pub(crate) fn goto(&self, url: &str) {
        self.send(reqwest::Method::POST, "/url", json!({ "url": url }));
    }

    /// Runs `body` as a function's body in the page and returns what it returns.
    pub(crate) fn script(&self, body: &str) -> Value {
        self.send(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": body, "args": [] }),
        )
    }

    /// Polls the expression `condition` until it is truthy and returns how long that took; fails
    /// the test after `timeout`.
    pub(crate) fn wait_for(&self, condition: &str, timeout: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let value = self.script(&format!("return !!({condition});"));
            if value == Value::Bool(true) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < timeout,
                "the page did not get to `{condition}` within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn element(&self, css: &str) -> String {
        let found = self.send(
            reqwest::Method::POST,
            "/element",
            json!({ "using": "css selector", "value": css }),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_owned()
    }

    /// Clicks the element `css` selects.
    pub(crate) fn click(&self, css: &str) {
        let id = self.element(css);
        self.send(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        );
    }

    /// Types `text` into the element `css` selects.
    pub(crate) fn type_into(&self, css: &str, text: &str) {
        self.keys(css, text);
    }

    /// Sends keys to the element `css` selects (WebDriver's key codes: `\u{E004}` is Tab,
    /// `\u{E007}` Enter).
    pub(crate) fn keys(&self, css: &str, keys: &str) {
        let id = self.element(css);
        self.send(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({ "text": keys }),
        );
    }

    /// What the page wrote to the console (and the browser logged about it) since the last call.
    pub(crate) fn console(&self) -> Vec<Value> {
        self.send(
            reqwest::Method::POST,
            "/se/log",
            json!({ "type": "browser" }),
        )
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// A PNG of the window.
    pub(crate) fn screenshot(&self) -> Vec<u8> {
        let encoded = self.send(reqwest::Method::GET, "/screenshot", Value::Null);
        decode_base64(encoded.as_str().expect("base64 text"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = self.base.clone();
        let http = self.http.clone();
        let _ = self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), http.delete(url).send()).await
        });
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let bits = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, c)| acc | (value(*c) << (18 - 6 * i)));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(decode_base64("aGVsbG8="), b"hello");
    assert_eq!(decode_base64("aGVsbG8h"), b"hello!");
    assert_eq!(decode_base64("aA=="), b"h");
    assert_eq!(decode_base64(""), b"");
}
