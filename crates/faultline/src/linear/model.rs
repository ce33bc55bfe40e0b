//! The sequential specifications: a register (`read`, `write`, `cas`) and a key-value
//! store of strings (`get`, `put`, `append`).
//!
//! Before the search, a partition's operations are compiled into [`Step`]s over interned
//! values, so a model state is one `u32` (the id of the register's value, or of the key's
//! string) and a step is a comparison or two: Lowe's memo then stores a state as four
//! bytes, and comparing states never touches a string.

use std::collections::BTreeMap;

use super::{Call, Operation, Val};

/// Which sequential specification a history is checked against.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// A register per key (one register when the history names no `:key`): `read`,
    /// `write`, `cas [old new]`; it starts as nil.
    Register,
    /// A key-value store of strings: `get`, `put`, `append` (concatenates); a key never
    /// written reads as nil or as the empty string, both accepted.
    Kv,
}

impl ModelKind {
    pub const ALL: [ModelKind; 2] = [ModelKind::Register, ModelKind::Kv];

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::Kv => "kv",
        }
    }

    pub fn from_name(name: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The `:f` values its operations may carry.
    pub fn functions(self) -> &'static [&'static str] {
        match self {
            ModelKind::Register => &["read", "write", "cas"],
            ModelKind::Kv => &["get", "put", "append"],
        }
    }

    /// The model whose operation `f` is, when it is one of ours.
    pub fn of_function(f: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|m| m.functions().contains(&f))
    }
}

/// One operation as the search sees it. `u32`s are interned values (0 is nil, which the
/// key-value model also uses for the empty string).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A read that returned `Some(v)`; `None` when its outcome is unknown (any state).
    Read(Option<u32>),
    Write(u32),
    /// A compare-and-set: completed `:ok`, it took effect (the state was `old`); of unknown
    /// outcome, it took effect if the state was `old` and otherwise changed nothing.
    Cas {
        old: u32,
        new: u32,
        known: bool,
    },
    /// Appends the interned string `piece` to the key's string.
    Append(u32),
}

/// A partition's interned values and, for the key-value model, the strings reached by
/// appending; [`Machine::step`] is the sequential specification.
#[derive(Debug)]
pub struct Machine {
    kind: ModelKind,
    ids: BTreeMap<Val, u32>,
    /// Register: id -> value.
    values: Vec<Val>,
    /// Key-value model: id -> string (id 0 is "").
    strings: Vec<Box<str>>,
    by_string: BTreeMap<Box<str>, u32>,
    string_bytes: usize,
}

impl Machine {
    pub fn new(kind: ModelKind) -> Machine {
        let mut ids = BTreeMap::new();
        ids.insert(Val::Nil, 0);
        let mut by_string = BTreeMap::new();
        by_string.insert(Box::from(""), 0);
        Machine { kind, ids, values: vec![Val::Nil], strings: vec![Box::from("")], by_string, string_bytes: 0 }
    }

    /// The state every key starts in.
    pub const INIT: u32 = 0;

    /// Compiles an operation into its step.
    pub fn compile(&mut self, op: &Operation) -> Step {
        match &op.call {
            Call::Read | Call::Get => Step::Read(op.output.as_ref().map(|v| self.intern(v))),
            Call::Write(v) | Call::Put(v) => Step::Write(self.intern(v)),
            Call::Cas { old, new } => Step::Cas { old: self.intern(old), new: self.intern(new), known: !op.is_info() },
            Call::Append(v) => Step::Append(self.intern(v)),
        }
    }

    fn intern(&mut self, v: &Val) -> u32 {
        match self.kind {
            ModelKind::Register => {
                if let Some(&id) = self.ids.get(v) {
                    return id;
                }
                let id = self.values.len() as u32;
                self.ids.insert(v.clone(), id);
                self.values.push(v.clone());
                id
            }
            ModelKind::Kv => match v {
                Val::Nil => 0,
                Val::Str(s) => self.string_id(s),
                // The parser admits only strings and nil for the key-value model; an
                // integer is read as its decimal text should one reach here.
                Val::Int(i) => self.string_id(&i.to_string()),
            },
        }
    }

    fn string_id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.by_string.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.string_bytes += 2 * s.len() + 96;
        self.strings.push(Box::from(s));
        self.by_string.insert(Box::from(s), id);
        id
    }

    /// The sequential specification: the state after `step` from `state`, or `None` when
    /// the step cannot happen there (a read that saw something else, a completed cas whose
    /// old value was not the state).
    pub fn step(&mut self, state: u32, step: Step) -> Option<u32> {
        match step {
            Step::Read(None) => Some(state),
            Step::Read(Some(v)) => (v == state).then_some(state),
            Step::Write(v) => Some(v),
            Step::Cas { old, new, known } => {
                if state == old {
                    Some(new)
                } else if known {
                    None
                } else {
                    Some(state)
                }
            }
            Step::Append(piece) => {
                if piece == 0 {
                    return Some(state);
                }
                if state == 0 {
                    return Some(piece);
                }
                let joined = format!("{}{}", self.strings[state as usize], self.strings[piece as usize]);
                Some(self.string_id(&joined))
            }
        }
    }

    /// Bytes held by the strings the key-value model reached (each kept twice, with its
    /// allocations and its map entry).
    pub fn bytes(&self) -> usize {
        self.string_bytes
    }

    /// The value a state stands for, as a history spells it.
    pub fn describe(&self, state: u32) -> String {
        match self.kind {
            ModelKind::Register => self.values.get(state as usize).map_or_else(|| "?".to_owned(), Val::to_string),
            ModelKind::Kv => {
                let s = &self.strings[state as usize];
                if s.is_empty() { "nil".to_owned() } else { format!("{s:?}") }
            }
        }
    }
}
