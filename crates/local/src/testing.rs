//! Test support (feature `testing`, which this crate's tests and benches, the CLI's end-to-end
//! tests and the AWS soak bench enable; never what ships): hostile HTTP servers for the webhook
//! notifier, a small tmpfs for full-disk tests, and a process's memory for the soak benches.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};

/// Reads one HTTP/1.1 request (head and `Content-Length` body) and returns its request line;
/// `None` if the client hung up or sent something else.
pub fn read_request(stream: &TcpStream) -> Option<String> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(request_line.trim_end().to_owned())
}

/// An HTTP server on 127.0.0.1 that answers every POST with 302 to [`Redirector::target`] and
/// everything else with 200, recording each request line: a client that follows the redirect
/// shows up as a GET.
pub struct Redirector {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Redirector {
    /// Starts it on a free port (its thread lives as long as the test process).
    pub fn start() -> Redirector {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("a bound address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                let answer = if request.starts_with("POST ") {
                    format!("302 Found\r\nlocation: {}", target(port))
                } else {
                    "200 OK".to_owned()
                };
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(request);
                let _ = write!(
                    stream,
                    "HTTP/1.1 {answer}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Redirector { port, requests }
    }

    /// Where it redirects to.
    pub fn target(&self) -> String {
        target(self.port)
    }

    /// The URL to give the notifier.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/alerts", self.port)
    }

    /// Every request line so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn target(port: u16) -> String {
    format!("http://127.0.0.1:{port}/final")
}

/// A server on 127.0.0.1 that accepts connections and never answers, holding them open as long
/// as the test process lives.
pub struct BlackHole {
    port: u16,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
}

impl BlackHole {
    /// Starts it on a free port.
    pub fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("a bound address").port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let held = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                held.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(stream);
            }
        });
        BlackHole { port, accepted }
    }

    /// The URL to give the notifier.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/alerts", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A tmpfs mounted on a directory until dropped (unmounted even when the test panics), for tests
/// that fill a disk. Mounting needs root (or CAP_SYS_ADMIN), as CI has.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_kib` on `path` (created if missing).
    ///
    /// # Panics
    /// If it cannot be mounted: the test that needs it must fail, not pass without it.
    pub fn mount(path: &Path, size_kib: u64) -> Tmpfs {
        std::fs::create_dir_all(path).expect("the mount point can be created");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(path)
            .status();
        assert!(
            matches!(&status, Ok(s) if s.success()),
            "this test fills a small tmpfs and must run as root (or with CAP_SYS_ADMIN): \
             `mount -t tmpfs` on {} failed: {status:?}",
            path.display()
        );
        Tmpfs {
            path: path.to_owned(),
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives it a new size (to free space after filling it).
    pub fn resize(&self, size_kib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size_kib}k")])
            .arg(&self.path)
            .status();
        assert!(
            matches!(&status, Ok(s) if s.success()),
            "remounting the tmpfs at {} failed: {status:?}",
            self.path.display()
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: the mount goes even if something still holds a file open on it.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A process's memory as `/proc/PID/status` tells it, in KiB (Linux only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessMemory {
    /// Resident set size (`VmRSS`).
    pub rss_kib: u64,
    /// Resident anonymous memory: heap and stacks (`RssAnon`).
    pub anon_kib: u64,
    /// Resident file-backed memory: mapped files, the binary (`RssFile`).
    pub file_kib: u64,
    /// Peak resident set size (`VmHWM`).
    pub peak_kib: u64,
}

impl ProcessMemory {
    /// Reads it for `pid` (`None`: this process). `None` when the process is gone or the system
    /// has no `/proc`.
    pub fn read(pid: Option<u32>) -> Option<ProcessMemory> {
        let path = match pid {
            Some(pid) => format!("/proc/{pid}/status"),
            None => "/proc/self/status".to_owned(),
        };
        let status = std::fs::read_to_string(path).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse::<u64>().ok())
        };
        Some(ProcessMemory {
            rss_kib: field("VmRSS:")?,
            anon_kib: field("RssAnon:")?,
            file_kib: field("RssFile:")?,
            peak_kib: field("VmHWM:")?,
        })
    }
}
