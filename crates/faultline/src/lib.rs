//! Faultline: a deterministic simulator for the four classic failure models of replicated
//! systems (crash, omission, timing, Byzantine) and gray failure.
//!
//! The modules are the map of the system, and depend on each other in one direction only,
//! from the leaves up (a test, `tests/layering.rs`, keeps it so):
//! - [`time`], [`rng`], [`latency`]: virtual time, seeded random streams, latency
//!   distributions (leaves: they depend on no other module);
//! - [`protocol`]: the sans-IO protocol interface (on the leaves only);
//! - [`fault`]: faults as data, and the injector that applies them (on the interface);
//! - [`sim`]: the network, disks, and the control loop (on the interface and faults, never
//!   on a concrete protocol);
//! - [`trace`]: every event of a run, with ground truth about which fault caused it;
//! - [`input`]: bounded reading of user files, and quoting user values in errors;
//! - [`scenario`]: scenario files: loading, validation, overrides; a workload's table is
//!   read through the loader interface it defines, never by name;
//! - [`check`]: the one violation type every checker reports, and its class (safety or
//!   liveness);
//! - [`workload`]: the interface a protocol implements to get scenario files, runs, sweeps,
//!   traces and checkers; the registry; the one generic sweep;
//! - [`protocols`]: the concrete protocols, each in its folder with its workload, checkers
//!   and report: the chapter's quorum coordinator, Raft, heartbeats (their state machines
//!   name only the layers below the simulator);
//! - [`signals`]: monitoring signals per replica and the file formats that carry them (on
//!   input only);
//! - [`detect`]: failure detectors (fixed timeout, Akka's and Cassandra's φ accrual) and their QoS;
//! - [`diagnose`]: names the failure model each replica shows from its signals, with
//!   evidence and the runbook step (on signals only: it reads real exports and simulated
//!   ones alike);
//! - [`linear`]: operation histories (Jepsen's EDN, JSON lines) and the linearizability
//!   checker (Wing and Gong's search, Lowe's memo, one key at a time), which Raft's
//!   workload runs on its clients' histories and `faultline check` on anyone's;
//! - [`registry`]: the built-in workloads, the one list that names them;
//! - [`tolerance`]: the tolerance table (protocol × failure model × cluster size × faulty
//!   replicas, safe and live over seeds) and the cost figures, at the top: it names the
//!   protocols it compares.
//!
//! A run is a pure function of its scenario and seed:
//!
//! ```
//! use faultline::scenario::Scenario;
//!
//! let scenario = Scenario::chapter();
//! let rows = faultline::protocols::quorum::report::run_all(&scenario, 7);
//! let healthy = &rows[0];
//! assert_eq!((healthy.name.as_str(), healthy.acks, healthy.agreed), ("healthy", 4, true));
//! // Same scenario, same seed: the same answer, every time.
//! assert_eq!(rows, faultline::protocols::quorum::report::run_all(&scenario, 7));
//! ```

pub mod check;
pub mod detect;
pub mod diagnose;
pub mod fault;
pub mod input;
pub mod latency;
pub mod linear;
pub mod observe;
pub mod protocol;
pub mod protocols;
pub mod registry;
pub mod rng;
pub mod scenario;
pub mod signals;
pub mod sim;
pub mod time;
pub mod tolerance;
pub mod trace;
pub mod workload;
