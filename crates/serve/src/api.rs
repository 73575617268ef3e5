//! The routes: the page and its assets, the JSON endpoints and the rule changes.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tickwatch_core::board::BoardAlert;
use tickwatch_core::rules::{EditError, Rule, RuleDoc, RuleEdit, RuleId, RulesError, apply_edit};
use tickwatch_core::{AlertKind, RuleBook, Symbol};
use tickwatch_local::sqlite::{SqliteError, StoreError};
use tickwatch_local::{AlertQuery, Order, SqliteStore};
use tokio::sync::{broadcast, watch};

use crate::feed::{self, Frame};
use crate::guard::{self, Token};
use crate::view::{BoardSymbol, BoardView, Health, RulesView};
use crate::{ALERTS_LIMIT_MAX, REQUEST_BODY_BYTES_MAX};

/// Events kept for a page that reads slowly; one that falls further behind is told to reload.
const EVENTS_BUFFERED_MAX: usize = 64;

/// Alerts `GET /api/alerts` returns when no limit is given.
const ALERTS_LIMIT_DEFAULT: u32 = 200;

const INDEX_HTML: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// What every request handler and the poller share.
pub(crate) struct Shared {
    /// Reads for requests, and rule changes.
    pub(crate) store: Arc<SqliteStore>,
    /// The rules in force while the database holds none.
    pub(crate) base: Arc<RuleBook>,
    /// Whether `base` are the run's fixed rules (see [`crate::ServeOptions::rules_fixed`]).
    pub(crate) fixed: bool,
    pub(crate) token: Option<Token>,
    /// The events for every connected page.
    pub(crate) hub: broadcast::Sender<Arc<Frame>>,
    /// Pages connected to the event stream.
    pub(crate) clients: AtomicUsize,
    /// The rules in force, as the poller last read them.
    pub(crate) book: RwLock<Arc<RuleBook>>,
    /// The health figures, as the poller last computed them.
    pub(crate) health: Mutex<Health>,
    /// Set when the server shuts down: every event stream ends.
    pub(crate) closing: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(
        store: SqliteStore,
        base: Arc<RuleBook>,
        fixed: bool,
        token: Option<Token>,
    ) -> Shared {
        let (hub, _) = broadcast::channel(EVENTS_BUFFERED_MAX);
        Shared {
            store: Arc::new(store),
            book: RwLock::new(base.clone()),
            base,
            fixed,
            token,
            hub,
            clients: AtomicUsize::new(0),
            health: Mutex::new(Health::new(None, (0.0, 0.0), 0, 0)),
            closing: watch::Sender::new(false),
        }
    }

    pub(crate) fn book(&self) -> Arc<RuleBook> {
        self.book
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Every route, behind the guard.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route("/api/alerts", get(alerts))
        .route("/api/board", get(board))
        .route("/api/health", get(health))
        .route("/api/rules", get(rules).post(add_rule))
        .route("/api/rules/{id}", axum::routing::delete(remove_rule))
        .route("/api/rules/{id}/{action}", post(change_rule))
        .route("/api/events", get(feed::events))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "path", "no such page") })
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(middleware::from_fn_with_state(shared.clone(), guard::guard))
        .with_state(shared)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// An error answer: `{"error": {"field": ..., "reason": ...}}`, the field the page shows it next
/// to.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    field: String,
    reason: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, field: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    fn store(error: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "store", error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "field": self.field, "reason": self.reason } });
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<RulesError> for ApiError {
    fn from(error: RulesError) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, &error.location, error.reason)
    }
}

impl From<EditError<StoreError>> for ApiError {
    fn from(error: EditError<StoreError>) -> ApiError {
        match error {
            EditError::Invalid(error) => error.into(),
            EditError::Missing(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "id",
                format!("no rule has the id {id}"),
            ),
            EditError::Store(error) => ApiError::store(error),
            EditError::Contended => ApiError::new(StatusCode::CONFLICT, "rules", error.to_string()),
        }
    }
}

/// Runs a database call off the async threads.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, SqliteError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(ApiError::store)?
        .map_err(ApiError::store)
}

#[derive(Debug, Deserialize)]
struct AlertParams {
    symbol: Option<String>,
    kind: Option<String>,
    rule: Option<String>,
    limit: Option<String>,
}

/// `GET /api/alerts`: the newest alerts (by tick time), filtered.
async fn alerts(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<AlertParams>,
) -> Result<Response, ApiError> {
    let bad = |field: &str, reason: String| ApiError::new(StatusCode::BAD_REQUEST, field, reason);
    let given = |value: Option<String>| value.filter(|v| !v.is_empty());
    let query = AlertQuery {
        symbol: given(params.symbol)
            .map(|s| Symbol::parse(&s))
            .transpose()
            .map_err(|e| bad("symbol", e.to_string()))?,
        kind: given(params.kind)
            .map(|k| k.parse::<AlertKind>())
            .transpose()
            .map_err(|e| bad("kind", e.to_string()))?,
        rule: given(params.rule).map(|r| RuleId::parse(&r)).transpose()?,
        limit: match given(params.limit) {
            None => ALERTS_LIMIT_DEFAULT,
            Some(text) => text
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=ALERTS_LIMIT_MAX).contains(n))
                .ok_or_else(|| {
                    bad(
                        "limit",
                        format!("must be a whole number from 1 to {ALERTS_LIMIT_MAX}"),
                    )
                })?,
        },
        order: Order::NewestFirst,
        ..AlertQuery::default()
    };
    let store = shared.store.clone();
    let found = blocking(move || store.query(&query)).await?;
    let alerts: Vec<BoardAlert> = found
        .into_iter()
        .map(|stored| BoardAlert {
            alert: stored.alert,
            announced: stored.notified,
        })
        .collect();
    Ok(axum::Json(json!({ "alerts": alerts })).into_response())
}

/// `GET /api/board`: every symbol on the board.
async fn board(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    let store = shared.store.clone();
    let (views, writer) =
        blocking(move || Ok((store.board_symbols(0)?, store.board_writer()?))).await?;
    let book = shared.book();
    let view = BoardView {
        symbols: views
            .into_iter()
            .map(|view| BoardSymbol::new(view, &book))
            .collect(),
        untracked: writer.map_or(0, |w| w.totals.untracked),
        append: false,
    };
    Ok(axum::Json(view).into_response())
}

/// `GET /api/health`.
async fn health(State(shared): State<Arc<Shared>>) -> Response {
    let mut health = shared
        .health
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    health.clients = shared.clients.load(std::sync::atomic::Ordering::SeqCst);
    axum::Json(health).into_response()
}

/// `GET /api/rules`: the rules in force.
async fn rules(State(shared): State<Arc<Shared>>) -> Result<Response, ApiError> {
    if shared.fixed {
        return Ok(axum::Json(RulesView::new(None, &shared.base)).into_response());
    }
    let store = shared.store.clone();
    let stored = blocking(move || store.load_rules_now()).await?;
    Ok(axum::Json(RulesView::new(stored.as_ref(), &shared.base)).into_response())
}

/// `POST /api/rules`: adds a rule (a JSON rule document without its version).
async fn add_rule(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "rule", "the body is not UTF-8"))?;
    let rule = Rule::from_doc(RuleDoc::from_json(text)?)?;
    let id = rule.id();
    let doc = edit(&shared, RuleEdit::Add(rule), id).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "rule": doc }))).into_response())
}

/// `POST /api/rules/{id}/pause|resume|rearm`.
async fn change_rule(
    State(shared): State<Arc<Shared>>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = RuleId::parse(&id)?;
    let change = match action.as_str() {
        "pause" => RuleEdit::Pause(id),
        "resume" => RuleEdit::Resume(id),
        "rearm" => RuleEdit::Rearm(id),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "action",
                "a rule can be paused, resumed or re-armed (pause, resume, rearm)",
            ));
        }
    };
    let doc = edit(&shared, change, id).await?;
    Ok(axum::Json(json!({ "rule": doc })).into_response())
}

/// `DELETE /api/rules/{id}`.
async fn remove_rule(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = RuleId::parse(&id)?;
    edit(&shared, RuleEdit::Remove(id), id).await?;
    Ok(axum::Json(json!({})).into_response())
}

/// Applies `change` (see [`apply_edit`]) and returns rule `id` as it now stands.
async fn edit(shared: &Shared, change: RuleEdit, id: RuleId) -> Result<Option<RuleDoc>, ApiError> {
    if shared.fixed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "rules",
            "this run's rules come from its --rules file or --mode and do not change while it runs: change them there and start it again",
        ));
    }
    let store = shared.store.clone();
    let base: Vec<Rule> = shared.base.rules().iter().map(|r| (**r).clone()).collect();
    let removing = matches!(change, RuleEdit::Remove(_));
    let plan = tokio::task::spawn_blocking(move || ready(apply_edit(&*store, &base, change)))
        .await
        .map_err(ApiError::store)??;
    if removing {
        return Ok(None);
    }
    Ok(plan
        .put
        .iter()
        .find(|r| r.id() == id)
        .map(|r| r.doc().clone()))
}

/// Waits for a store future on a blocking thread (the SQLite store's calls are short
/// transactions on the calling thread, so they belong off the async threads).
pub(crate) fn ready<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(future)
}
