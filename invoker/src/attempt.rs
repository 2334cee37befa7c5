//! The attempt loop: one task that writes the request body, reads the response, hands
//! events to the caller and takes its inputs, all concurrently.
//!
//! Everything happens in one `select!` loop rather than in separate reader and writer
//! tasks, so that the order of events is simply the order of frames, the session state
//! needs no locking, and nothing outlives `run_attempt`. No arm ever blocks the others:
//! events wait in a queue until the caller takes them (reading pauses meanwhile, which is
//! the backpressure), and writes wait in a queue until hyper takes them, so a slow caller
//! and a slow SDK cannot deadlock each other.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::future::pending;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::ResponseFuture;
use keel_endpoint::{EndpointAddress, EndpointClient};
use keel_protocol::{Decoder, ServiceProtocolVersion};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::error::AttemptError;
use crate::session::{Outbound, Session};
use crate::{AttemptEvent, AttemptInput, AttemptParams, AttemptTimeouts, body, request};

/// Notifications queued for the SDK before the loop stops taking inputs: bounds memory
/// when the SDK does not read, while keeping the caller's sends flowing normally.
const MAX_QUEUED_WRITES: usize = 64;
/// How much of an error response's body is kept for the error message.
const SNIPPET_BYTES: usize = 512;
/// How long reading that snippet may take: the SDK's one-line explanation arrives at once
/// or not at all.
const SNIPPET_TIMEOUT: Duration = Duration::from_secs(2);
/// After the terminal event, how long the rest of the response may take to end cleanly
/// before it is dropped (which resets the HTTP/2 stream instead).
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Runs one attempt of an invocation against the deployment at `address` and reports what
/// happens on `events`, ending with exactly one terminal event (see [`AttemptEvent`]).
///
/// `inputs` carries notifications to stream to the SDK while it runs (bidi mode only).
/// Dropping the `events` receiver abandons the attempt at once; dropping the `inputs`
/// sender closes the request body, like [`AttemptInput::Close`]. The function returns once
/// the terminal event was handed over and the response ended (or its grace period ran
/// out), and never panics on anything the SDK sends.
pub async fn run_attempt(
    client: &EndpointClient,
    address: &EndpointAddress,
    params: AttemptParams,
    events: mpsc::Sender<AttemptEvent>,
    inputs: mpsc::Receiver<AttemptInput>,
) {
    match Attempt::start(client, address, &params, inputs) {
        Ok(attempt) => attempt.drive(&events).await,
        Err(error) => {
            // The caller may be gone already; there is nobody else to tell.
            let _ = events.send(AttemptEvent::Failed(error)).await;
        }
    }
}

/// Where the response is.
enum Response {
    /// Waiting for the status line and headers.
    Head(ResponseFuture),
    /// Reading frames.
    Body(Incoming),
    /// Nothing left to read (ended, failed or dropped).
    Done,
}

/// What the response produced next.
enum ResponseItem {
    Head(Result<http::Response<Incoming>, hyper_util::client::legacy::Error>),
    Chunk(Option<Result<hyper::body::Frame<Bytes>, hyper::Error>>),
}

/// The state of one running attempt.
struct Attempt {
    session: Session,
    version: ServiceProtocolVersion,
    timeouts: AttemptTimeouts,
    inputs: mpsc::Receiver<AttemptInput>,
    inputs_open: bool,
    /// The request body's feed; `None` once the body ended (or in request/response mode).
    body_tx: Option<mpsc::Sender<Bytes>>,
    /// Whole frames waiting for hyper to take them.
    writes: VecDeque<Bytes>,
    /// End the body once `writes` is flushed.
    closing: bool,
    /// Events waiting for the caller.
    events: VecDeque<AttemptEvent>,
    /// The terminal event is queued: read nothing more.
    finished: bool,
    response: Response,
    decoder: Decoder,
    /// Last traffic in either direction (the inactivity timer).
    last_activity: Instant,
    /// Start of the abort timer: the body's end or the last bytes received, the later.
    abort_from: Instant,
}

impl Attempt {
    /// Validates the inputs, sends the request and queues the opening bytes.
    fn start(
        client: &EndpointClient,
        address: &EndpointAddress,
        params: &AttemptParams,
        inputs: mpsc::Receiver<AttemptInput>,
    ) -> Result<Self, AttemptError> {
        let replayed = Session::replayed_commands(&params.journal)?;
        let opening = request::opening_bytes(params)?;
        let (body_tx, request_body, writes) = if request::is_bidi(params) {
            let (tx, body) = body::channel();
            (Some(tx), body, VecDeque::from([opening]))
        } else {
            (None, body::full(opening), VecDeque::new())
        };
        let request = request::build(address, params, request_body)?;
        tracing::debug!(
            invocation = %params.invocation_id, uri = %request.uri(), bidi = body_tx.is_some(),
            known_entries = params.journal.len(), "starting attempt"
        );
        let now = Instant::now();
        Ok(Attempt {
            session: Session::new(params.protocol_version, replayed),
            version: params.protocol_version,
            timeouts: params.timeouts,
            inputs,
            inputs_open: true,
            body_tx,
            writes,
            closing: false,
            events: VecDeque::new(),
            finished: false,
            // Sent right away: hyper polls the body concurrently, so Start and the replay
            // go out without waiting for the response head (doc §3.2).
            response: Response::Head(client.request(params.http_version, request)),
            decoder: Decoder::new(),
            last_activity: now,
            abort_from: now,
        })
    }

    async fn drive(mut self, events: &mpsc::Sender<AttemptEvent>) {
        while !(self.finished && self.events.is_empty()) {
            let deadline = self.deadline();
            tokio::select! {
                biased;
                // The caller gave up on the attempt (even with nothing to report yet):
                // returning drops the exchange, which resets the stream.
                () = events.closed() => return,
                // Cancel-safe: an event leaves the queue only once a permit is in hand.
                delivered = deliver_front(events, &mut self.events), if !self.events.is_empty() => {
                    if !delivered {
                        return;
                    }
                }
                // Cancel-safe for the same reason.
                written = write_front(self.body_tx.as_ref(), &mut self.writes), if !self.writes.is_empty() => {
                    if written {
                        self.last_activity = Instant::now();
                        if self.closing && self.writes.is_empty() {
                            self.end_body();
                        }
                    } else {
                        // hyper dropped the body: the stream is gone, the response will say why.
                        self.abandon_body();
                    }
                }
                // Cancel-safe: `recv` loses nothing when dropped.
                input = self.inputs.recv(), if self.inputs_open && !self.finished && self.writes.len() < MAX_QUEUED_WRITES => {
                    self.on_input(input);
                }
                // Cancel-safe: the pending head or body lives in `self.response`.
                item = next_response(&mut self.response), if self.events.is_empty() && !self.finished => {
                    self.on_response(item).await;
                }
                () = tokio::time::sleep_until(deadline), if !self.finished => self.on_timer(),
            }
        }
        self.drain().await;
    }

    /// When the active timer fires: inactivity while the body is open, abort after.
    fn deadline(&self) -> Instant {
        if self.body_tx.is_some() {
            self.last_activity + self.timeouts.inactivity
        } else {
            self.abort_from + self.timeouts.abort
        }
    }

    fn on_timer(&mut self) {
        if self.body_tx.is_some() {
            // Whatever is still queued was not taken for a whole inactivity period; it is
            // journaled, so the next attempt replays it. Ending the body asks the SDK to
            // suspend (doc §3.2).
            tracing::debug!("inactivity timeout: closing the request body");
            self.abandon_body();
        } else {
            self.fail(AttemptError::AbortTimeout(self.timeouts.abort));
        }
    }

    fn on_input(&mut self, input: Option<AttemptInput>) {
        let Some(input) = input else {
            self.inputs_open = false;
            self.close_body();
            return;
        };
        if self.body_tx.is_none() || self.closing {
            tracing::debug!("request body closed: input dropped (the next attempt replays it)");
            return;
        }
        match self.session.on_input(input) {
            Ok(Outbound::Send(bytes)) => self.writes.push_back(bytes),
            Ok(Outbound::Close) => self.close_body(),
            Err(error) => self.fail(error),
        }
    }

    async fn on_response(&mut self, item: ResponseItem) {
        match item {
            ResponseItem::Head(Err(error)) => self.fail(AttemptError::Transport(error_chain(&error))),
            ResponseItem::Head(Ok(response)) => self.on_head(response).await,
            ResponseItem::Chunk(None) => {
                self.response = Response::Done;
                let error = match self.decoder.finish() {
                    Err(error) => AttemptError::Decode(error),
                    Ok(()) => AttemptError::UnexpectedEof,
                };
                self.fail(error);
            }
            ResponseItem::Chunk(Some(Err(error))) => self.fail(AttemptError::Transport(error_chain(&error))),
            ResponseItem::Chunk(Some(Ok(frame))) => {
                // Trailers carry nothing in this protocol.
                if let Ok(data) = frame.into_data() {
                    self.on_data(&data);
                }
            }
        }
    }

    /// Checks status and content type before reading a single frame (doc §3.1).
    async fn on_head(&mut self, response: http::Response<Incoming>) {
        let (parts, body) = response.into_parts();
        self.abort_from = Instant::now();
        if parts.status != StatusCode::OK {
            // Let the SDK finish its answer (the TS SDK waits for our side to end first).
            self.abandon_body();
            let retry_after = parts
                .headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body_snippet = read_snippet(body).await;
            self.fail(AttemptError::BadStatus { status: parts.status, retry_after, body_snippet });
            return;
        }
        let expected = self.version.content_type();
        let content_type = parts.headers.get(CONTENT_TYPE);
        if content_type.and_then(|ct| ct.to_str().ok()).and_then(ServiceProtocolVersion::from_content_type)
            != Some(self.version)
        {
            let content_type = content_type.map(|ct| String::from_utf8_lossy(ct.as_bytes()).into_owned());
            self.fail(AttemptError::BadContentType { content_type, expected });
            return;
        }
        self.response = Response::Body(body);
    }

    /// Decodes every complete frame in the buffer, stopping at the terminal one.
    fn on_data(&mut self, data: &[u8]) {
        let now = Instant::now();
        self.last_activity = now;
        self.abort_from = now;
        self.decoder.push(data);
        while !self.finished {
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(error) => return self.fail(AttemptError::Decode(error)),
            };
            match self.session.on_sdk_frame(frame) {
                Ok(inbound) => {
                    self.events.push_back(inbound.event);
                    if inbound.terminal {
                        // Ending our side promptly matters: the TS SDK keeps the response
                        // open until the request stream ends (doc §0).
                        self.finished = true;
                        self.abandon_body();
                    }
                }
                Err(error) => self.fail(error),
            }
        }
    }

    /// Queues `Failed` as the terminal event and drops the exchange.
    fn fail(&mut self, error: AttemptError) {
        tracing::debug!(%error, "attempt failed");
        self.events.push_back(AttemptEvent::Failed(error));
        self.finished = true;
        self.abandon_body();
        self.response = Response::Done;
    }

    /// Ends the body once the queued writes are out.
    fn close_body(&mut self) {
        self.closing = true;
        if self.writes.is_empty() {
            self.end_body();
        }
    }

    /// Ends the body now, dropping queued writes (always whole frames, so the SDK still
    /// sees a clean end).
    fn abandon_body(&mut self) {
        self.writes.clear();
        self.end_body();
    }

    fn end_body(&mut self) {
        if self.body_tx.take().is_some() {
            self.abort_from = Instant::now();
        }
    }

    /// After the terminal event: lets the response end on its own, briefly, so the
    /// connection stays healthy; anything the SDK still sends is ignored.
    async fn drain(self) {
        let Response::Body(mut body) = self.response else { return };
        let drained = tokio::time::timeout(DRAIN_GRACE, async {
            let mut extra = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                extra += frame.data_ref().map_or(0, Bytes::len);
            }
            extra
        })
        .await;
        match drained {
            Ok(0) => {}
            Ok(extra) => tracing::debug!(extra, "ignored bytes after the terminal message"),
            Err(_) => tracing::debug!("response did not end after the terminal message; dropping it"),
        }
    }
}

/// Hands the first queued event to the caller; false if the caller is gone.
async fn deliver_front(events: &mpsc::Sender<AttemptEvent>, queue: &mut VecDeque<AttemptEvent>) -> bool {
    match events.reserve().await {
        Ok(permit) => {
            if let Some(event) = queue.pop_front() {
                permit.send(event);
            }
            true
        }
        Err(_) => false,
    }
}

/// Hands the first queued write to hyper; false if the body is gone. Never completes
/// once the body has ended.
async fn write_front(body: Option<&mpsc::Sender<Bytes>>, queue: &mut VecDeque<Bytes>) -> bool {
    let Some(body) = body else { return pending().await };
    match body.reserve().await {
        Ok(permit) => {
            if let Some(chunk) = queue.pop_front() {
                permit.send(chunk);
            }
            true
        }
        Err(_) => false,
    }
}

async fn next_response(response: &mut Response) -> ResponseItem {
    match response {
        Response::Head(head) => ResponseItem::Head(head.await),
        Response::Body(body) => ResponseItem::Chunk(body.frame().await),
        Response::Done => pending().await,
    }
}

/// The start of an error response, for the error message; bounded in size and time.
async fn read_snippet(mut body: Incoming) -> String {
    let mut snippet = Vec::new();
    let _ = tokio::time::timeout(SNIPPET_TIMEOUT, async {
        while snippet.len() < SNIPPET_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        snippet.extend_from_slice(data);
                    }
                }
                _ => break,
            }
        }
    })
    .await;
    snippet.truncate(SNIPPET_BYTES);
    String::from_utf8_lossy(&snippet).into_owned()
}

/// An error and its causes on one line: hyper's top-level messages ("client error") say
/// little without them.
fn error_chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
