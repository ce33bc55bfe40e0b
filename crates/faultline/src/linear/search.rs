//! Wing and Gong's search with Lowe's memoisation, over one partition (one key).
//!
//! The history becomes a doubly linked list of call and return events in real-time order
//! (an operation of unknown outcome returns at the end of time). From the head, the search
//! takes the first call whose step the model allows from the current state and whose
//! (linearised set, state) pair it has not met before, lifts the call and its return out
//! of the list, and starts again from the head; it backtracks when it meets a return
//! whose call it has not linearised (that operation must take effect before anything
//! later, and no order so far allowed it). The list empty is a linearisation; the stack
//! empty with a return at the head is a proof there is none. This is Porcupine's
//! `checkSingle`, with the memo keyed by a Zobrist hash of the set (updated in O(1) per
//! step) and the longest partial linearisation kept incrementally.

use super::model::{Machine, ModelKind, Step};
use super::{Operation, Val};

/// What a check may spend. Limits are per partition (key), so a verdict never depends on
/// how the partitions were spread over threads; `stop` is polled every few thousand steps
/// (a deadline, or Ctrl-C) and makes the verdict unknown, never a guess.
#[derive(Clone, Copy)]
pub struct Budget<'a> {
    /// Search steps (a call tried or a backtrack) per partition.
    pub max_steps: u64,
    /// Bytes the memo of one partition may hold.
    pub max_memo_bytes: usize,
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

fn never() -> bool {
    false
}

impl Budget<'static> {
    /// A budget with no deadline: `max_steps` steps and `max_memo_bytes` of memo per
    /// partition. Deterministic: what it decides depends only on the history.
    pub fn steps(max_steps: u64, max_memo_bytes: usize) -> Budget<'static> {
        Budget { max_steps, max_memo_bytes, stop: &never }
    }
}

/// A check's verdict.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Linearizable,
    /// The budget ran out before the search ended: nothing is claimed.
    Unknown,
    NotLinearizable,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::Unknown => "unknown",
            Verdict::NotLinearizable => "not linearizable",
        }
    }
}

/// Why a search stopped without a verdict.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Exhausted {
    Steps,
    Memory,
    Stopped,
}

/// The outcome of searching one partition.
#[derive(Clone, Debug)]
pub struct Searched {
    pub verdict: Verdict,
    pub exhausted: Option<Exhausted>,
    pub steps: u64,
    /// (linearised set, state) pairs memoised.
    pub memo_states: u64,
    /// The longest partial linearisation met: indices into the partition's operations, in
    /// order, each with the model state after it (as the history spells values).
    pub longest: Vec<(usize, String)>,
}

const NIL: u32 = u32::MAX;

/// Zobrist keys: a fixed, well-mixed 64-bit value per operation (SplitMix64).
fn zobrist(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn mix_state(state: u32) -> u64 {
    zobrist(usize::MAX - state as usize)
}

/// Identity hashing: the keys are Zobrist hashes already.
#[derive(Default)]
struct Ident(u64);

impl std::hash::Hasher for Ident {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("only u64 keys are hashed")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A memoised (linearised set, state) pair.
type Pair = (Box<[u64]>, u32);

/// Lowe's memo: (set, state) pairs met, bucketed by their hash. Used for membership only,
/// never iterated, so a hash map's order cannot leak into any result.
#[allow(clippy::disallowed_types)]
struct Memo {
    buckets: std::collections::HashMap<u64, Vec<Pair>, std::hash::BuildHasherDefault<Ident>>,
    len: u64,
    bytes: usize,
}

impl Memo {
    fn new() -> Memo {
        Memo { buckets: Default::default(), len: 0, bytes: 0 }
    }

    /// Inserts the pair; false when it was there already.
    fn insert(&mut self, hash: u64, set: &[u64], state: u32) -> bool {
        let bucket = self.buckets.entry(hash).or_default();
        if bucket.iter().any(|(s, st)| *st == state && **s == *set) {
            return false;
        }
        bucket.push((set.into(), state));
        self.len += 1;
        // The set, its box, the state, and the bucket's share of the table.
        self.bytes += set.len() * 8 + 16 + 4 + 32;
        true
    }
}

/// Compiles a partition's operations (sorted by invocation) for the search.
pub fn compile(kind: ModelKind, ops: &[Operation]) -> (Machine, Vec<Step>) {
    let mut machine = Machine::new(kind);
    let steps = ops.iter().map(|op| machine.compile(op)).collect();
    (machine, steps)
}

/// Searches one partition (its operations sorted by invocation).
pub fn search(kind: ModelKind, ops: &[Operation], budget: &Budget<'_>) -> Searched {
    search_with(kind, ops, budget, true)
}

/// [`search`], or with `memoise` false Wing and Gong's search as they published it, which
/// explores the same (set, state) pair again each time a different order reaches it: the
/// baseline of the benchmark (`cargo bench --bench linearizability`).
pub fn search_with(kind: ModelKind, ops: &[Operation], budget: &Budget<'_>, memoise: bool) -> Searched {
    let (mut machine, steps) = compile(kind, ops);
    let n = ops.len();
    // Nodes: 0 head, 1 tail, then 2 + 2i the call of op i and 3 + 2i its return.
    let mut order: Vec<(u64, u32)> = Vec::with_capacity(2 * n);
    for (i, op) in ops.iter().enumerate() {
        order.push((op.invoke, 2 + 2 * i as u32));
        // Unknown outcomes return after everything, among themselves in invocation order.
        order.push((op.complete.unwrap_or(u64::MAX), 3 + 2 * i as u32));
    }
    order.sort_unstable();
    let nodes = 2 + 2 * n;
    let mut next = vec![NIL; nodes];
    let mut prev = vec![NIL; nodes];
    let mut last = 0u32;
    for &(_, node) in &order {
        next[last as usize] = node;
        prev[node as usize] = last;
        last = node;
    }
    next[last as usize] = 1;
    prev[1] = last;

    let words = n.div_ceil(64).max(1);
    let mut set = vec![0u64; words];
    let mut memo = Memo::new();
    let mut state = Machine::INIT;
    let mut hash = mix_state(state);
    // (call node, state before, hash before)
    let mut stack: Vec<(u32, u32, u64)> = Vec::new();
    let mut best: Vec<(u32, u32)> = Vec::new(); // (op, state after)
    let mut common = 0usize; // stack[..common] is best[..common]
    let mut entry = next[0];
    let mut count = 0u64;

    let verdict = loop {
        if next[0] == 1 {
            break Ok(Verdict::Linearizable);
        }
        count += 1;
        if count & 0xFFF == 0 {
            if count > budget.max_steps {
                break Err(Exhausted::Steps);
            }
            if memo.bytes > budget.max_memo_bytes {
                break Err(Exhausted::Memory);
            }
            if (budget.stop)() {
                break Err(Exhausted::Stopped);
            }
        }
        let is_call = entry.is_multiple_of(2);
        if is_call {
            let op = (entry as usize - 2) / 2;
            if let Some(after) = machine.step(state, steps[op]) {
                let new_hash = hash ^ zobrist(op) ^ mix_state(state) ^ mix_state(after);
                set[op / 64] |= 1 << (op % 64);
                if !memoise || memo.insert(new_hash, &set, after) {
                    stack.push((entry, state, hash));
                    state = after;
                    hash = new_hash;
                    lift(&mut next, &mut prev, entry);
                    if stack.len() > best.len() {
                        best.truncate(common);
                        for (k, &(e, _, _)) in stack.iter().enumerate().skip(common) {
                            let after = stack.get(k + 1).map_or(state, |s| s.1);
                            best.push(((e - 2) / 2, after));
                        }
                        common = stack.len();
                    }
                    entry = next[0];
                    continue;
                }
                set[op / 64] &= !(1 << (op % 64));
            }
            entry = next[entry as usize];
        } else {
            let Some((call, before, h)) = stack.pop() else { break Ok(Verdict::NotLinearizable) };
            common = common.min(stack.len());
            let op = (call as usize - 2) / 2;
            set[op / 64] &= !(1 << (op % 64));
            state = before;
            hash = h;
            unlift(&mut next, &mut prev, call);
            entry = next[call as usize];
        }
    };
    let longest = best.iter().map(|&(op, st)| (op as usize, machine.describe(st))).collect();
    let (verdict, exhausted) = match verdict {
        Ok(v) => (v, None),
        Err(e) => (Verdict::Unknown, Some(e)),
    };
    Searched { verdict, exhausted, steps: count, memo_states: memo.len, longest }
}

/// Takes a call and its return out of the list (dancing links: `unlift` restores them).
fn lift(next: &mut [u32], prev: &mut [u32], call: u32) {
    for node in [call, call + 1] {
        let (p, n) = (prev[node as usize], next[node as usize]);
        next[p as usize] = n;
        prev[n as usize] = p;
    }
}

fn unlift(next: &mut [u32], prev: &mut [u32], call: u32) {
    for node in [call + 1, call] {
        let (p, n) = (prev[node as usize], next[node as usize]);
        next[p as usize] = node;
        prev[n as usize] = node;
    }
}

/// The partitions of a history: one per key, in key order (a history without keys is one
/// partition), each its operations' indices in invocation order.
pub fn partitions(ops: &[Operation]) -> Vec<(Option<Val>, Vec<usize>)> {
    let mut by_key: std::collections::BTreeMap<Option<&Val>, Vec<usize>> = std::collections::BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        by_key.entry(op.key.as_ref()).or_default().push(i);
    }
    by_key.into_iter().map(|(k, v)| (k.cloned(), v)).collect()
}
