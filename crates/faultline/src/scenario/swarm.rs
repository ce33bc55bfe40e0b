//! Swarm testing (Groce et al., ISSTA 2012; TigerBeetle's VOPR): a case that names no
//! faults but a budget of them, and lets each seed draw its own mix of kinds, nodes, windows
//! and parameters. The draw uses the run's own setup stream, so a seed always draws the same
//! mix, and every drawn parameter is logged at the start of the run (`faultline run` prints
//! the mix; the trace header lists it).

use rand::Rng;

use crate::fault::{Direction, Fault, FaultKind, FaultName};
use crate::latency::LatencyDist;
use crate::protocol::NodeId;
use crate::rng::{SimRng, Stream, stream};
use crate::time::{Span, Time};

/// What a swarm case may draw.
#[derive(Clone, Debug, PartialEq)]
pub struct Swarm {
    /// How many faults each seed draws.
    pub faults: usize,
    /// The fault kinds to draw from.
    pub kinds: Vec<FaultName>,
    /// Faults start within this span of virtual time.
    pub window: Span,
}

fn uniform(rng: &mut SimRng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo + 1)
}

fn unit(rng: &mut SimRng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn ms(x: u64) -> Span {
    Span::from_millis(x)
}

/// Draws the mix for `case` under root `seed`. Faulty nodes are chosen first, at most
/// `budget` of them (all nodes when there is no budget); each fault then lands on one of them.
/// `faulty` are the nodes the case's fixed faults already hit: they count against the
/// budget first.
pub fn draw(
    swarm: &Swarm,
    nodes: usize,
    budget: Option<usize>,
    faulty: &[NodeId],
    seed: u64,
    case: usize,
) -> Vec<Fault> {
    let mut rng = stream(seed, Stream::Setup(case as u32));
    let mut pool: Vec<NodeId> = (0..nodes as u32).map(NodeId).filter(|n| !faulty.contains(n)).collect();
    // A seeded Fisher-Yates shuffle of the healthy nodes, after the already faulty ones;
    // then keep the budget's worth.
    for i in (1..pool.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        pool.swap(i, j);
    }
    let mut pool: Vec<NodeId> = faulty.iter().copied().chain(pool).collect();
    pool.dedup();
    pool.truncate(budget.unwrap_or(nodes).max(1).min(nodes));
    let window_ms = (swarm.window.as_nanos() / 1_000_000).max(1);
    (0..swarm.faults)
        .map(|_| {
            let node = pool[(rng.next_u64() % pool.len() as u64) as usize];
            let kind = swarm.kinds[(rng.next_u64() % swarm.kinds.len() as u64) as usize];
            let start = Time::ZERO + ms(uniform(&mut rng, 0, window_ms));
            let span = ms(uniform(&mut rng, 10, window_ms.max(20) / 2));
            let delay =
                |rng: &mut SimRng, max: u64| LatencyDist::Uniform { min: Span::ZERO, max: ms(uniform(rng, 1, max)) };
            let direction = |rng: &mut SimRng| match rng.next_u64() % 3 {
                0 => Direction::Send,
                1 => Direction::Receive,
                _ => Direction::General,
            };
            let other = |rng: &mut SimRng| {
                let pick = (node.0 as u64 + 1 + rng.next_u64() % (nodes as u64 - 1).max(1)) % nodes as u64;
                NodeId(pick as u32)
            };
            let (kind, windowed) = match kind {
                FaultName::Crash => (FaultKind::Crash, false),
                FaultName::FailStop => (FaultKind::FailStop, false),
                FaultName::Restart => (FaultKind::Restart, true),
                FaultName::HalfOpen => (FaultKind::HalfOpen, true),
                FaultName::OmitSend => (FaultKind::Omit { direction: Direction::Send, p: unit(&mut rng) * 0.5 }, true),
                FaultName::OmitReceive => {
                    (FaultKind::Omit { direction: Direction::Receive, p: unit(&mut rng) * 0.5 }, true)
                }
                FaultName::OmitGeneral => {
                    (FaultKind::Omit { direction: Direction::General, p: unit(&mut rng) * 0.5 }, true)
                }
                FaultName::OmitEveryNth => {
                    (FaultKind::OmitEveryNth { direction: direction(&mut rng), n: uniform(&mut rng, 2, 64) }, true)
                }
                FaultName::OmitLarge => (
                    FaultKind::OmitLarge { direction: direction(&mut rng), bytes: uniform(&mut rng, 0, 64) as usize },
                    true,
                ),
                FaultName::Partition => (
                    FaultKind::Partition { peers: vec![other(&mut rng)], direction: direction(&mut rng), p: 1.0 },
                    true,
                ),
                FaultName::Duplicate => (FaultKind::Duplicate { p: unit(&mut rng) * 0.5 }, true),
                FaultName::Reorder => {
                    (FaultKind::Reorder { p: unit(&mut rng) * 0.5, extra: delay(&mut rng, 50) }, true)
                }
                FaultName::Delay => (FaultKind::Delay { extra: delay(&mut rng, 300) }, true),
                FaultName::Pause => (FaultKind::Pause, true),
                FaultName::Skew => (
                    FaultKind::Skew {
                        offset: (uniform(&mut rng, 0, 2_000) as i64 - 1_000) * 1_000_000,
                        drift_ppm: (unit(&mut rng) - 0.5) * 20_000.0,
                    },
                    true,
                ),
                FaultName::SlowDisk => (FaultKind::SlowDisk { extra: delay(&mut rng, 50) }, true),
                FaultName::Tamper => (FaultKind::Tamper { p: unit(&mut rng) }, true),
                FaultName::Equivocate => (FaultKind::Equivocate { p: unit(&mut rng) }, true),
                FaultName::Replay => (FaultKind::Replay { p: unit(&mut rng) * 0.5 }, true),
                FaultName::Stale => (FaultKind::Stale { age: ms(uniform(&mut rng, 1, 1_000)) }, true),
                FaultName::Lie => (FaultKind::Lie, true),
                FaultName::Flip => {
                    (FaultKind::Flip { p: unit(&mut rng) * 0.5, bits: uniform(&mut rng, 1, 4) as u32 }, true)
                }
                // Validation keeps forge out of a swarm with one node to fault.
                FaultName::Forge => (FaultKind::Forge { victim: other(&mut rng), p: unit(&mut rng) }, true),
                FaultName::Gray => {
                    let extra = rng.next_u64().is_multiple_of(2).then(|| delay(&mut rng, 200));
                    (FaultKind::Gray { p: unit(&mut rng) * 0.5, extra }, true)
                }
            };
            let end = windowed.then_some(start + span);
            Fault { node, kind, start, end }
        })
        .collect()
}
