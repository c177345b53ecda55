//! The job WebSocket `GET /api/v1/ws/jobs`, with the subscription rule of
//! [`patchdeck_proto::lpa::ws`]: a `connected` event first, then every job's events until a
//! `subscribe` with a job id narrows the stream; `job_status` for every status change and
//! `job_complete` after a terminal one; a `subscribed`/`unsubscribed`/`pong` answer to each client
//! message and an `error` event (`invalid_message`) for one that cannot be parsed, the connection
//! staying open. The server pings every [`PING_EVERY`] and closes the connection when nothing
//! (message, pong, ping) has arrived for [`IDLE_LIMIT`]. Binary frames are ignored. A client that
//! falls more than the engine's event buffer behind skips events (it can re-read the job).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use jiff::Timestamp;
use patchdeck_proto::lpa::{ClientMessage, ErrorCode, ServerEvent, Subscription};
use tokio::sync::broadcast;
use tokio::time::Instant;
use uuid::Uuid;

use super::ApiState;
use crate::jobs::{JobEvent, JobEventKind};

/// How often the server pings.
pub const PING_EVERY: Duration = Duration::from_secs(5);
/// How long the server waits for anything from the client before closing.
pub const IDLE_LIMIT: Duration = Duration::from_secs(10);
/// Largest client message accepted.
const MAX_MESSAGE: usize = 64 * 1024;

/// `GET /api/v1/ws/jobs`.
pub async fn get_ws_jobs(State(state): State<ApiState>, upgrade: WebSocketUpgrade) -> Response {
    let events = state.engine().subscribe();
    upgrade.max_message_size(MAX_MESSAGE).on_upgrade(move |socket| session(socket, events))
}

/// The wire event of a job status change (log lines are not sent).
pub fn server_event(event: &JobEvent) -> Option<ServerEvent> {
    if event.kind != JobEventKind::Status {
        return None;
    }
    let mut out = ServerEvent::job(event.job_id, event.status, event.progress, event.message.clone(), event.timestamp);
    if let Some(error) = &event.error {
        let code = event.error_code.as_deref().and_then(ErrorCode::parse).unwrap_or(ErrorCode::UnknownError);
        out = out.with_error(error.clone(), code);
    }
    Some(out)
}

async fn session(mut socket: WebSocket, mut events: broadcast::Receiver<JobEvent>) {
    let connection = Uuid::new_v4();
    let mut subscription = Subscription::default();
    if send(&mut socket, &ServerEvent::connected(connection, Timestamp::now())).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    let Some(status) = server_event(&event) else { continue };
                    if !subscription.wants(&status) {
                        continue;
                    }
                    if send(&mut socket, &status).await.is_err() {
                        return;
                    }
                    if let Some(complete) = status.completion() {
                        if send(&mut socket, &complete).await.is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    tracing::debug!(%connection, skipped, "websocket client fell behind; events skipped");
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1001, reason: "agent stopping".into() }))).await;
                    return;
                }
            },
            message = socket.recv() => {
                let Some(Ok(message)) = message else { return };
                last_heard = Instant::now();
                let reply = match message {
                    Message::Text(text) => Some(answer(&mut subscription, text.as_str())),
                    Message::Close(_) => return,
                    Message::Binary(_) | Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(reply) = reply {
                    if send(&mut socket, &reply).await.is_err() {
                        return;
                    }
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() >= IDLE_LIMIT {
                    tracing::debug!(%connection, "websocket client silent; closing");
                    let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "idle".into() }))).await;
                    return;
                }
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Applies one client text message and returns the event that answers it.
pub fn answer(subscription: &mut Subscription, text: &str) -> ServerEvent {
    let now = Timestamp::now();
    match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => {
            subscription.apply(&message);
            match message {
                ClientMessage::Subscribe { job_id } => ServerEvent::subscribed(job_id, now),
                ClientMessage::Unsubscribe { job_id } => ServerEvent::unsubscribed(job_id, now),
                ClientMessage::Ping => ServerEvent::pong(now),
            }
        }
        Err(e) => ServerEvent::invalid_message(format!("message not understood: {e}"), now),
    }
}

async fn send(socket: &mut WebSocket, event: &ServerEvent) -> Result<(), axum::Error> {
    let text = serde_json::to_string(event).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}
