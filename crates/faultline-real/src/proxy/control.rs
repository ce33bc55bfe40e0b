//! The control API: a small HTTP/JSON server on a local address, after Toxiproxy's (routes
//! are its proxies, faults its toxics).
//!
//! - `GET /routes`: every route with its address, upstream, faults (with ids) and counters.
//! - `GET /faults`: the fault names with a real mechanism.
//! - `POST /routes/{name}/faults` with a fault as JSON (the proxy file's fields) → `{"id": N}`.
//! - `DELETE /routes/{name}/faults/{id}` and `DELETE /routes/{name}/faults`.
//!
//! Errors are `{"error": "one line"}` with 400 (a bad fault) or 404 (no such route or id).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::{FaultHandle, ProxyError, Shared, spec};
use crate::faults;

pub(super) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let app = Router::new()
        .route("/routes", get(routes))
        .route("/faults", get(fault_names))
        .route("/routes/{name}/faults", get(route_faults).post(add).delete(clear))
        .route("/routes/{name}/faults/{id}", delete(remove))
        .with_state(shared);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    // An error here is the listener failing; the proxy's routes go on without the API.
    let _ = axum::serve(listener, app).with_graceful_shutdown(stop).await;
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": faultline::input::one_line(message) }))).into_response()
}

fn proxy_error(e: &ProxyError) -> Response {
    let status = match e {
        ProxyError::UnknownRoute(_) | ProxyError::UnknownFault { .. } => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    };
    failure(status, &e.to_string())
}

async fn routes(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(shared.info()).into_response()
}

async fn fault_names() -> Response {
    let stream: Vec<&str> = faults::STREAM_NAMES.iter().map(|(n, _)| *n).collect();
    let process: Vec<&str> = faults::PROCESS_NAMES.iter().map(|(n, _)| *n).collect();
    axum::Json(json!({ "stream": stream, "process": process })).into_response()
}

async fn route_faults(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match shared.route(&name) {
        Ok(r) => axum::Json(r.faults.borrow().as_ref().clone()).into_response(),
        Err(e) => proxy_error(&e),
    }
}

async fn add(State(shared): State<Arc<Shared>>, Path(name): Path<String>, body: Bytes) -> Response {
    if let Err(e) = shared.route(&name) {
        return proxy_error(&e);
    }
    let fault = match spec::from_json(&body) {
        Ok(f) => f,
        Err(e) => return failure(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match shared.add_fault(&name, fault) {
        Ok(FaultHandle(id)) => (StatusCode::CREATED, axum::Json(json!({ "id": id }))).into_response(),
        Err(e) => proxy_error(&e),
    }
}

async fn remove(State(shared): State<Arc<Shared>>, Path((name, id)): Path<(String, String)>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return failure(StatusCode::NOT_FOUND, &format!("'{}' is not a fault id", faultline::input::elide(&id)));
    };
    match shared.remove_fault(&name, FaultHandle(id)) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => proxy_error(&e),
    }
}

async fn clear(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    match shared.clear(&name) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => proxy_error(&e),
    }
}
