//! # tickwatch-serve
//!
//! The board: a live web page over a tickwatch SQLite database. It shows the alerts as they are
//! stored, a line per symbol (last price, a chart of recent prices against the rule thresholds,
//! zone, last alert), the rules (add, pause, resume, re-arm, delete, through the same core
//! validation and compare-and-set as `tickwatch rules`) and the health of the run that writes
//! the database.
//!
//! The database is the only interface: `tickwatch run` writes its board tables a few times a
//! second at most ([`tickwatch_local::board`]), and one poller thread of the server reads what
//! changed every [`POLL_INTERVAL_MS`] and pushes it to every connected page as server-sent
//! events ([`feed`]). So the server works the same in the run's process (`tickwatch run --serve`)
//! and in another (`tickwatch serve --db`), and fifty open pages cost one poll, not fifty.
//!
//! Security ([`guard`]): without a token it listens on loopback addresses only and answers only
//! requests whose `Host` is a loopback name (a page of another site cannot reach it through DNS
//! rebinding). With a token (`--token` or `TICKWATCH_TOKEN`) every request must carry it. Every
//! write needs a JSON body and the `X-Tickwatch-Request` header, which no cross-site form or
//! simple request can send. Every answer carries a strict Content-Security-Policy; the page
//! writes every field as text.

mod api;
pub mod feed;
pub mod guard;
mod view;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tickwatch_core::RuleBook;
use tickwatch_local::SqliteStore;
use tickwatch_local::sqlite::SqliteError;

pub use guard::{TOKEN_LEN_MIN, Token, TokenError};

/// How often the server looks for what changed in the database.
pub const POLL_INTERVAL_MS: u64 = 100;

/// How often the pages get the health figures.
pub const HEALTH_INTERVAL_MS: u64 = 1_000;

/// Most pages connected to the event stream at once; more are refused with 503.
pub const CLIENTS_MAX: usize = 256;

/// Most alerts one `alerts` event carries; when more came since the last poll, the newest are
/// sent and the rest counted as skipped (they are all in the database).
pub const ALERTS_PER_EVENT_MAX: u32 = 100;

/// Most alerts `GET /api/alerts` returns.
pub const ALERTS_LIMIT_MAX: u32 = 1_000;

/// Largest request body accepted (a rule is far smaller).
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;

/// What a board serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The database.
    pub db: PathBuf,
    /// The token every request must carry; required for a non-loopback address.
    pub token: Option<Token>,
    /// The rules in force while the database holds none (the defaults).
    pub base_rules: Arc<RuleBook>,
    /// Whether `base_rules` are the writing run's own, fixed for it (`run --rules` or `--mode`):
    /// then they are shown, the database's are not read, and changes are refused.
    pub rules_fixed: bool,
}

/// Why the board cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without a token.
    #[error(
        "refusing to serve on {0}: it is not a loopback address and no token is set (--token or TICKWATCH_TOKEN)"
    )]
    Exposed(SocketAddr),
    /// No database at the path.
    #[error("no database at {}: `tickwatch run` makes one", .0.display())]
    NoDatabase(PathBuf),
    /// The database cannot be opened.
    #[error("opening database {}: {source}", .path.display())]
    Store {
        /// The database.
        path: PathBuf,
        /// Why.
        #[source]
        source: SqliteError,
    },
    /// The address cannot be listened on.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// A board bound to its address, ready to [`BoardServer::run`].
#[derive(Debug)]
pub struct BoardServer {
    listener: std::net::TcpListener,
    addr: SocketAddr,
    options: ServeOptions,
}

impl BoardServer {
    /// Checks the options and binds `addr` (port 0 picks a free port: see
    /// [`BoardServer::local_addr`]). The database must exist.
    pub fn bind(addr: SocketAddr, options: ServeOptions) -> Result<BoardServer, ServeError> {
        if !addr.ip().is_loopback() && options.token.is_none() {
            return Err(ServeError::Exposed(addr));
        }
        if !options.db.exists() {
            return Err(ServeError::NoDatabase(options.db.clone()));
        }
        // Opened once here so that a bad file is refused before anything listens.
        open(&options.db)?;
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|source| ServeError::Bind { addr, source })?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok(BoardServer {
            listener,
            addr,
            options,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes. Runs on the caller's tokio runtime; the poller runs
    /// on a thread of its own and stops with it.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let reads = open(&self.options.db)?;
        let polls = open(&self.options.db)?;
        let shared = Arc::new(api::Shared::new(
            reads,
            self.options.base_rules.clone(),
            self.options.rules_fixed,
            self.options.token.clone(),
        ));
        let poller = feed::Poller::start(polls, shared.clone());
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        let closing = shared.closing.clone();
        let shutdown = async move {
            shutdown.await;
            // Event streams never end by themselves: end them, so the connections can close.
            closing.send_replace(true);
        };
        let served = axum::serve(listener, api::router(shared))
            .with_graceful_shutdown(shutdown)
            .await;
        poller.stop();
        Ok(served?)
    }
}

fn open(path: &Path) -> Result<SqliteStore, ServeError> {
    SqliteStore::open(path).map_err(|source| ServeError::Store {
        path: path.to_owned(),
        source,
    })
}
