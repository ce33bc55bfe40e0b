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
//! step) and the longest partial linearisation kept incrementally. Two reductions on top,
//! both held to the brute-force checker's verdicts in `tests.rs`:
//! - at each new node, a pending read the current state allows is linearised first and
//!   alone (a read changes nothing, and everything that must precede it already has), so
//!   reads never multiply the orders tried;
//! - a write nobody read is never a choice of its own: it goes just before the next write
//!   the search linearises (hidden by it), or at its return if still pending then.

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

/// A memoised (linearised set, state) pair: the set as [`Bits::key`].
type Pair = (u32, Box<[u64]>, u32);

/// The linearised set, as a bitset that knows its full prefix: operations are numbered in
/// invocation order and linearised roughly in that order, so the words below `floor` are
/// all ones and those above `top` all zeros. The memo keeps only the words between, which
/// is the span of concurrency, not the length of the history (a 100,000-operation history
/// would otherwise copy 12.5 KB per memo entry).
struct Bits {
    words: Vec<u64>,
    /// Set bits per word.
    pop: Vec<u8>,
    /// The first word not all ones.
    floor: usize,
    /// The last word with a bit set (0 when none is).
    top: usize,
}

impl Bits {
    fn new(n: usize) -> Bits {
        let len = n.div_ceil(64).max(1);
        Bits { words: vec![0; len], pop: vec![0; len], floor: 0, top: 0 }
    }

    fn insert(&mut self, op: usize) {
        let w = op / 64;
        self.words[w] |= 1 << (op % 64);
        self.pop[w] += 1;
        self.top = self.top.max(w);
        while self.floor < self.words.len() && self.pop[self.floor] == 64 {
            self.floor += 1;
        }
    }

    fn remove(&mut self, op: usize) {
        let w = op / 64;
        self.words[w] &= !(1 << (op % 64));
        self.pop[w] -= 1;
        self.floor = self.floor.min(w);
        while self.top > 0 && self.pop[self.top] == 0 {
            self.top -= 1;
        }
    }

    /// A canonical key: the first word not all ones, and the words from it to the last set.
    fn key(&self) -> (u32, &[u64]) {
        let hi = self.top.max(self.floor.saturating_sub(1)) + 1;
        let lo = self.floor.min(hi);
        (self.floor as u32, &self.words[lo..hi.min(self.words.len())])
    }
}

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
    fn insert(&mut self, hash: u64, (floor, set): (u32, &[u64]), state: u32) -> bool {
        let bucket = self.buckets.entry(hash).or_default();
        if bucket.iter().any(|(f, s, st)| *st == state && *f == floor && **s == *set) {
            return false;
        }
        bucket.push((floor, set.into(), state));
        self.len += 1;
        // The words and their allocation, the pair in its bucket, the bucket's own
        // allocation (four pairs at first) and its slot in the table at its load factor:
        // a conservative count, so the budget holds for what the allocator really holds.
        self.bytes += set.len() * 8 + 32 + 24 + 96 + 40;
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

/// [`search`], or with `optimised` false Wing and Gong's search as they published it (no
/// memo, no forced reads), which explores the same (set, state) pair again each time a
/// different order reaches it: the baseline of `cargo bench --bench linearizability`.
pub fn search_with(kind: ModelKind, ops: &[Operation], budget: &Budget<'_>, optimised: bool) -> Searched {
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

    // Writes nobody read (their value no read returned, no cas expected): see `Hidden`.
    let hidden: Vec<bool> = if optimised {
        let unread = super::unread_writes(kind, ops);
        (0..n).map(|i| unread[i] && matches!(steps[i], Step::Write(_) | Step::Append(_))).collect()
    } else {
        vec![false; n]
    };

    let mut set = Bits::new(n);
    let mut memo = Memo::new();
    let mut state = Machine::INIT;
    let mut hash = mix_state(state);
    let mut stack: Vec<Frame> = Vec::new();
    let mut best: Vec<(u32, u32)> = Vec::new(); // (op, state after)
    let mut common = 0usize; // stack[..common] is best[..common]
    let mut entry = next[0];
    let mut count = 0u64;

    let mut fresh = true;
    let verdict = 'search: loop {
        if next[0] == 1 {
            break Ok(Verdict::Linearizable);
        }
        count += 1;
        if count & 0xFFF == 0 {
            if count > budget.max_steps {
                break Err(Exhausted::Steps);
            }
            if memo.bytes + machine.bytes() > budget.max_memo_bytes {
                break Err(Exhausted::Memory);
            }
            if (budget.stop)() {
                break Err(Exhausted::Stopped);
            }
        }
        let mut dead = false;
        // At a new node, a pending read the state allows goes first, and alone: it changes
        // no state, and every operation that must precede it already has (its call is
        // before the first return), so if any order completes from here, one with the
        // read first does. No other choice is tried at this node.
        if fresh && optimised {
            fresh = false;
            let mut e = next[0];
            while e != 1 && e.is_multiple_of(2) {
                let op = op_of(e);
                if matches!(steps[op], Step::Read(None)) || steps[op] == Step::Read(Some(state)) {
                    set.insert(op);
                    let new_hash = hash ^ zobrist(op);
                    if memo.insert(new_hash, set.key(), state) {
                        let frame = Frame { call: e, before: state, after: state, hash, kind: Kind::Forced };
                        hash = new_hash;
                        entry = descend(frame, &mut stack, &mut next, &mut prev, &mut best, &mut common);
                        fresh = true;
                        continue 'search;
                    }
                    // Explored before from here, without success: this node is dead.
                    set.remove(op);
                    dead = true;
                    break;
                }
                e = next[e as usize];
            }
        }
        // The return of a write nobody read, still pending: it goes now, the one choice
        // left at this node (the calls before this return were tried already).
        if !dead && !entry.is_multiple_of(2) && hidden[op_of(entry - 1)] {
            let call = entry - 1;
            let op = op_of(call);
            if let Some(after) = machine.step(state, steps[op]) {
                set.insert(op);
                let new_hash = hash ^ zobrist(op) ^ mix_state(state) ^ mix_state(after);
                if memo.insert(new_hash, set.key(), after) {
                    let frame = Frame { call, before: state, after, hash, kind: Kind::Forced };
                    state = after;
                    hash = new_hash;
                    entry = descend(frame, &mut stack, &mut next, &mut prev, &mut best, &mut common);
                    fresh = true;
                    continue;
                }
                set.remove(op);
            }
            dead = true;
        }
        if !dead && entry.is_multiple_of(2) {
            let op = op_of(entry);
            if hidden[op] {
                // Never a choice of its own: it goes in a block before another write, or
                // at its return.
                entry = next[entry as usize];
                continue;
            }
            if let Some(after) = machine.step(state, steps[op]) {
                // A write first takes every pending write nobody read, just before it, where
                // it hides them: placing them there is always as good as anywhere later.
                let mut block: Vec<u32> = Vec::new();
                let mut block_hash = hash;
                if matches!(steps[op], Step::Write(_)) && optimised {
                    let mut e = next[0];
                    while e != 1 && e.is_multiple_of(2) {
                        let u = op_of(e);
                        if hidden[u] {
                            block.push(e);
                            set.insert(u);
                            block_hash ^= zobrist(u);
                        }
                        e = next[e as usize];
                    }
                }
                let new_hash = block_hash ^ zobrist(op) ^ mix_state(state) ^ mix_state(after);
                set.insert(op);
                if !optimised || memo.insert(new_hash, set.key(), after) {
                    // The block's states before each are the state before the write: they
                    // are hidden, so the state the write sees does not matter to it.
                    for &e in &block {
                        let own = machine.step(state, steps[op_of(e)]).unwrap_or(state);
                        stack.push(Frame { call: e, before: state, after: own, hash, kind: Kind::Attached });
                        lift(&mut next, &mut prev, e);
                    }
                    let frame = Frame { call: entry, before: state, after, hash, kind: Kind::Choice };
                    state = after;
                    hash = new_hash;
                    entry = descend(frame, &mut stack, &mut next, &mut prev, &mut best, &mut common);
                    fresh = true;
                    continue;
                }
                set.remove(op);
                for &e in &block {
                    set.remove(op_of(e));
                }
            }
            entry = next[entry as usize];
            continue;
        }
        // A return whose call is not linearised (or a dead node): undo the last choice
        // (with the block it took), and past forced steps, the choice before them.
        loop {
            let Some(f) = stack.pop() else { break 'search Ok(Verdict::NotLinearizable) };
            undo(&f, &mut set, &mut next, &mut prev);
            state = f.before;
            hash = f.hash;
            match f.kind {
                Kind::Forced => continue,
                Kind::Attached => unreachable!("a block is undone with its write"),
                Kind::Choice => {
                    while stack.last().is_some_and(|g| g.kind == Kind::Attached) {
                        let g = stack.pop().expect("checked");
                        undo(&g, &mut set, &mut next, &mut prev);
                    }
                    common = common.min(stack.len());
                    entry = next[f.call as usize];
                    break;
                }
            }
        }
        common = common.min(stack.len());
    };
    let longest = best.iter().map(|&(op, st)| (op as usize, machine.describe(st))).collect();
    let (verdict, exhausted) = match verdict {
        Ok(v) => (v, None),
        Err(e) => (Verdict::Unknown, Some(e)),
    };
    Searched { verdict, exhausted, steps: count, memo_states: memo.len, longest }
}

/// How an operation came to be linearised.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// A choice among the node's pending calls: undone, the next one is tried.
    Choice,
    /// The node's only option (a read the state allows, or a pending write nobody read at
    /// its return): undone, the choice before it is undone too.
    Forced,
    /// A write nobody read, placed just before the write above it on the stack (hidden by
    /// it): undone with that write.
    Attached,
}

/// One linearised operation on the search stack: its call node, the state and hash
/// before it.
struct Frame {
    call: u32,
    before: u32,
    /// The state it left (for an attached write, what it would leave on its own).
    after: u32,
    hash: u64,
    kind: Kind,
}

fn undo(f: &Frame, set: &mut Bits, next: &mut [u32], prev: &mut [u32]) {
    let op = op_of(f.call);
    set.remove(op);
    unlift(next, prev, f.call);
}

/// Linearises `frame`'s call: onto the stack, out of the list, into the longest partial
/// linearisation if the stack now passes it. Returns where the search goes on: the head.
fn descend(
    frame: Frame,
    stack: &mut Vec<Frame>,
    next: &mut [u32],
    prev: &mut [u32],
    best: &mut Vec<(u32, u32)>,
    common: &mut usize,
) -> u32 {
    lift(next, prev, frame.call);
    stack.push(frame);
    keep_longest(best, common, stack);
    next[0]
}

/// The operation a call node stands for (nodes: 0 head, 1 tail, 2 + 2i the call of op i).
fn op_of(call: u32) -> usize {
    (call as usize - 2) / 2
}

/// Extends `best` (the longest partial linearisation: op and state after) when the stack
/// passed it; `stack[..common]` is already `best[..common]`, so only the rest is copied.
fn keep_longest(best: &mut Vec<(u32, u32)>, common: &mut usize, stack: &[Frame]) {
    if stack.len() <= best.len() {
        return;
    }
    best.truncate(*common);
    for f in &stack[*common..] {
        best.push((op_of(f.call) as u32, f.after));
    }
    *common = stack.len();
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
