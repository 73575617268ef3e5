//! Ctrl-C, watched from before a command says it is ready until it ends.

use std::future::Future as _;
use std::task::Poll;

use anyhow::Context as _;
use tokio::sync::watch;

/// Whether Ctrl-C (SIGINT) has come, from one listener registered before [`Interrupt::watch`]
/// returns: every Ctrl-C from then on is seen, whenever it is looked for.
///
/// One listener for the whole command: `tickwatch run --serve` once made a second `ctrl_c()` when
/// its input ended, and a Ctrl-C that came before that one's first poll went to the first
/// listener and was lost, so the board stayed up for good. And registered at once: a listener
/// registered at the first poll of a future leaves the default action (the process killed) to a
/// Ctrl-C that comes before.
pub(crate) struct Interrupt(watch::Receiver<bool>);

impl Interrupt {
    /// Registers the listener; it then runs as a task on `runtime` (a current-thread runtime
    /// takes the Ctrl-C in when it next runs).
    pub(crate) fn watch(runtime: &tokio::runtime::Runtime) -> anyhow::Result<Interrupt> {
        let (set, seen) = watch::channel(false);
        let mut ctrl_c = Box::pin(tokio::signal::ctrl_c());
        // The first poll registers the handler; the task then polls on (with its own waker).
        let first = runtime.block_on(std::future::poll_fn(|cx| {
            Poll::Ready(ctrl_c.as_mut().poll(cx))
        }));
        match first {
            Poll::Ready(Err(error)) => return Err(error).context("listening for Ctrl-C"),
            Poll::Ready(Ok(())) => {
                set.send_replace(true);
            }
            Poll::Pending => {
                runtime.spawn(async move {
                    if ctrl_c.await.is_ok() {
                        set.send_replace(true);
                    }
                });
            }
        }
        Ok(Interrupt(seen))
    }

    /// Whether Ctrl-C has come.
    pub(crate) fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Ctrl-C (at once if it has come already).
    pub(crate) async fn come(&mut self) {
        // An error: the listener failed, so no Ctrl-C can be seen; the caller stops at once.
        let _ = self.0.wait_for(|set| *set).await;
    }
}
