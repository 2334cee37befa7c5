//! Which nodes replicate which partition.
//!
//! With a static peer list, every node computes the same replica sets without
//! talking to anyone: each node id is placed on a ring of 64-bit points at
//! [`VNODES`] virtual positions (for balance), and partition `p`'s replicas
//! are the first `replication_factor` distinct nodes found walking the ring
//! clockwise from `p`'s point. Consistent hashing keeps most assignments in
//! place when the peer list grows, which matters once membership changes
//! are supported.
//!
//! Every node must agree on the ring bit for bit, and keep agreeing across
//! upgrades and architectures, or two nodes would disagree on who hosts a
//! partition. So points are xxh3 hashes of byte strings spelled out here
//! ([`vnode_point`], [`partition_point`]), not of `std::hash::Hash` output,
//! whose bytes depend on the platform's endianness and word size and on std
//! internals. (The byte strings are the ones keel's earlier ring, built on
//! `consistent_hash` over `Hash`, produced on 64-bit little-endian machines,
//! so existing clusters keep their placement; `pinned_placement` holds
//! them to it.)

use xxhash_rust::xxh3::xxh3_64;

/// Virtual nodes per real node on the ring.
const VNODES: u64 = 64;

/// The ring position of virtual node `vnode` of node `id`: xxh3 of the id
/// and the virtual node number, each as 8 little-endian bytes.
fn vnode_point(id: u64, vnode: u64) -> u64 {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&id.to_le_bytes());
    bytes[8..].copy_from_slice(&vnode.to_le_bytes());
    xxh3_64(&bytes)
}

/// The ring position of partition `p`: xxh3 of `partition`, a 0xff byte and
/// `p` as 4 little-endian bytes.
fn partition_point(p: u32) -> u64 {
    let mut bytes = [0u8; 14];
    bytes[..9].copy_from_slice(b"partition");
    bytes[9] = 0xff;
    bytes[10..].copy_from_slice(&p.to_le_bytes());
    xxh3_64(&bytes)
}

/// Replica sets of every partition, indexed by partition id. The first node
/// of each set is the ring's preferred owner. Duplicate ids count once; a
/// set has fewer than `replication_factor` nodes only when there are fewer
/// nodes.
pub fn replica_sets(node_ids: &[u64], partitions: u32, replication_factor: usize) -> Vec<Vec<u64>> {
    let mut nodes = node_ids.to_vec();
    nodes.sort_unstable();
    nodes.dedup();
    // (point, node), ordered by point; equal points (astronomically rare)
    // are ordered by node id so every node breaks the tie alike.
    let mut ring: Vec<(u64, u64)> =
        nodes.iter().flat_map(|id| (0..VNODES).map(move |v| (vnode_point(*id, v), *id))).collect();
    ring.sort_unstable();
    let wanted = replication_factor.min(nodes.len());
    (0..partitions)
        .map(|p| {
            // The first virtual node at or after the partition's point,
            // wrapping around the end of the ring.
            let start = ring.partition_point(|(point, _)| *point < partition_point(p));
            let mut set = Vec::with_capacity(wanted);
            for (_, id) in ring[start..].iter().chain(&ring[..start]) {
                if set.len() == wanted {
                    break;
                }
                if !set.contains(id) {
                    set.push(*id);
                }
            }
            set
        })
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
        assert_eq!(replica_sets(&[2, 1, 2, 3, 1], 8, 2), replica_sets(&[1, 2, 3], 8, 2));
        assert_eq!(replica_sets(&[1], 4, 1), vec![vec![1]; 4]);
        assert_eq!(replica_sets(&[1, 2], 4, 3), replica_sets(&[1, 2], 4, 2));
        assert_eq!(replica_sets(&[1, 2, 3], 8, 3).iter().filter(|s| s.len() == 3).count(), 8);
    }

    /// The hash of each kind of point, pinned: a change of algorithm, seed or
    /// byte layout fails here before it moves any replica.
    #[test]
    fn pinned_points() {
        assert_eq!(vnode_point(1, 0), 0x26f2_a114_8cf5_2011);
        assert_eq!(vnode_point(7, 63), 0xd896_9192_2fac_3bf8);
        assert_eq!(partition_point(0), 0xa430_42e6_b7d8_03ee);
        assert_eq!(partition_point(31), 0xb0cb_1f4c_b6d9_309b);
    }

    /// Replica sets as the earlier `consistent_hash` ring computed them on
    /// x86-64: clusters created by earlier versions keep their placement.
    #[test]
    fn pinned_placement() {
        assert_eq!(
            replica_sets(&[1, 2, 3, 4, 5], 16, 3),
            [
                [1, 3, 2],
                [1, 5, 4],
                [5, 3, 1],
                [4, 5, 2],
                [2, 5, 3],
                [5, 4, 1],
                [5, 2, 4],
                [5, 3, 1],
                [3, 2, 5],
                [3, 2, 4],
                [3, 1, 4],
                [3, 5, 4],
                [1, 3, 2],
                [1, 5, 3],
                [3, 2, 4],
                [2, 5, 3]
            ]
        );
        assert_eq!(replica_sets(&[1, 2, 3], 8, 2), [[1, 3], [1, 3], [3, 1], [2, 3], [2, 3], [1, 2], [2, 3], [3, 1]]);
        assert_eq!(
            replica_sets(&[10, 20, 30, 40, 50, 60, 70], 32, 3),
            [
                [40, 60, 30],
                [50, 40, 10],
                [50, 30, 60],
                [20, 60, 10],
                [40, 20, 10],
                [20, 30, 50],
                [40, 70, 20],
                [30, 50, 70],
                [40, 50, 10],
                [10, 70, 50],
                [10, 60, 50],
                [60, 50, 30],
                [40, 20, 10],
                [40, 50, 20],
                [50, 20, 60],
                [50, 30, 10],
                [30, 60, 50],
                [40, 20, 30],
                [60, 70, 30],
                [30, 70, 40],
                [60, 40, 70],
                [50, 60, 30],
                [60, 50, 10],
                [60, 40, 20],
                [20, 70, 60],
                [70, 50, 40],
                [50, 40, 20],
                [70, 30, 40],
                [30, 10, 50],
                [10, 40, 30],
                [40, 10, 70],
                [60, 70, 30]
            ]
        );
    }
}
