//! Who a batch writes: the endpoints' new memories and the mails each event leaves.

use mspipe_model::Delivery;

use crate::Sampled;

/// A batch's writes as rows of its unique nodes: the endpoints whose memory is replaced, and per
/// mail its sender (self), the other endpoint, its event, time and receiver.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mailing {
    /// Endpoints written (sources, then destinations, as the batch's first `2B` roots).
    pub nodes: Vec<u32>,
    /// Unique-node row of each of `nodes`.
    pub rows: Vec<u32>,
    /// Per mail: unique-node row of the endpoint whose mail it is.
    pub me: Vec<u32>,
    /// Per mail: unique-node row of the event's other endpoint.
    pub other: Vec<u32>,
    /// Per mail: the event (a row of the stream's edge features).
    pub event: Vec<usize>,
    /// Per mail: the event's time.
    pub time: Vec<f64>,
    /// Per mail: the node receiving it.
    pub target: Vec<u32>,
}

impl Mailing {
    /// Each event's two mails, to its endpoints (and, delivering to neighbours, to their sampled
    /// neighbours in the first hop), in event order.
    ///
    /// # Panics
    /// Delivering to neighbours, if the batch was sampled without hops.
    pub fn of(sampled: &Sampled, delivery: Delivery) -> Self {
        let sb = &sampled.batch;
        let (b, k) = (sampled.events.len(), sb.k);
        let mut m = Mailing {
            nodes: sb.roots[..2 * b].to_vec(),
            rows: sb.root_index[..2 * b].to_vec(),
            ..Mailing::default()
        };
        for (i, (&e, &t)) in sampled.events.iter().zip(&sampled.times).enumerate() {
            for (me, other) in [(i, b + i), (b + i, i)] {
                let mut deliver = |target: u32| {
                    m.me.push(sb.root_index[me]);
                    m.other.push(sb.root_index[other]);
                    m.event.push(e);
                    m.time.push(t);
                    m.target.push(target);
                };
                deliver(sb.roots[me]);
                if delivery == Delivery::ToNeighbors {
                    let hop = &sb.hops[0];
                    for slot in me * k..(me + 1) * k {
                        if hop.mask[slot] {
                            deliver(hop.nbr[slot]);
                        }
                    }
                }
            }
        }
        m
    }

    /// Number of mails.
    pub fn len(&self) -> usize {
        self.target.len()
    }

    /// Whether the batch leaves no mail.
    pub fn is_empty(&self) -> bool {
        self.target.is_empty()
    }

    /// Every node the write changes: the endpoints, then the mails' receivers.
    pub fn written(&self) -> Vec<u32> {
        let mut nodes = self.nodes.clone();
        nodes.extend(&self.target);
        nodes
    }
}

#[cfg(test)]
mod tests {
    use mspipe_sampler::{Hop, SampledBatch};

    use super::*;

    /// Two events, 5 → 6 at t = 1 (event 7) and 6 → 8 at t = 2 (event 9), one negative per
    /// event, k = 2 neighbours: node 5 has neighbour 4, node 6 has none, node 8 has 3 and 4.
    fn sampled() -> Sampled {
        // Roots: sources 5, 6; destinations 6, 8; negatives 2, 3. Unique: 5 6 8 2 3 4.
        let roots = vec![5, 6, 6, 8, 2, 3];
        let hop = Hop {
            nbr: vec![4, 0, 0, 0, 0, 0, 3, 4, 0, 0, 0, 0],
            mask: [
                [true, false],
                [false; 2],
                [false; 2],
                [true, true],
                [false; 2],
                [false; 2],
            ]
            .concat(),
            index: vec![5, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0],
            ..Hop::default()
        };
        Sampled {
            events: vec![7, 9],
            times: vec![1.0, 2.0],
            neg_src_row: vec![0, 1],
            per_positive: 1,
            batch: SampledBatch {
                k: 2,
                root_times: vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0],
                root_index: vec![0, 1, 1, 2, 3, 4],
                roots,
                hops: vec![hop],
                unique_nodes: vec![5, 6, 8, 2, 3, 4],
            },
        }
    }

    #[test]
    fn each_event_mails_its_endpoints_in_event_order() {
        let m = Mailing::of(&sampled(), Delivery::ToSelf);
        assert_eq!(m.nodes, [5, 6, 6, 8]);
        assert_eq!(m.rows, [0, 1, 1, 2]);
        // Event 7: 5's mail (self 5, other 6), then 6's; event 9: 6's (self 6, other 8), 8's.
        assert_eq!(m.target, [5, 6, 6, 8]);
        assert_eq!(m.me, [0, 1, 1, 2]);
        assert_eq!(m.other, [1, 0, 2, 1]);
        assert_eq!(m.event, [7, 7, 9, 9]);
        assert_eq!(m.time, [1.0, 1.0, 2.0, 2.0]);
        assert_eq!(m.written(), [5, 6, 6, 8, 5, 6, 6, 8]);
    }

    #[test]
    fn delivering_to_neighbours_copies_each_mail_to_the_valid_slots() {
        let m = Mailing::of(&sampled(), Delivery::ToNeighbors);
        // 5's mail also goes to 4; 6 has no neighbour; 8's goes to 3 and 4.
        assert_eq!(m.target, [5, 4, 6, 6, 8, 3, 4]);
        assert_eq!(m.me, [0, 0, 1, 1, 2, 2, 2]);
        assert_eq!(m.other, [1, 1, 0, 2, 1, 1, 1]);
        assert_eq!(m.event, [7, 7, 7, 9, 9, 9, 9]);
        assert_eq!(m.len(), 7);
    }
}
