//! The handlers: each a thin call of the orchestrator's public API.

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{Stream, StreamExt};
use orchestrate_core::journal::{CallTree, ExecutionView, ExportOptions};
use orchestrate_core::store::ExecutionQuery;
use orchestrate_core::{CancelRequest, ExecutionId, ExecutionStatus, Orchestrator, RunOptions};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::problem::Problem;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) orchestrator: Orchestrator,
}

type Answer = Result<Response, Problem>;

pub(crate) async fn health(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"status": "ok", "running": state.orchestrator.running_count()}))
}

pub(crate) async fn workflows(State(state): State<AppState>) -> Json<Value> {
    Json(json!({"workflows": state.orchestrator.workflow_names()}))
}

/// `POST /workflows/{name}/executions`: the body is the input; an
/// `Idempotency-Key` header returns the execution it started before.
pub(crate) async fn execute(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Answer {
    let Json(input) = body?;
    let workflow = state.orchestrator.workflow(&name).ok_or_else(|| {
        Problem::from(orchestrate_core::Error::UnknownWorkflow {
            workflow: name.as_str().into(),
        })
    })?;
    let mut options = RunOptions::default();
    if let Some(key) = headers.get("idempotency-key") {
        let key = key.to_str().map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "bad_idempotency_key",
                "the Idempotency-Key header is not visible ASCII",
            )
        })?;
        // One key space per workflow: the same key on two workflows names
        // two executions.
        options = options.idempotency_key(format!("{name}/{key}"));
    }
    // Kept only to compare with a keyed execution found rather than started.
    let sent = options.idempotency_key.is_some().then(|| input.clone());
    let execution = state
        .orchestrator
        .run_with(&workflow, input, options)
        .await?;
    if let Some(input) = sent {
        // The execution the key named before, started on another input:
        // the key was reused by mistake, and nothing was started for it.
        let view = execution.view();
        if view.workflow() == name.as_str() && view.input() != &input {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Unprocessable Content",
                "idempotency_key_reused",
                format!(
                    "this Idempotency-Key started execution {} on another input",
                    execution.id()
                ),
            ));
        }
    }
    let id = execution.id().to_string();
    let location = format!("/executions/{id}");
    let body = Json(json!({"id": id, "status": execution.status()}));
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], body).into_response())
}

/// `GET /executions` query: `limit` (default 50, at most 1,000), `after`
/// (the last id of the previous page), `status`, `workflow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
    status: Option<ExecutionStatus>,
    workflow: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Answer {
    let Query(query) = query.map_err(|e| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "bad_query",
            e.body_text(),
        )
    })?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1_000);
    let all = state
        .orchestrator
        .store()
        .list_executions(&ExecutionQuery {
            status: query.status,
            workflow: query.workflow,
            limit: 0,
        })
        .await
        .map_err(|e| Problem::from(orchestrate_core::Error::from(e)))?;
    let start = match &query.after {
        Some(after) => {
            let at = all.iter().position(|e| e.id.as_str() == after);
            // Not "the end": a cursor this listing never gave.
            1 + at.ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    "bad_cursor",
                    format!("`after={after}` is no execution of this listing"),
                )
            })?
        }
        None => 0,
    };
    let page: Vec<Value> = all[start..]
        .iter()
        .take(limit)
        .map(|e| {
            json!({"id": e.id.to_string(), "workflow": e.workflow, "status": e.status, "events": e.events})
        })
        .collect();
    let next = (start + page.len() < all.len())
        .then(|| {
            page.last()
                .and_then(|e| e["id"].as_str())
                .map(str::to_owned)
        })
        .flatten();
    Ok(Json(json!({"executions": page, "next": next})).into_response())
}

pub(crate) async fn status(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let view = state.orchestrator.execution(&id.into()).await?.view();
    Ok(Json(describe(&view)).into_response())
}

/// An execution's status and progress, as JSON.
fn describe(view: &ExecutionView) -> Value {
    let steps: Vec<Value> = view
        .steps()
        .iter()
        .map(|s| json!({"id": s.id, "status": s.status, "attempts": s.attempts, "error": s.error}))
        .collect();
    let finished = view
        .steps()
        .iter()
        .filter(|s| s.status.is_terminal())
        .count();
    json!({
        "id": view.id().map(ToString::to_string),
        "workflow": view.workflow(),
        "status": view.status(),
        "error": view.error(),
        "progress": {"finished": finished, "steps": steps.len()},
        "steps": steps,
    })
}

pub(crate) async fn journal(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let execution = state.orchestrator.execution(&id.into()).await?;
    let text = execution.export_json(&ExportOptions::default()).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}

pub(crate) async fn tree(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let view = state.orchestrator.execution(&id.into()).await?.view();
    Ok(Json(tree_json(view.calls())).into_response())
}

/// Every call of `tree`, with its children's ids.
fn tree_json(tree: &CallTree) -> Value {
    let calls: Vec<Value> = tree
        .calls()
        .iter()
        .map(|c| {
            json!({
                "id": c.id, "parent": c.parent, "agent": c.agent, "label": c.label,
                "depth": c.depth, "status": c.status, "attempts": c.attempts,
                "started_us": c.started_us, "finished_us": c.finished_us,
                "error": c.error, "children": c.children,
            })
        })
        .collect();
    json!({"calls": calls})
}

/// Cancels an execution here, or asks the replica running it to: the
/// body's `cancel` says which (`cancelling`, `requested`, or `finished`
/// when there was nothing left to cancel).
pub(crate) async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let id = ExecutionId::from(id);
    let (cancel, status) = match state.orchestrator.request_cancel(&id).await? {
        CancelRequest::Here(execution) => ("cancelling", execution.status()),
        CancelRequest::Finished(execution) => ("finished", execution.status()),
        // Requested, or an outcome this server does not know yet.
        _ => (
            "requested",
            state.orchestrator.execution(&id).await?.status(),
        ),
    };
    let body = json!({"id": id.as_str(), "status": status, "cancel": cancel});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `POST /executions/{id}/approve` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Approval {
    step: String,
    #[serde(default)]
    value: Value,
}

pub(crate) async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<Approval>, JsonRejection>,
) -> Answer {
    let Json(approval) = body?;
    let execution = state
        .orchestrator
        .approve(&id.into(), &approval.step, approval.value)
        .await?;
    let body = json!({"id": execution.id().to_string(), "status": execution.status()});
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /executions/{id}/events`: every event as a server-sent event
/// (`id` its sequence number, `event` its type), live until the execution
/// ends; `Last-Event-ID` resumes after that event.
pub(crate) async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    let after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "Bad Request",
                        "bad_last_event_id",
                        "Last-Event-ID is an event's sequence number",
                    )
                })?,
        ),
    };
    let id: ExecutionId = id.into();
    let execution = state.orchestrator.execution(&id).await?;
    let stream = execution
        .events()
        .await?
        .filter(move |e| std::future::ready(after.is_none_or(|a| e.seq > a)))
        .map(|event| {
            let data = serde_json::to_string(&*event).unwrap_or_default();
            Ok(SseEvent::default()
                .id(event.seq.to_string())
                .event(event.kind.name())
                .data(data))
        });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
