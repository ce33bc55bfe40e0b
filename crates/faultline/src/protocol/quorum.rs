//! The chapter's coordinator: one leader, N followers, majority quorum, acks grouped by
//! content.
//!
//! Each round the leader sends `Append { round, index, data }` to every follower and sets a
//! deadline. A follower acks with the data it received. The round closes at the deadline,
//! or earlier once every follower has answered (the chapter's `asyncio.wait(tasks,
//! timeout=deadline)`); acks that arrive after their round closed are delivered and
//! discarded. The leader then groups the acks by content: the largest group wins (ties go
//! to the group whose first ack arrived first) and the round is agreed when that group has
//! at least `followers / 2 + 1` acks. `tampered_seen` is set when any ack's content differs
//! from what the leader proposed; the leader can always tell, because it knows what it sent.
//! The next round starts as soon as one closes.

use std::rc::Rc;

use crate::protocol::{Context, Message, NodeId, Protocol, TimerId};
use crate::sim::rng::SimRng;
use crate::sim::time::Span;

/// The leader is node 0; followers are nodes `1..=followers`, named `f0`, `f1`, ...
pub const LEADER: NodeId = NodeId(0);

/// What the Byzantine tamperer appends to an ack's data, as in the chapter.
pub const TAMPER_SUFFIX: &str = "_TAMPERED";

/// Parameters of the coordinator.
#[derive(Clone, Debug, PartialEq)]
pub struct QuorumConfig {
    pub followers: usize,
    pub deadline: Span,
    /// Rounds the leader runs, back to back.
    pub rounds: u64,
    /// The log index each append carries (the chapter's `idx=42`).
    pub index: u64,
    /// The value each append proposes (the chapter's `balance=9000`).
    pub data: String,
}

impl QuorumConfig {
    /// Majority of the followers: the chapter's `len(followers) // 2 + 1`.
    pub fn quorum(&self) -> usize {
        self.followers / 2 + 1
    }

    pub fn node_names(&self) -> Vec<String> {
        std::iter::once("leader".to_owned()).chain((0..self.followers).map(|i| format!("f{i}"))).collect()
    }

    /// One state machine per node: the leader first, then the followers.
    pub fn nodes(&self) -> Vec<QuorumNode> {
        let data: Rc<str> = Rc::from(self.data.as_str());
        std::iter::once(QuorumNode::Leader(Leader {
            followers: self.followers,
            quorum: self.quorum(),
            deadline: self.deadline,
            rounds: self.rounds,
            index: self.index,
            data,
            round: 0,
            open: false,
            answered: vec![false; self.followers],
            acks: Vec::with_capacity(self.followers),
            deadline_timer: None,
        }))
        .chain((0..self.followers).map(|_| QuorumNode::Follower))
        .collect()
    }
}

#[derive(Clone, Debug)]
pub enum QuorumMsg {
    Append { round: u64, index: u64, data: Rc<str> },
    Ack { round: u64, index: u64, data: Rc<str> },
}

impl Message for QuorumMsg {
    fn wire_size(&self) -> usize {
        match self {
            QuorumMsg::Append { data, .. } | QuorumMsg::Ack { data, .. } => 17 + data.len(),
        }
    }

    /// A tamperer may change the data of an ack (the chapter's Byzantine follower); it
    /// leaves the round and index alone, so the tampered ack still counts for its round.
    fn tamper(&mut self, _rng: &mut SimRng) -> bool {
        match self {
            QuorumMsg::Ack { data, .. } => {
                *data = Rc::from(format!("{data}{TAMPER_SUFFIX}"));
                true
            }
            QuorumMsg::Append { .. } => false,
        }
    }
}

#[derive(Clone, Debug)]
pub enum QuorumTimer {
    Deadline { round: u64 },
}

/// One round's outcome, reported by the leader when the round closes.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundResult {
    pub round: u64,
    pub acks: usize,
    pub followers: usize,
    pub quorum: usize,
    pub agreed: bool,
    pub tampered_seen: bool,
    pub proposed: Rc<str>,
    /// The content of the largest group of acks; `None` when no ack arrived.
    pub winning_data: Option<Rc<str>>,
    /// How many acks carried the winning content.
    pub winning_acks: usize,
}

#[derive(Clone)]
pub enum QuorumNode {
    Leader(Leader),
    Follower,
}

#[derive(Clone)]
pub struct Leader {
    followers: usize,
    quorum: usize,
    deadline: Span,
    rounds: u64,
    index: u64,
    data: Rc<str>,
    round: u64,
    open: bool,
    /// Per follower: has it acked the current round?
    answered: Vec<bool>,
    /// The current round's ack contents, in arrival order.
    acks: Vec<Rc<str>>,
    deadline_timer: Option<TimerId>,
}

impl Leader {
    fn start_round(&mut self, ctx: &mut Context<'_, QuorumNode>) {
        self.round += 1;
        self.open = true;
        self.acks.clear();
        self.answered.iter_mut().for_each(|a| *a = false);
        for f in 1..=self.followers {
            ctx.send(
                NodeId(f as u32),
                QuorumMsg::Append { round: self.round, index: self.index, data: Rc::clone(&self.data) },
            );
        }
        self.deadline_timer = Some(ctx.set_timer(self.deadline, QuorumTimer::Deadline { round: self.round }));
    }

    fn close_round(&mut self, ctx: &mut Context<'_, QuorumNode>) {
        self.open = false;
        if let Some(t) = self.deadline_timer.take() {
            ctx.cancel_timer(t);
        }
        // Group by content. Acks are few and almost all share the proposal's allocation, so
        // a pointer comparison settles most of them before any string comparison.
        let same = |a: &Rc<str>, b: &Rc<str>| Rc::ptr_eq(a, b) || a == b;
        let mut winning: Option<(&Rc<str>, usize)> = None;
        for (i, candidate) in self.acks.iter().enumerate() {
            if self.acks[..i].iter().any(|a| same(a, candidate)) {
                continue; // this content's group was counted at its first ack
            }
            let count = self.acks[i..].iter().filter(|a| same(a, candidate)).count();
            if winning.is_none_or(|(_, best)| count > best) {
                winning = Some((candidate, count));
            }
        }
        let tampered_seen = self.acks.iter().any(|a| !same(a, &self.data));
        let winning_acks = winning.map_or(0, |(_, c)| c);
        ctx.observe(RoundResult {
            round: self.round,
            acks: self.acks.len(),
            followers: self.followers,
            quorum: self.quorum,
            agreed: winning_acks >= self.quorum,
            tampered_seen,
            proposed: Rc::clone(&self.data),
            winning_data: winning.map(|(d, _)| Rc::clone(d)),
            winning_acks,
        });
        if self.round < self.rounds {
            self.start_round(ctx);
        }
    }
}

impl Protocol for QuorumNode {
    type Msg = QuorumMsg;
    type Timer = QuorumTimer;
    type Obs = RoundResult;

    fn on_start(&mut self, ctx: &mut Context<'_, Self>) {
        if let QuorumNode::Leader(leader) = self
            && leader.rounds > 0
        {
            leader.start_round(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_, Self>, from: NodeId, msg: QuorumMsg) {
        match (self, msg) {
            (QuorumNode::Follower, QuorumMsg::Append { round, index, data }) => {
                ctx.send(from, QuorumMsg::Ack { round, index, data });
            }
            (QuorumNode::Leader(leader), QuorumMsg::Ack { round, data, .. }) => {
                let Some(slot) = from.index().checked_sub(1).filter(|&i| i < leader.followers) else {
                    return; // not one of our followers
                };
                if !leader.open || round != leader.round || leader.answered[slot] {
                    return; // late for its round, or a duplicate
                }
                leader.answered[slot] = true;
                leader.acks.push(data);
                if leader.acks.len() == leader.followers {
                    leader.close_round(ctx);
                }
            }
            // Followers ignore acks; the leader ignores appends.
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_, Self>, _id: TimerId, timer: QuorumTimer) {
        if let (QuorumNode::Leader(leader), QuorumTimer::Deadline { round }) = (self, timer)
            && leader.open
            && round == leader.round
        {
            leader.close_round(ctx);
        }
    }
}
