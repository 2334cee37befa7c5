//! The state of virtual objects and workflows: named values under the
//! object's key prefix, changed by the admin API's `SetState` and by the
//! state commands a handler journals (in the same batch as the entry).

use crate::command::StateMap;
use crate::keys;
use crate::store::{StateTxn, StateView};
use keel_protocol::Message;

/// Collects all state entries under an object's prefix.
pub(crate) fn load_state(view: &impl StateView, prefix: &[u8]) -> StateMap {
    view.scan_prefix(prefix)
        .into_iter()
        .filter_map(|(k, v)| keys::state_name(prefix, &k).map(|n| (n.to_string(), v)))
        .collect()
}

/// The version token of an object's state: a hash over its canonical
/// encoding. Equal states have equal versions, so a client can use it for
/// optimistic concurrency without the partition storing a counter.
pub fn state_version(state: &StateMap) -> String {
    let mut canonical = Vec::new();
    for (name, value) in state {
        canonical.extend_from_slice(&(name.len() as u64).to_be_bytes());
        canonical.extend_from_slice(name.as_bytes());
        canonical.extend_from_slice(&(value.len() as u64).to_be_bytes());
        canonical.extend_from_slice(value);
    }
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&canonical))
}

/// Applies a journaled state command (set, clear, clear all) to the
/// object's state: the journal entry and the state change commit together.
/// Other commands change no state.
pub(crate) fn apply_state_command(txn: &mut impl StateTxn, service: &str, key: &str, command: Message) {
    let name = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
    match command {
        Message::SetStateCommand(m) => {
            let value = m.value.map(|v| v.content.to_vec()).unwrap_or_default();
            txn.put(keys::state_key(service, key, &name(&m.key)), value);
        }
        Message::ClearStateCommand(m) => txn.delete(keys::state_key(service, key, &name(&m.key))),
        Message::ClearAllStateCommand(_) => {
            for (k, _) in txn.scan_prefix(&keys::state_prefix(service, key)) {
                txn.delete(k);
            }
        }
        _ => {}
    }
}
