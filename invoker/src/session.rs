//! The protocol bookkeeping of one attempt, without I/O.
//!
//! Kept apart from the async loop so that every rule about what the SDK may send and what
//! keel answers can be tested byte for byte without a network: command numbering (doc
//! §6.1), run proposals and their acks (§8), which messages are legal in which direction
//! (§5), and the shape of a suspension (§9).

use std::collections::HashSet;

use bytes::Bytes;
use keel_protocol::message::MessageKind;
use keel_protocol::proto::{self, propose_run_completion_message, run_completion_notification_message};
use keel_protocol::{Flags, Frame, Message, MessageType, NotificationId, ServiceProtocolVersion};

use crate::error::AttemptError;
use crate::{AttemptEvent, AttemptInput};

/// State carried across the frames of one attempt.
#[derive(Debug)]
pub struct Session {
    version: ServiceProtocolVersion,
    /// Index the next command from the SDK gets: replayed commands count too.
    next_command_index: u32,
    /// Completion ids of V7 run proposals made with REQUESTED_ACK and not answered yet.
    /// Their stored notification must reach the SDK as an ack instead.
    awaiting_ack: HashSet<u32>,
}

/// What an SDK frame means for the attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The event to report.
    pub event: AttemptEvent,
    /// Whether it ends the attempt (End, Suspension, Error).
    pub terminal: bool,
}

/// What to do on the wire for a caller input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    /// Write these bytes (one framed message) to the request body.
    Send(Bytes),
    /// End the request body.
    Close,
}

impl Session {
    /// A session for `version` after replaying a journal holding `replayed_commands`
    /// commands.
    pub fn new(version: ServiceProtocolVersion, replayed_commands: u32) -> Self {
        Session { version, next_command_index: replayed_commands, awaiting_ack: HashSet::new() }
    }

    /// Checks a journal before it is replayed and counts its commands (where command
    /// numbering resumes). It must start with the InputCommand and hold only commands and
    /// notifications; anything else would make the SDK fail every attempt.
    pub fn replayed_commands(journal: &[Frame]) -> Result<u32, AttemptError> {
        let first = journal.first().ok_or_else(|| AttemptError::InvalidJournal("the journal is empty".into()))?;
        if first.header.code != MessageType::InputCommand.code() {
            return Err(AttemptError::InvalidJournal(format!(
                "entry 0 is 0x{:04X}, not the InputCommand",
                first.header.code
            )));
        }
        let mut commands = 0u32;
        for (i, frame) in journal.iter().enumerate() {
            match MessageKind::of_code(frame.header.code) {
                MessageKind::Command => commands = commands.saturating_add(1),
                MessageKind::Notification => {}
                MessageKind::Control | MessageKind::Other => {
                    return Err(AttemptError::InvalidJournal(format!(
                        "entry {i} (0x{:04X}) is neither a command nor a notification",
                        frame.header.code
                    )));
                }
            }
        }
        Ok(commands)
    }

    /// Interprets one frame from the SDK. Errors end the attempt.
    pub fn on_sdk_frame(&mut self, frame: Frame) -> Result<Inbound, AttemptError> {
        let message = frame.decode_message().map_err(AttemptError::Decode)?;
        let event = match message {
            Message::InputCommand(_) => return Err(violation("the SDK sent an InputCommand")),
            Message::Suspension(suspension) => {
                self.check_suspension(&suspension)?;
                return Ok(Inbound { event: AttemptEvent::Suspended { frame }, terminal: true });
            }
            Message::Error(_) => return Ok(Inbound { event: AttemptEvent::Error { frame }, terminal: true }),
            Message::End(_) => return Ok(Inbound { event: AttemptEvent::Ended, terminal: true }),
            Message::ProposeRunCompletion(proposal) => self.on_run_proposal(frame, proposal)?,
            Message::AwaitingOn(_) => AttemptEvent::AwaitingOn { frame },
            message if message.kind() == MessageKind::Command => {
                let index = self.next_command_index;
                self.next_command_index = index.checked_add(1).ok_or_else(|| violation("too many commands"))?;
                AttemptEvent::Command { index, frame }
            }
            message => {
                let name = message.message_type().map_or("custom message", MessageType::name);
                return Err(violation(&format!("{name} (0x{:04X}) only flows from runtime to SDK", message.code())));
            }
        };
        Ok(Inbound { event, terminal: false })
    }

    /// Builds the notification a run proposal turns into, and remembers V7 ack requests.
    fn on_run_proposal(
        &mut self,
        frame: Frame,
        proposal: proto::ProposeRunCompletionMessage,
    ) -> Result<AttemptEvent, AttemptError> {
        use propose_run_completion_message::Result as Proposed;
        use run_completion_notification_message::Result as Stored;
        let completion_id = proposal.result_completion_id;
        let result = match proposal.result {
            Some(Proposed::Value(content)) => Stored::Value(proto::Value { content }),
            Some(Proposed::Failure(failure)) => Stored::Failure(failure),
            None => return Err(violation(&format!("run proposal for completion {completion_id} has no result"))),
        };
        let stored = Message::from(proto::RunCompletionNotificationMessage { completion_id, result: Some(result) });
        let notification = stored.to_frame(Flags::NONE).map_err(|e| violation(&e.to_string()))?;
        // The flag means something only from V7 on; a V6 SDK gets the full notification.
        if frame.header.flags.requested_ack() && self.version.has_run_completion_ack() {
            self.awaiting_ack.insert(completion_id);
        }
        Ok(AttemptEvent::ProposeRunCompletion { completion_id, frame, notification })
    }

    /// Rejects suspensions the caller could never resume from: an empty wait set (the
    /// Restate server fails those too), or the shape of the other protocol version.
    fn check_suspension(&self, suspension: &proto::SuspensionMessage) -> Result<(), AttemptError> {
        let waits = if self.version.has_future_tree() {
            suspension.awaiting_on.as_ref().is_some_and(has_leaf)
        } else {
            !(suspension.waiting_completions.is_empty()
                && suspension.waiting_signals.is_empty()
                && suspension.waiting_named_signals.is_empty())
        };
        if waits { Ok(()) } else { Err(violation(&format!("{} suspension awaits nothing", self.version))) }
    }

    /// Turns a caller input into what goes on the wire.
    pub fn on_input(&mut self, input: AttemptInput) -> Result<Outbound, AttemptError> {
        match input {
            AttemptInput::Close => Ok(Outbound::Close),
            AttemptInput::Ack(completion_id) => {
                if self.awaiting_ack.remove(&completion_id) {
                    ack(completion_id)
                } else {
                    Err(AttemptError::InvalidInput(format!(
                        "ack for completion {completion_id}, which has no run proposal awaiting an ack in this attempt"
                    )))
                }
            }
            AttemptInput::Notification(frame) => {
                if MessageKind::of_code(frame.header.code) != MessageKind::Notification {
                    return Err(AttemptError::InvalidInput(format!(
                        "0x{:04X} is not a notification",
                        frame.header.code
                    )));
                }
                if frame.header.code == MessageType::RunCompletionNotification.code()
                    && let Ok(Some(NotificationId::Completion(id))) = frame.notification_id()
                    && self.awaiting_ack.remove(&id)
                {
                    return ack(id);
                }
                Ok(Outbound::Send(wire_bytes(&frame)?))
            }
        }
    }
}

/// A frame as it goes on the wire, with the length field recomputed from the payload so a
/// hand-built frame with a stale header cannot desynchronise the stream.
pub fn wire_bytes(frame: &Frame) -> Result<Bytes, AttemptError> {
    Frame::new(frame.header.code, frame.header.flags, frame.payload.clone())
        .map(|f| f.to_bytes())
        .map_err(|e| AttemptError::InvalidInput(e.to_string()))
}

fn ack(completion_id: u32) -> Result<Outbound, AttemptError> {
    let message = Message::from(proto::ProposeRunCompletionAckMessage { completion_id });
    keel_protocol::encode(&message).map(Outbound::Send).map_err(|e| AttemptError::InvalidInput(e.to_string()))
}

/// Whether a future tree awaits anything at all. Depth is bounded by prost's decode
/// recursion limit, so the recursion is too.
fn has_leaf(future: &proto::Future) -> bool {
    !future.waiting_completions.is_empty()
        || !future.waiting_signals.is_empty()
        || !future.waiting_named_signals.is_empty()
        || future.nested_futures.iter().any(has_leaf)
}

fn violation(what: &str) -> AttemptError {
    AttemptError::ProtocolViolation(what.to_owned())
}

#[cfg(test)]
mod tests;
