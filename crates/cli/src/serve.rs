//! `tickwatch serve`, and the board of `tickwatch run --serve`: the board server of
//! `tickwatch-serve` on a runtime of its own.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use tickwatch_core::RuleBook;
use tickwatch_serve::{BoardServer, ServeOptions, Token};
use tokio::sync::oneshot;

use crate::Completion;
use crate::args::{ServeArgs, TokenArg};
use crate::interrupt::Interrupt;

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<Completion> {
    let board = bind(args.listen, &args.db, &args.token, None)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut interrupt = Interrupt::watch(&runtime)?;
    announce(
        "tickwatch serve",
        &board,
        &args.db,
        args.token.token.is_some(),
    );
    runtime.block_on(board.run(async move { interrupt.come().await }))?;
    Ok(Completion::Clean)
}

/// Checks the token and the address, and binds. `fixed`: the rules of a run that takes them
/// from `--rules` or `--mode` (shown, not editable).
pub(crate) fn bind(
    addr: SocketAddr,
    db: &Path,
    token: &TokenArg,
    fixed: Option<Arc<RuleBook>>,
) -> anyhow::Result<BoardServer> {
    let token = token
        .token
        .as_deref()
        .map(Token::parse)
        .transpose()
        .context("--token (or TICKWATCH_TOKEN)")?;
    let options = ServeOptions {
        db: db.to_owned(),
        token,
        rules_fixed: fixed.is_some(),
        base_rules: fixed.unwrap_or_else(|| Arc::new(RuleBook::defaults())),
    };
    Ok(BoardServer::bind(addr, options)?)
}

/// Says where the board is (tests read this line for the address).
pub(crate) fn announce(who: &str, board: &BoardServer, db: &Path, token: bool) {
    let addr = board.local_addr();
    eprintln!("{who}: the board of {} is at http://{addr}/", db.display());
    if token {
        eprintln!("  it needs the token: open http://{addr}/?token=TOKEN once in the browser");
    }
}

/// A board serving on a thread of its own while this thread runs the pipeline.
pub(crate) struct Serving {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Serving {
    pub(crate) fn start(board: BoardServer) -> anyhow::Result<Serving> {
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("board".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(board.run(async {
                    let _ = stopped.await;
                }))?;
                Ok(())
            })?;
        Ok(Serving {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the board and reports how it ended.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        self.halt()
    }

    fn halt(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => anyhow::bail!("the board's thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Err(error) = self.halt() {
            eprintln!("tickwatch run: the board: {error:#}");
        }
    }
}
