//! The tree on synthetic signals: one healthy cluster, and each model injected in one
//! replica, the way monitoring would show it.

use super::*;
use crate::signals::{Sample, Signal, Transport, Value};

/// What a replica shows at time `t` (seconds); `None` leaves a signal out.
type Show = dyn Fn(f64, &mut Vec<(Signal, Value)>);

const DT: f64 = 1.0;
const END: f64 = 60.0;
const ONSET: f64 = 20.0;

fn commit(t: f64) -> f64 {
    (t * 10.0).floor()
}

fn n(x: f64) -> Value {
    Value::Number(x)
}

/// A healthy replica: heard every 100-300 ms, fast, in step with the leader.
fn healthy(t: f64, i: usize, out: &mut Vec<(Signal, Value)>) {
    let wobble = ((t as usize + i) % 3) as f64;
    out.extend([
        (Signal::HeartbeatAge, n(0.1 + 0.1 * wobble)),
        (Signal::Transport, Value::Transport(Transport::Open)),
        (Signal::HealthOk, n(1.0)),
        (Signal::HealthLatency, n(2.0 + wobble)),
        (Signal::DataOk, n(1.0)),
        (Signal::DataLatency, n(5.0 + wobble)),
        (Signal::AckLatency, n(3.0 + wobble)),
        (Signal::AckedIndex, n(commit(t))),
        (Signal::DurableIndex, n(commit(t))),
        (Signal::ServedVersionAge, n(0.2 + 0.1 * wobble)),
        (Signal::ContentDigest, Value::Digest(format!("v{}", (t / 5.0).floor()))),
        (Signal::Retransmits, n((t / 10.0).floor())),
    ]);
}

fn set(out: &mut Vec<(Signal, Value)>, s: Signal, v: Value) {
    out.retain(|(x, _)| *x != s);
    out.push((s, v));
}

fn drop_signal(out: &mut Vec<(Signal, Value)>, s: Signal) {
    out.retain(|(x, _)| *x != s);
}

/// Five replicas r0..r4 (r0 the leader, whose commit index is also sampled); `faulty`
/// shows what r1 shows.
fn run(faulty: &Show) -> Report {
    run_with(faulty, &|_, _| {})
}

fn run_with(faulty: &Show, second: &Show) -> Report {
    let mut d = Diagnoser::default();
    let mut t = 0.0;
    while t <= END {
        let mut samples = Vec::new();
        samples.push(Sample {
            time_s: t,
            replica: "r0".into(),
            signal: Signal::LeaderCommitIndex,
            value: n(commit(t)),
        });
        for i in 1..5 {
            let mut out = Vec::new();
            healthy(t, i, &mut out);
            if i == 1 {
                faulty(t, &mut out);
            }
            if i == 2 {
                second(t, &mut out);
            }
            for (signal, value) in out {
                samples.push(Sample { time_s: t, replica: format!("r{i}"), signal, value });
            }
        }
        for s in &samples {
            d.push(s);
        }
        t += DT;
    }
    d.report()
}

fn verdict<'a>(report: &'a Report, replica: &str) -> &'a ReplicaVerdict {
    report.replicas.iter().find(|r| r.replica == replica).expect("a verdict per replica")
}

fn assert_only(report: &Report, model: Model, kind: Option<&str>) {
    let r1 = verdict(report, "r1");
    assert_eq!((r1.verdict, r1.kind), (model, kind), "{r1:#?}");
    for r in report.replicas.iter().filter(|r| r.replica != "r1") {
        assert_eq!(r.verdict, Model::Healthy, "{r:#?}");
    }
}

#[test]
fn a_healthy_cluster_is_healthy() {
    let report = run(&|_, _| {});
    for r in &report.replicas {
        assert_eq!(r.verdict, Model::Healthy, "{r:#?}");
        assert!(r.also.is_empty(), "{r:#?}");
    }
    assert_eq!(report.cluster.healthy, 5);
    assert_eq!((report.cluster.crash_absorbs, report.cluster.byzantine_absorbs), (2, 1));
}

fn down(t: f64, out: &mut Vec<(Signal, Value)>, transport: Transport) {
    if t < ONSET {
        return;
    }
    set(out, Signal::HeartbeatAge, n(t - ONSET));
    set(out, Signal::Transport, Value::Transport(transport));
    // A half-open replica's transport still answers the load balancer's probe.
    set(out, Signal::HealthOk, n(if transport == Transport::HalfOpen { 1.0 } else { 0.0 }));
    set(out, Signal::DataOk, n(0.0));
    set(out, Signal::AckedIndex, n(commit(ONSET)));
    set(out, Signal::DurableIndex, n(commit(ONSET)));
    for s in [
        Signal::HealthLatency,
        Signal::DataLatency,
        Signal::AckLatency,
        Signal::ServedVersionAge,
        Signal::ContentDigest,
    ] {
        drop_signal(out, s);
    }
}

#[test]
fn a_crash_behind_a_half_open_socket_is_named_recoverable() {
    let report = run(&|t, out| down(t, out, Transport::HalfOpen));
    assert_only(&report, Model::Crash, Some("half-open"));
    let r1 = verdict(&report, "r1");
    assert_eq!(r1.since_s, Some(ONSET));
    assert!(r1.runbook.contains("restart it, do not remove it"), "{}", r1.runbook);
    assert!(r1.evidence.iter().any(|e| e.signal == "transport" && e.value == "half-open"));
}

#[test]
fn a_crash_with_its_port_closed_is_a_plain_crash() {
    assert_only(&run(&|t, out| down(t, out, Transport::Refused)), Model::Crash, None);
}

#[test]
fn heartbeats_alone_cannot_tell_a_crash_from_a_pause_and_say_what_would() {
    let report = run(&|t, out| {
        down(t, out, Transport::Refused);
        out.retain(|(s, _)| *s == Signal::HeartbeatAge);
    });
    let r1 = verdict(&report, "r1");
    assert_eq!(r1.verdict, Model::CannotTell, "{r1:#?}");
    assert!(r1.unknown.iter().any(|u| u.contains("needs transport")), "{r1:#?}");
}

#[test]
fn a_replica_serving_old_data_as_fresh_is_stale() {
    let report = run(&|t, out| {
        if t >= ONSET {
            set(out, Signal::ServedVersionAge, n(11.0 * 3600.0));
        }
    });
    assert_only(&report, Model::Byzantine, Some("stale"));
    assert!(verdict(&report, "r1").runbook.contains("stop serving reads"));
}

#[test]
fn acks_past_a_frozen_wal_are_lies() {
    let report = run(&|t, out| {
        if t >= ONSET {
            set(out, Signal::DurableIndex, n(commit(ONSET)));
        }
    });
    assert_only(&report, Model::Byzantine, Some("lying-acks"));
    let r1 = verdict(&report, "r1");
    assert_eq!(r1.since_s, Some(ONSET));
    assert!(r1.runbook.contains("audit every write it acked"), "{}", r1.runbook);
}

#[test]
fn content_that_disagrees_with_the_majority_is_corrupt_and_sometimes_right_is_equivocation() {
    let report = run(&|t, out| {
        if t >= ONSET {
            set(out, Signal::ContentDigest, Value::Digest("garbage".into()));
        }
    });
    assert_only(&report, Model::Byzantine, Some("corrupt"));
    let report = run(&|t, out| {
        if t >= ONSET && (t as u64).is_multiple_of(2) {
            set(out, Signal::ContentDigest, Value::Digest(format!("other{t}")));
        }
    });
    assert_only(&report, Model::Byzantine, Some("equivocation"));
}

#[test]
fn acks_stuck_behind_the_leader_while_the_wal_moves_are_lost_sends() {
    let report = run(&|t, out| {
        if t >= ONSET {
            set(out, Signal::AckedIndex, n(commit(ONSET)));
            set(out, Signal::Retransmits, n(50.0 * (t - ONSET)));
        }
    });
    assert_only(&report, Model::Omission, Some("send"));
    let report = run(&|t, out| {
        if t >= ONSET {
            set(out, Signal::AckedIndex, n(commit(ONSET)));
            set(out, Signal::DurableIndex, n(commit(ONSET)));
        }
    });
    assert_only(&report, Model::Omission, Some("receive"));
    assert!(verdict(&report, "r1").runbook.contains("check its NIC"));
}

#[test]
fn intermittent_losses_on_both_planes_are_omission_on_the_data_plane_only_gray() {
    let report = run(&|t, out| {
        if t >= ONSET && (t as u64).is_multiple_of(3) {
            set(out, Signal::DataOk, n(0.0));
            set(out, Signal::HealthOk, n(0.0));
        }
    });
    assert_only(&report, Model::Omission, Some("general"));
    let report = run(&|t, out| {
        if t >= ONSET && (t as u64).is_multiple_of(3) {
            set(out, Signal::DataOk, n(0.0));
        }
    });
    assert_only(&report, Model::Gray, None);
}

#[test]
fn a_slow_replica_is_timing_and_one_that_stops_and_resumes_pauses() {
    let report = run(&|t, out| {
        if t >= ONSET {
            set(out, Signal::AckLatency, n(400.0));
            set(out, Signal::DataLatency, n(450.0));
        }
    });
    assert_only(&report, Model::Timing, Some("slow"));
    // Frozen whole from 50 s (a GC pause): its kernel holds its sockets, nothing answers,
    // not even the health probe.
    let pause = |t: f64, out: &mut Vec<(Signal, Value)>| {
        if t >= 50.0 {
            set(out, Signal::HeartbeatAge, n(t - 50.0 + 0.5));
            set(out, Signal::Transport, Value::Transport(Transport::HalfOpen));
            set(out, Signal::HealthOk, n(0.0));
            set(out, Signal::DataOk, n(0.0));
        }
    };
    let report = run(&pause);
    assert_only(&report, Model::Timing, Some("pause"));
    assert!(verdict(&report, "r1").runbook.contains("do not fail it over faster than its pauses"));
    // Once it is back, it is healthy: the verdict is about now.
    let back = run(&move |t, out| {
        if (30.0..34.0).contains(&t) {
            pause(t + 20.0, out);
        }
    });
    assert_eq!(verdict(&back, "r1").verdict, Model::Healthy);
    // Without a transport signal, a replica silent before and back, silent again, pauses.
    let again = run(&|t, out| {
        if (30.0..34.0).contains(&t) || t >= 50.0 {
            set(out, Signal::HeartbeatAge, n(if t >= 50.0 { t - 50.0 + 0.5 } else { t - 30.0 + 0.5 }));
            set(out, Signal::HealthOk, n(0.0));
            set(out, Signal::DataOk, n(0.0));
        }
        drop_signal(out, Signal::Transport);
    });
    assert_eq!((verdict(&again, "r1").verdict, verdict(&again, "r1").kind), (Model::Timing, Some("pause")));
}

#[test]
fn two_models_in_one_replica_are_both_named() {
    // Timing and omission in one replica: slow and losing a third of its requests.
    let report = run(&|t, out| {
        if t >= ONSET {
            set(out, Signal::AckLatency, n(400.0));
            set(out, Signal::DataLatency, n(380.0));
            if (t as u64).is_multiple_of(3) {
                set(out, Signal::DataOk, n(0.0));
                set(out, Signal::HealthOk, n(0.0));
            }
        }
    });
    let r1 = verdict(&report, "r1");
    let mut models: Vec<Model> = std::iter::once(r1.verdict).chain(r1.also.iter().map(|f| f.verdict)).collect();
    models.sort();
    assert_eq!(models, [Model::Omission, Model::Timing], "{r1:#?}");
    // Slow acks alone beside losses are the losses: the leader times an ack from its first
    // unanswered send, so a lost append makes the next ack look late.
    let report = run(&|t, out| {
        if t >= ONSET {
            set(out, Signal::AckLatency, n(400.0));
            if (t as u64).is_multiple_of(3) {
                set(out, Signal::DataOk, n(0.0));
                set(out, Signal::HealthOk, n(0.0));
            }
        }
    });
    let r1 = verdict(&report, "r1");
    assert_eq!((r1.verdict, r1.also.len()), (Model::Omission, 0), "{r1:#?}");
    // Byzantine, then a crash: lied, then went down; the lie is the headline.
    let report = run(&|t, out| {
        if t >= ONSET {
            set(out, Signal::DurableIndex, n(commit(ONSET)));
        }
        if t >= 45.0 {
            down(t, out, Transport::Refused);
            set(out, Signal::HeartbeatAge, n(t - 45.0));
            set(out, Signal::DurableIndex, n(commit(ONSET)));
            set(out, Signal::AckedIndex, n(commit(45.0)));
        }
    });
    let r1 = verdict(&report, "r1");
    assert_eq!((r1.verdict, r1.kind), (Model::Byzantine, Some("lying-acks")), "{r1:#?}");
    assert_eq!(r1.also.iter().map(|f| f.verdict).collect::<Vec<_>>(), [Model::Crash], "{r1:#?}");
}

#[test]
fn the_cluster_line_does_the_2f_plus_1_and_3f_plus_1_arithmetic() {
    let report = run_with(&|t, out| down(t, out, Transport::Refused), &|t, out| {
        if t >= ONSET {
            set(out, Signal::DurableIndex, n(commit(ONSET)));
        }
    });
    let c = &report.cluster;
    assert_eq!((c.replicas, c.healthy, c.crash_f, c.byzantine_f), (5, 3, 2, 1));
    assert_eq!((c.crash_absorbs, c.byzantine_absorbs), (0, -1));
    assert!(c.line.contains("absorbs 0 more"), "{}", c.line);
    assert!(c.line.contains("1 Byzantine replica in a crash-tolerant protocol"), "{}", c.line);
}

#[test]
fn what_is_missing_is_said() {
    let report = run(&|_, out| {
        drop_signal(out, Signal::DurableIndex);
        drop_signal(out, Signal::ContentDigest);
    });
    let r1 = verdict(&report, "r1");
    assert_eq!(r1.verdict, Model::Healthy);
    assert!(r1.unknown.iter().any(|u| u.starts_with("lying acks")), "{r1:#?}");
    assert!(r1.unknown.iter().any(|u| u.starts_with("corrupt content")), "{r1:#?}");
}

#[test]
fn majority_and_median() {
    let (a, b) = (1, 2);
    assert_eq!(majority(&[&a, &b, &a]), Some(&1));
    assert_eq!(majority(&[&a, &b]), None);
    assert_eq!(median(vec![3.0, 1.0, 2.0, 10.0]), Some(2.5));
}
