//! The live feed: one poller thread reads what changed in the database and every connected page
//! gets it as server-sent events.
//!
//! Events (each `data` is JSON):
//! - `alerts`: `{"alerts": [...], "skipped": N}`: alerts new on the board since the last event,
//!   oldest first (at most [`ALERTS_PER_EVENT_MAX`]; `skipped` counts those left out), and alerts
//!   whose announced flag changed: an alert stored for [`WAITING_AGE_MS`] and still not announced
//!   (the notifier is down, or the run died between storing and announcing) comes with
//!   `"announced": false`, and again with `true` once `notify` or a later run announced it;
//! - `board`: `{"symbols": [...], "untracked": N, "append": true}`: the symbols that changed (all
//!   of them after a rule change, since their thresholds and zones may have moved), each with only
//!   the recent prices that are new since the previous `board` event (`append`: add them to the
//!   ones `GET /api/board` gave, keeping the last 60);
//! - `rules`: the rules in force, after every change;
//! - `health`: the health figures, every [`HEALTH_INTERVAL_MS`];
//! - `resync`: the page fell more than the buffer behind and missed events: it reloads its data.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tickwatch_core::AlertId;
use tickwatch_core::board::BoardAlert;
use tickwatch_core::{Alert, RuleBook, Symbol};
use tickwatch_local::board::{WriterRow, WriterState};
use tickwatch_local::sqlite::SqliteError;
use tickwatch_local::{AlertQuery, Order, SqliteStore};
use tokio::sync::broadcast::error::RecvError;

use crate::api::{ApiError, Shared};
use crate::view::{BoardSymbol, BoardView, Health, RulesView};
use crate::{ALERTS_PER_EVENT_MAX, CLIENTS_MAX, HEALTH_INTERVAL_MS, POLL_INTERVAL_MS};

/// Pending (stored, not announced) alerts the poller follows one by one; beyond this only their
/// count is shown.
const PENDING_FOLLOWED_MAX: u32 = 200;

/// The least time between two `alerts` events: a page renders a few times a second, and fifty
/// pages of a busy run cost a few events a second each.
pub const ALERTS_EVENT_GAP_MS: u64 = 250;

/// The least time between two `board` events (each carries every symbol that moved, with its
/// recent prices: the stream's largest event when many symbols move).
pub const BOARD_EVENT_GAP_MS: u64 = 500;

/// An alert stored this long ago and not announced is waiting (a healthy run announces within
/// its batch, in milliseconds): the page shows it as not announced.
pub const WAITING_AGE_MS: i64 = 2_000;

/// A run that has not written its board for this long may have died (`kill -9` leaves it
/// `running`): alerts it left unannounced are looked for.
const WRITER_STALE_MS: i64 = 5_000;

/// The span over which ticks/s and alerts/s are averaged.
const RATE_WINDOW_MS: i64 = 5_000;

/// A run that has not written its board for this long is idle: its rates are zero.
const RATE_IDLE_MS: i64 = 2_000;

/// How often an idle event stream sends a comment, so proxies and browsers keep it open.
const KEEP_ALIVE_S: u64 = 15;

/// One event, serialized once for every page.
#[derive(Debug)]
pub struct Frame {
    /// The event's name.
    pub event: &'static str,
    /// Its JSON.
    pub data: String,
}

/// The poller thread; stops when dropped or told to.
pub(crate) struct Poller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Poller {
    pub(crate) fn start(store: SqliteStore, shared: Arc<Shared>) -> Poller {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("board-poller".into())
            .spawn({
                let stop = stop.clone();
                move || poll(&store, &shared, &stop)
            })
            .ok();
        if thread.is_none() {
            tracing::error!("board: could not start the poller thread; the page will not update");
        }
        Poller { stop, thread }
    }

    pub(crate) fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Where the poller has got to.
#[derive(Default)]
struct Cursor {
    /// The last board flush sent.
    flush: u64,
    /// The last board alert sent.
    seq: u64,
    /// The writer's count of skipped alerts when last read.
    skipped: u64,
    /// The newest point sent of each symbol, so a `board` event carries only new points.
    points_sent: HashMap<Symbol, i64>,
    /// When the last `board` and `alerts` events went.
    board_sent: Option<Instant>,
    alerts_sent: Option<Instant>,
    /// The rules' change counter when last read; `None` before the first read.
    rules_version: Option<Option<u64>>,
    /// The alerts followed while they wait for their announcement.
    pending: HashMap<AlertId, Alert>,
    /// Stored alerts not announced, at the last health figures.
    pending_count: u64,
    /// (updated ms, ticks, alerts) of recent board writes, for the rates.
    samples: VecDeque<(i64, u64, u64)>,
    health_due: Option<Instant>,
}

fn poll(store: &SqliteStore, shared: &Shared, stop: &AtomicBool) {
    let mut cursor = Cursor::default();
    // Start from now: the page loads what came before with its first requests.
    match start(store, &mut cursor) {
        Ok(()) => {}
        Err(error) => tracing::warn!("board: reading the database: {error}"),
    }
    let mut failing = false;
    while !stop.load(Ordering::SeqCst) {
        match step(store, shared, &mut cursor) {
            Ok(()) => failing = false,
            Err(error) => {
                if !failing {
                    tracing::warn!("board: reading the database: {error}");
                }
                failing = true;
            }
        }
        std::thread::sleep(Duration::from_millis(POLL_INTERVAL_MS));
    }
}

fn start(store: &SqliteStore, cursor: &mut Cursor) -> Result<(), SqliteError> {
    cursor.seq = store.board_alerts_seq()?;
    if let Some(row) = store.board_writer()? {
        cursor.flush = row.flush;
        cursor.skipped = row.alerts_skipped;
    }
    cursor.pending_count = store.pending_count()?;
    Ok(())
}

/// One look at the database; sends what changed.
fn step(store: &SqliteStore, shared: &Shared, cursor: &mut Cursor) -> Result<(), SqliteError> {
    let send = |event: &'static str, data: String| publish(shared, event, data);
    // A run's fixed rules never change; the database's are read when their counter moves.
    let version = if shared.fixed {
        None
    } else {
        store.rules_version_now()?
    };
    let rules_changed = cursor.rules_version != Some(version);
    if rules_changed {
        if !shared.fixed {
            let stored = store.load_rules_now()?;
            match RuleBook::in_force(stored.clone(), &shared.base) {
                Ok(book) => {
                    *shared.book.write().unwrap_or_else(PoisonError::into_inner) = book;
                }
                Err(error) => {
                    tracing::warn!("board: the stored rules do not make a rule book: {error}")
                }
            }
            if cursor.rules_version.is_some() {
                send(
                    "rules",
                    to_json(&RulesView::new(stored.as_ref(), &shared.base)),
                );
            }
        }
        cursor.rules_version = Some(version);
    }

    let row = store.board_writer()?;
    let flush = row.as_ref().map_or(0, |row| row.flush);
    let now = Instant::now();
    let due = |sent: Option<Instant>, gap_ms: u64| {
        sent.is_none_or(|at| now.duration_since(at) >= Duration::from_millis(gap_ms))
    };
    // A busy run changes the board at every write: one event per BOARD_EVENT_GAP_MS carries all
    // of it (a rule change goes at once).
    if (flush != cursor.flush && due(cursor.board_sent, BOARD_EVENT_GAP_MS))
        || (rules_changed && flush > 0)
    {
        // After a rule change every symbol's thresholds and zone may have moved.
        let after = if rules_changed {
            0
        } else {
            cursor.flush.min(flush)
        };
        let book = shared.book();
        let symbols = store
            .board_symbols(after)?
            .into_iter()
            .map(|mut view| {
                let newest = view.points.last().map(|(ms, _)| *ms);
                if let Some(sent) = cursor.points_sent.get(&view.symbol) {
                    view.points.retain(|(ms, _)| ms > sent);
                }
                if let Some(newest) = newest {
                    cursor.points_sent.insert(view.symbol, newest);
                }
                BoardSymbol::new(view, &book)
            })
            .collect();
        let untracked = row.as_ref().map_or(0, |row| row.totals.untracked);
        let view = BoardView {
            symbols,
            untracked,
            append: true,
        };
        send("board", to_json(&view));
        cursor.board_sent = Some(now);
        cursor.flush = flush;
        if let Some(row) = &row {
            sample(cursor, row);
        }
    }

    if due(cursor.alerts_sent, ALERTS_EVENT_GAP_MS)
        && send_alerts(store, shared, cursor, row.as_ref())?
    {
        cursor.alerts_sent = Some(now);
    }

    if cursor.health_due.is_none_or(|due| now >= due) {
        cursor.health_due = Some(now + Duration::from_millis(HEALTH_INTERVAL_MS));
        let clients = shared.clients.load(Ordering::SeqCst);
        cursor.pending_count = store.pending_count()?;
        let health = Health::new(row.as_ref(), rates(cursor), cursor.pending_count, clients);
        send("health", to_json(&health));
        *shared.health.lock().unwrap_or_else(PoisonError::into_inner) = health;
    }
    Ok(())
}

/// Sends what changed in the alerts since the last `alerts` event: new board alerts (the newest
/// [`ALERTS_PER_EVENT_MAX`], the rest counted as skipped) and waiting alerts found or announced.
/// Whether an event was sent.
fn send_alerts(
    store: &SqliteStore,
    shared: &Shared,
    cursor: &mut Cursor,
    row: Option<&WriterRow>,
) -> Result<bool, SqliteError> {
    let mut alerts: Vec<BoardAlert> = Vec::new();
    let mut skipped = 0;
    let fresh = store.board_alerts(cursor.seq, ALERTS_PER_EVENT_MAX)?;

    if let Some(last) = fresh.last() {
        skipped += last.seq - cursor.seq - fresh.len() as u64;
        cursor.seq = last.seq;
    }
    alerts.extend(fresh.into_iter().map(|a| a.alert));
    if let Some(row) = row {
        skipped += row.alerts_skipped.saturating_sub(cursor.skipped);
        cursor.skipped = row.alerts_skipped;
    }
    let now_ms = now_ms();
    // Stored alerts wait for their announcement for milliseconds in a healthy run: they are
    // looked for only when some may be stuck (a failing or gone run), and shown once older
    // than WAITING_AGE_MS, so a busy run's in-flight alerts never flicker to "not announced".
    let troubled = match row {
        None => true,
        Some(row) => {
            row.writer.state != WriterState::Running
                || row.totals.failed > 0
                || now_ms - row.writer.updated.epoch_ms() > WRITER_STALE_MS
        }
    };
    let (now_pending, complete) =
        if (troubled && cursor.pending_count > 0) || !cursor.pending.is_empty() {
            waiting(store, now_ms)?
        } else {
            (HashMap::new(), true)
        };
    for (id, alert) in &now_pending {
        if !cursor.pending.contains_key(id) {
            alerts.push(BoardAlert {
                alert: *alert,
                announced: false,
            });
        }
    }
    if complete {
        // Followed alerts no longer pending have been announced.
        for (id, alert) in &cursor.pending {
            if !now_pending.contains_key(id) {
                alerts.push(BoardAlert {
                    alert: *alert,
                    announced: true,
                });
            }
        }
    }
    cursor.pending = now_pending;
    if alerts.is_empty() && skipped == 0 {
        return Ok(false);
    }
    let data = to_json(&json!({ "alerts": alerts, "skipped": skipped }));
    publish(shared, "alerts", data);
    Ok(true)
}

/// Sends an event to every connected page (none connected is not an error).
fn publish(shared: &Shared, event: &'static str, data: String) {
    let _ = shared.hub.send(Arc::new(Frame { event, data }));
}

/// The waiting alerts followed (of the oldest [`PENDING_FOLLOWED_MAX`] not announced, those
/// stored over [`WAITING_AGE_MS`] ago), and whether that is all of them.
fn waiting(
    store: &SqliteStore,
    now_ms: i64,
) -> Result<(HashMap<AlertId, Alert>, bool), SqliteError> {
    let found = store.query(&AlertQuery {
        pending_only: true,
        limit: PENDING_FOLLOWED_MAX,
        order: Order::OldestFirst,
        ..AlertQuery::default()
    })?;
    let complete = found.len() < PENDING_FOLLOWED_MAX as usize;
    Ok((
        found
            .into_iter()
            .filter(|stored| now_ms - stored.alert.processed_at.epoch_ms() >= WAITING_AGE_MS)
            .map(|stored| (stored.alert.alert_id, stored.alert))
            .collect(),
        complete,
    ))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn sample(cursor: &mut Cursor, row: &WriterRow) {
    let updated = row.writer.updated.epoch_ms();
    if cursor.samples.back().is_some_and(|(at, ..)| *at >= updated) {
        cursor.samples.clear();
    }
    cursor
        .samples
        .push_back((updated, row.totals.ticks, row.totals.alerts));
    while cursor
        .samples
        .front()
        .is_some_and(|(at, ..)| updated - at > RATE_WINDOW_MS)
    {
        cursor.samples.pop_front();
    }
}

/// Ticks/s and alerts/s over the recent board writes; zero when the run is idle.
fn rates(cursor: &Cursor) -> (f64, f64) {
    let (Some(first), Some(last)) = (cursor.samples.front(), cursor.samples.back()) else {
        return (0.0, 0.0);
    };
    let now_ms = now_ms();
    let span_ms = last.0 - first.0;
    if span_ms <= 0 || now_ms - last.0 > RATE_IDLE_MS {
        return (0.0, 0.0);
    }
    let per_s = |delta: u64| delta as f64 * 1_000.0 / span_ms as f64;
    (
        per_s(last.1.saturating_sub(first.1)),
        per_s(last.2.saturating_sub(first.2)),
    )
}

fn to_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| json!({ "error": e.to_string() }).to_string())
}

/// Counts a connected page while its stream lives.
struct Connected(Arc<Shared>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `GET /api/events`: the event stream.
pub(crate) async fn events(State(shared): State<Arc<Shared>>) -> Response {
    let admitted = shared
        .clients
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < CLIENTS_MAX).then_some(n + 1)
        })
        .is_ok();
    if !admitted {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "clients",
            format!("{CLIENTS_MAX} pages are connected already"),
        )
        .into_response();
    }
    let connected = Connected(shared.clone());
    let receiver = shared.hub.subscribe();
    let closing = shared.closing.subscribe();
    let stream = futures_util::stream::unfold(
        (receiver, closing, connected),
        |(mut receiver, mut closing, connected)| async move {
            if *closing.borrow() {
                return None;
            }
            let event = tokio::select! {
                _ = closing.changed() => return None,
                received = receiver.recv() => match received {
                    Ok(frame) => Event::default().event(frame.event).data(&frame.data),
                    Err(RecvError::Lagged(_)) => Event::default().event("resync").data("{}"),
                    Err(RecvError::Closed) => return None,
                },
            };
            Some((Ok::<_, Infallible>(event), (receiver, closing, connected)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(KEEP_ALIVE_S)))
        .into_response()
}
