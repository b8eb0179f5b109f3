//! The dashboard's HTTP side: routes, the credential check in front of all
//! of them, body bounds, and the mapping of Control API refusals to HTTP
//! statuses with a one-line JSON error.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::to_bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rswarm_raft::Store;
use serde::Deserialize;
use tonic::{Code, Status};

use super::{actions, token, view};
use crate::error::ManagerError;

/// Where the dashboard finds this node's manager's store, asked on every
/// request: an error (not a manager, locked) is answered 503 with its words.
#[tonic::async_trait]
pub trait StoreSource: Send + Sync + 'static {
    async fn store(&self) -> Result<Store, Status>;

    /// The manager's event log, for the page's list of recent events
    /// (none: the list stays empty).
    async fn events(&self) -> Option<Arc<crate::events::EventLog>> {
        None
    }
}

/// Events the page lists.
const RECENT_EVENTS: usize = 30;

type Source = Arc<dyn StoreSource>;

/// Largest request body accepted (login form, action JSON).
const MAX_BODY: usize = 4 * 1024;
/// The cookie the login form sets.
const COOKIE: &str = "rswarm_dashboard";

const APP_HTML: &str = concat!(
    include_str!("assets/head.html"),
    "<style>",
    include_str!("assets/app.css"),
    "</style>",
    include_str!("assets/app.html"),
    "<script>",
    include_str!("assets/app.js"),
    "</script></body></html>\n"
);
const LOGIN_HTML: &str = concat!(
    include_str!("assets/head.html"),
    "<style>",
    include_str!("assets/app.css"),
    "</style>",
    include_str!("assets/login.html"),
);

/// What the pages may load: only their own inline script and style, and
/// fetches to this origin; no framing (no clickjacking of the actions).
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn html(code: StatusCode, body: String) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn json_error(code: StatusCode, msg: &str) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": msg }).to_string(),
    )
        .into_response()
}

fn status_response(s: Status) -> Response {
    let code = match s.code() {
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(code, s.message())
}

fn login_page(message: &str) -> Response {
    html(
        StatusCode::UNAUTHORIZED,
        LOGIN_HTML.replace("{{message}}", message),
    )
}

/// The credential a request offers: the bearer token, else the cookie.
fn offered(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return v.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// In front of every route but the login form's POST: 503 when this node
/// has no manager, 401 without the current token (the login page for the
/// page itself, a JSON error elsewhere).
async fn require_token(State(source): State<Source>, req: Request, next: Next) -> Response {
    let store = match source.store().await {
        Ok(s) => s,
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, e.message()),
    };
    let ok = match offered(req.headers()) {
        Some(t) => match token::check(&store, &t) {
            Ok(ok) => ok,
            Err(e) => return status_response(e.into()),
        },
        None => false,
    };
    if !ok {
        if req.uri().path() == "/" {
            return login_page("");
        }
        return json_error(
            StatusCode::UNAUTHORIZED,
            "a dashboard token is needed: run `rswarm dashboard token` on a manager",
        );
    }
    let mut req = req;
    req.extensions_mut().insert(store);
    if let Some(log) = source.events().await {
        req.extensions_mut().insert(log);
    }
    next.run(req).await
}

/// An answer that ends a request early (boxed: responses are large).
type Refusal = Box<Response>;

fn store_of(req: &Request) -> Result<Store, Refusal> {
    req.extensions().get::<Store>().cloned().ok_or_else(|| {
        Box::new(json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the request passed no credential check",
        ))
    })
}

async fn page() -> Response {
    html(StatusCode::OK, APP_HTML.to_string())
}

async fn state(req: Request) -> Response {
    let store = match store_of(&req) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match view::snapshot(&store).await {
        Ok(v) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            v.to_string(),
        )
            .into_response(),
        Err(e) => status_response(e),
    }
}

/// The manager's newest events (`rswarm events`' own), newest first, a
/// task's intermediate steps left out.
async fn recent_events(req: Request) -> Response {
    let events = req
        .extensions()
        .get::<Arc<crate::events::EventLog>>()
        // A task's steps between created and running are left out.
        .map(|log| {
            log.recent(RECENT_EVENTS, |e| {
                !(e.r#type == "task" && e.action == "update")
            })
        })
        .unwrap_or_default();
    let list: Vec<serde_json::Value> = events
        .iter()
        .map(|e| {
            let attrs = e.actor.as_ref().map(|a| &a.attributes);
            serde_json::json!({
                "time_nano": e.time_nano,
                "type": e.r#type,
                "action": e.action,
                "id": e.actor.as_ref().map(|a| a.id.as_str()).unwrap_or_default(),
                "name": attrs.and_then(|a| a.get("name")).map(String::as_str).unwrap_or_default(),
            })
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        serde_json::Value::Array(list).to_string(),
    )
        .into_response()
}

/// A JSON body of at most [`MAX_BODY`] bytes, sent as JSON.
async fn json_body<T: for<'de> Deserialize<'de>>(req: Request) -> Result<(Store, T), Refusal> {
    let store = store_of(&req)?;
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(Box::new(json_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "actions take a JSON body (Content-Type: application/json)",
        )));
    }
    let bytes = to_bytes(req.into_body(), MAX_BODY).await.map_err(|_| {
        Box::new(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the request body is over the limit of {MAX_BODY} bytes"),
        ))
    })?;
    let body = serde_json::from_slice(&bytes).map_err(|e| {
        Box::new(json_error(
            StatusCode::BAD_REQUEST,
            &format!("invalid JSON body: {e}"),
        ))
    })?;
    Ok((store, body))
}

fn done(result: Result<(), Status>) -> Response {
    match result {
        Ok(()) => (
            [(header::CONTENT_TYPE, "application/json")],
            "{\"ok\":true}",
        )
            .into_response(),
        Err(e) => status_response(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleBody {
    replicas: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvailabilityBody {
    availability: String,
}

async fn scale(Path(id): Path<String>, req: Request) -> Response {
    match json_body::<ScaleBody>(req).await {
        Ok((store, b)) => done(actions::scale(&store, &id, b.replicas).await),
        Err(r) => *r,
    }
}

async fn force_update(Path(id): Path<String>, req: Request) -> Response {
    match json_body::<Empty>(req).await {
        Ok((store, _)) => done(actions::force_update(&store, &id).await),
        Err(r) => *r,
    }
}

async fn rollback(Path(id): Path<String>, req: Request) -> Response {
    match json_body::<Empty>(req).await {
        Ok((store, _)) => done(actions::rollback(&store, &id).await),
        Err(r) => *r,
    }
}

async fn availability(Path(id): Path<String>, req: Request) -> Response {
    match json_body::<AvailabilityBody>(req).await {
        Ok((store, b)) => match actions::parse_availability(&b.availability) {
            Ok(a) => done(actions::set_availability(&store, &id, a).await),
            Err(e) => status_response(e),
        },
        Err(r) => *r,
    }
}

fn cookie_response(value: &str, max_age: i64) -> Response {
    let cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The login form's POST (`token=…`, form-encoded): a valid token sets the
/// cookie and goes back to the page; anything else is the form again, 401.
async fn login(State(source): State<Source>, req: Request) -> Response {
    let store = match source.store().await {
        Ok(s) => s,
        Err(e) => return json_error(StatusCode::SERVICE_UNAVAILABLE, e.message()),
    };
    let Ok(bytes) = to_bytes(req.into_body(), MAX_BODY).await else {
        return login_page("The form was too large.");
    };
    let text = String::from_utf8_lossy(&bytes);
    let offered = text
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    match token::check(&store, &offered) {
        Ok(true) => cookie_response(&offered, 12 * 3600),
        Ok(false) => login_page("That is not the current dashboard token."),
        Err(e) => status_response(e.into()),
    }
}

async fn logout() -> Response {
    cookie_response("", 0)
}

async fn not_found() -> Response {
    json_error(StatusCode::NOT_FOUND, "no such dashboard path")
}

/// The dashboard's routes, all behind the token check but the login and
/// logout POSTs (logging out of a rotated token must work).
pub fn router(source: Arc<dyn StoreSource>) -> Router {
    let guarded = Router::new()
        .route("/", get(page))
        .route("/api/state", get(state))
        .route("/api/events", get(recent_events))
        .route("/api/services/{id}/scale", post(scale))
        .route("/api/services/{id}/force-update", post(force_update))
        .route("/api/services/{id}/rollback", post(rollback))
        .route("/api/nodes/{id}/availability", post(availability))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            source.clone(),
            require_token,
        ));
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .with_state(source)
        .merge(guarded)
}

/// Bind `addr` and serve the dashboard until the process ends; answers the
/// address bound (a port 0 picks one).
pub async fn serve(addr: &str, source: Arc<dyn StoreSource>) -> Result<SocketAddr, ManagerError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ManagerError::Internal(format!("binding the dashboard on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| ManagerError::Internal(format!("the dashboard's address: {e}")))?;
    let app = router(source);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "dashboard server stopped");
        }
    });
    Ok(local)
}
