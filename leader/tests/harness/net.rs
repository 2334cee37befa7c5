//! The harness's network: requests between in-process nodes, through links
//! the test controls. A request goes to the target node's `NodeHandler`
//! encoded exactly as over gRPC; on the way it may be delayed, lost, or
//! refused (a partitioned link, a crashed node). Loss and delays are drawn
//! from the cluster's seeded generator, so a seed replays them.

use futures::future::BoxFuture;
use keel_raft::handler::NodeHandler;
use keel_raft::transport::{NodeRequest, PeerError, RaftKind, Transport};
use keel_raft::types::TypeConfig;
use openraft::raft::AppendEntriesRequest;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long a caller waits for a lost message before its connection is
/// reported broken (as HTTP/2 pings would find a dead connection).
const LOST_AFTER: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Links {
    /// Live nodes' request handlers; crashed nodes have none.
    handlers: BTreeMap<u64, Arc<NodeHandler>>,
    /// Pairs (a < b) that cannot talk.
    cut: BTreeSet<(u64, u64)>,
    /// Nodes whose messages (requests and replies) are lost, while messages
    /// to them arrive.
    muted: BTreeSet<u64>,
    /// (group, node): appends carrying log entries to that replica are
    /// lost, while its leader's heartbeats (appends without entries) arrive.
    starved: BTreeSet<(u32, u64)>,
    /// Probability that a request or reply is lost.
    loss: f64,
    /// Upper bound of a one-way delay (uniform from zero).
    max_delay: Duration,
}

/// The network between the harness's nodes.
pub struct SimNet {
    links: Mutex<Links>,
    rng: Mutex<StdRng>,
}

/// What happens to one message on its way.
enum Fate {
    Delivered(Duration),
    Lost,
    Refused,
}

impl SimNet {
    /// A network without faults, its randomness drawn from `seed`.
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(SimNet {
            links: Mutex::default(),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ 0x006e_6574_776f_726b)),
        })
    }

    fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `node` is up and serves with `handler`.
    pub fn attach(&self, node: u64, handler: Arc<NodeHandler>) {
        self.links().handlers.insert(node, handler);
    }

    /// `node` is down: requests to it are refused.
    pub fn detach(&self, node: u64) {
        self.links().handlers.remove(&node);
    }

    /// Cuts the link between `a` and `b` both ways.
    pub fn cut(&self, a: u64, b: u64) {
        self.links().cut.insert((a.min(b), a.max(b)));
    }

    /// Cuts every link between a node of `side` and one outside it.
    pub fn isolate(&self, side: &[u64], all: &[u64]) {
        for a in side {
            for b in all.iter().filter(|b| !side.contains(b)) {
                self.cut(*a, *b);
            }
        }
    }

    /// Loses every message `node` sends, while it still receives: a
    /// follower that stores what its leader sends but whose answers never
    /// arrive, as with a stalled disk or a one-way network fault. Its
    /// leader keeps the lead but can no longer commit.
    pub fn mute(&self, node: u64) {
        self.links().muted.insert(node);
    }

    /// Loses every append that would bring `node`'s replica of `group` new
    /// log entries, while its leader's heartbeats still reach it: the
    /// replica follows the leader it knows (so the node routes requests
    /// for the group to it), but applies nothing new, a replica that lags.
    /// openraft gives up on an append after one heartbeat interval without
    /// backing off, so the heartbeats in between keep flowing.
    pub fn starve(&self, group: u32, node: u64) {
        self.links().starved.insert((group, node));
    }

    /// Restores every link, stops loss and delays.
    pub fn heal(&self) {
        let mut links = self.links();
        links.cut.clear();
        links.muted.clear();
        links.starved.clear();
        links.loss = 0.0;
        links.max_delay = Duration::ZERO;
    }

    /// Loses each message with probability `loss`, and delays each by up to `max_delay`.
    pub fn degrade(&self, loss: f64, max_delay: Duration) {
        let mut links = self.links();
        links.loss = loss;
        links.max_delay = max_delay;
    }

    /// The fate of a message from `from` to `to`; `request` is the
    /// request itself on its way there, `None` for a reply.
    fn fate(&self, from: u64, to: u64, request: Option<&NodeRequest>) -> Fate {
        let links = self.links();
        if links.cut.contains(&(from.min(to), from.max(to))) || !links.handlers.contains_key(&to) {
            return Fate::Refused;
        }
        if links.muted.contains(&from) || request.is_some_and(|r| starves(&links.starved, to, r)) {
            return Fate::Lost;
        }
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        if links.loss > 0.0 && rng.gen_bool(links.loss) {
            return Fate::Lost;
        }
        let max = links.max_delay.as_micros() as u64;
        Fate::Delivered(Duration::from_micros(if max == 0 { 0 } else { rng.gen_range(0..=max) }))
    }

    fn handler(&self, node: u64) -> Option<Arc<NodeHandler>> {
        self.links().handlers.get(&node).cloned()
    }

    /// The transport of node `from`.
    pub fn transport(self: &Arc<Self>, from: u64) -> Arc<dyn Transport> {
        Arc::new(SimTransport { from, net: Arc::downgrade(self) })
    }
}

/// Whether `request` to node `to` is an append with entries for a replica
/// that [`SimNet::starve`] starves.
fn starves(starved: &BTreeSet<(u32, u64)>, to: u64, request: &NodeRequest) -> bool {
    let NodeRequest::Raft { group, kind, payload } = request else { return false };
    starved.contains(&(*group, to))
        && *kind == RaftKind::AppendEntries as i32
        && keel_raft::types::decode::<AppendEntriesRequest<TypeConfig>>(payload).is_ok_and(|r| !r.entries.is_empty())
}

/// A node's way into the network. It holds the network weakly: the network
/// holds every node's handler, which holds the node's transport, and a
/// strong reference back would keep a finished test's nodes (and their open
/// databases) alive until the process ends.
struct SimTransport {
    from: u64,
    net: Weak<SimNet>,
}

fn unavailable(node: u64, why: &str) -> PeerError {
    PeerError::Rpc { node, status: tonic::Status::unavailable(why.to_string()) }
}

impl SimTransport {
    /// One leg of a message (`request` on its way there, `None` for the
    /// reply): waits for its delay, or fails as its fate says.
    async fn travel(net: &SimNet, to: u64, from: u64, request: Option<&NodeRequest>) -> Result<(), PeerError> {
        match net.fate(from, to, request) {
            Fate::Delivered(delay) => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(())
            }
            Fate::Lost => {
                tokio::time::sleep(LOST_AFTER).await;
                Err(unavailable(to, "connection lost"))
            }
            Fate::Refused => Err(unavailable(to, "connection refused")),
        }
    }
}

impl Transport for SimTransport {
    fn send(
        &self,
        node: u64,
        request: NodeRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, PeerError>> {
        let (from, net) = (self.from, self.net.upgrade());
        Box::pin(async move {
            let exchange = async {
                let net = net.ok_or_else(|| unavailable(node, "the network is gone"))?;
                SimTransport::travel(&net, node, from, Some(&request)).await?;
                let handler = net.handler(node).ok_or_else(|| unavailable(node, "node down"))?;
                let reply = handler.handle(request).await.map_err(|status| PeerError::Rpc { node, status })?;
                // The reply travels back on the same link.
                SimTransport::travel(&net, from, node, None).await?;
                Ok(reply)
            };
            if timeout == Duration::MAX {
                return exchange.await;
            }
            match tokio::time::timeout(timeout, exchange).await {
                Ok(r) => r,
                Err(_) => Err(PeerError::Rpc { node, status: tonic::Status::deadline_exceeded("timed out") }),
            }
        })
    }
}
