//! Which nodes replicate which partition.
//!
//! With a static peer list, every node computes the same replica sets without
//! talking to anyone: node ids are placed on a consistent-hash ring (with
//! virtual nodes for balance) and partition `p`'s replicas are the first
//! `replication_factor` distinct nodes found walking the ring from `p`'s hash.
//! Consistent hashing keeps most assignments in place when the peer list
//! grows, which matters once membership changes are supported.

use consistent_hash::{Node, RingHash, StaticHashRing};
use std::hash::{Hash, Hasher};
use xxhash_rust::xxh3::Xxh3Default;

/// Virtual nodes per real node on the ring.
const VNODES: usize = 64;

/// Ring hashing with xxh3, a fixed, specified algorithm (the crate's default,
/// SipHash through `std::hash`, is fine but not pinned by any spec).
struct Xxh3Ring;

impl RingHash for Xxh3Ring {
    fn hash_item<T: Hash>(&self, item: &T) -> u64 {
        let mut h = Xxh3Default::new();
        item.hash(&mut h);
        h.finish()
    }
}

/// Replica sets of every partition, indexed by partition id. The first node
/// of each set is the ring's preferred owner.
pub fn replica_sets(node_ids: &[u64], partitions: u32, replication_factor: usize) -> Vec<Vec<u64>> {
    let ring = StaticHashRing::new(Xxh3Ring, node_ids.iter().map(|id| Node::new(*id).quantity(VNODES)));
    (0..partitions)
        .map(|p| ring.calc_candidates(&("partition", p)).take(replication_factor).map(|n| n.key).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[test]
    fn every_partition_gets_distinct_replicas() {
        let sets = replica_sets(&[1, 2, 3, 4, 5], 32, 3);
        assert_eq!(sets.len(), 32);
        for set in &sets {
            assert_eq!(set.len(), 3);
            assert_eq!(set.iter().collect::<BTreeSet<_>>().len(), 3);
        }
        // Balanced enough: every node replicates something.
        let mut per_node = BTreeMap::new();
        for id in sets.iter().flatten() {
            *per_node.entry(*id).or_insert(0) += 1;
        }
        assert_eq!(per_node.len(), 5);
    }

    #[test]
    fn placement_is_deterministic_and_order_independent() {
        assert_eq!(replica_sets(&[3, 1, 2], 8, 2), replica_sets(&[1, 2, 3], 8, 2));
        assert_eq!(replica_sets(&[1], 4, 1), vec![vec![1]; 4]);
        assert_eq!(replica_sets(&[1, 2, 3], 8, 3).iter().filter(|s| s.len() == 3).count(), 8);
    }
}
