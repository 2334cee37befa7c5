//! One module per [`Command`](crate::Command): what applying it does.
//!
//! Each handler is a function of the transaction and the command's fields
//! (plus, where it needs one, the command's log sequence, its only source
//! of fresh, ordered numbers). It returns what the command answers and the
//! effects for the leader; [`crate::apply`] dispatches to it after the
//! fence check and wraps the result into a [`Response`](crate::Response).
//! Handlers share the transitions in [`crate::lifecycle`] and the record
//! model in `model/`; none calls another handler.

pub(crate) mod announce_leader;
pub(crate) mod append_journal;
pub(crate) mod attach;
pub(crate) mod complete;
pub(crate) mod deliver;
pub(crate) mod expire;
pub(crate) mod fire_timer;
pub(crate) mod intervene;
pub(crate) mod invoke;
pub(crate) mod outbox_done;
pub(crate) mod pin_deployment;
pub(crate) mod register_deployment;
pub(crate) mod remove_deployment;
pub(crate) mod resume;
pub(crate) mod set_state;
pub(crate) mod suspend;
pub(crate) mod update_service;
