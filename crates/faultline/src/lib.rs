//! Faultline: a deterministic simulator for the four classic failure models of replicated
//! systems (crash, omission, timing, Byzantine) and gray failure.
//!
//! The modules are the map of the system:
//! - [`sim`]: virtual time, seeded random streams, the network, disks, and the control loop;
//! - [`fault`]: faults as data, and the injector that applies them;
//! - [`protocol`]: the sans-IO protocol interface, and the chapter's quorum coordinator;
//! - [`trace`]: every event of a run, with ground truth about which fault caused it;
//! - [`input`]: bounded reading of user files, and quoting user values in errors;
//! - [`scenario`]: scenario files: loading, validation, overrides, and running them;
//! - [`check`]: invariants evaluated over a run's observations;
//! - [`detect`]: failure detectors (fixed timeout, Akka's and Cassandra's φ accrual) and their QoS;
//! - [`report`]: rows, sweeps and benchmarks, rendered as tables or JSON.
//!
//! A run is a pure function of its scenario and seed:
//!
//! ```
//! use faultline::scenario::Scenario;
//!
//! let scenario = Scenario::chapter();
//! let rows = faultline::report::run_all(&scenario, 7);
//! let healthy = &rows[0];
//! assert_eq!((healthy.name.as_str(), healthy.acks, healthy.agreed), ("healthy", 4, true));
//! // Same scenario, same seed: the same answer, every time.
//! assert_eq!(rows, faultline::report::run_all(&scenario, 7));
//! ```

pub mod check;
pub mod detect;
pub mod fault;
pub mod input;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod trace;
