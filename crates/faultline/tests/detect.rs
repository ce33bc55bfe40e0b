//! The detector workloads show what docs/detectors.md claims, on a few seeds each: phi-accrual
//! dominates a fixed timeout under uneven jitter, SWIM's indirect probes absorb a lossy link,
//! heartbeats miss a gray node that a data-plane probe catches, and every detector sees a
//! crash. The measurement itself is checked to catch deliberately broken detectors.

use faultline::detect::eval::{self, DetectRow, DetectorKind};
use faultline::detect::qos::{self, QosSummary};
use faultline::detect::{Detector, FixedTimeout, FixedTimeoutConfig};
use faultline::scenario::Scenario;
use faultline::sim::{Span, Time};

fn load(file: &str) -> Scenario {
    let path = format!("{}/../../scenarios/detectors/{file}", env!("CARGO_MANIFEST_DIR"));
    Scenario::load(std::path::Path::new(&path), &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn detect(file: &str, detectors: &[(DetectorKind, Vec<f64>)], seeds: std::ops::Range<u64>) -> Vec<DetectRow> {
    eval::detect(&load(file), detectors, seeds, &|| ()).expect("a heartbeat scenario")
}

fn row<'a>(rows: &'a [DetectRow], case: &str, kind: DetectorKind, threshold: f64) -> &'a QosSummary {
    &rows.iter().find(|r| r.case == case && r.detector == kind && r.threshold == threshold).expect("row").qos
}

fn p50(q: &QosSummary) -> Span {
    q.detection_time_percentile(50.0).expect("detected")
}

#[test]
fn phi_accrual_dominates_a_fixed_timeout_under_uneven_jitter() {
    let rows =
        detect("jitter.toml", &[(DetectorKind::Timeout, vec![1500.0, 2000.0]), (DetectorKind::Phi, vec![6.0])], 1..5);
    let (short, long, phi) = (
        row(&rows, "crash", DetectorKind::Timeout, 1500.0),
        row(&rows, "crash", DetectorKind::Timeout, 2000.0),
        row(&rows, "crash", DetectorKind::Phi, 6.0),
    );
    // The timeout short enough to match phi's detection time suspects n3 again and again;
    // the one long enough to make no mistakes is slower than phi, which makes none either.
    assert!(short.mistakes > 100, "timeout 1500: {short:?}");
    assert_eq!((long.mistakes, phi.mistakes), (0, 0));
    assert!(p50(phi) + Span::from_millis(300) < p50(long), "phi {:?} vs timeout {:?}", p50(phi), p50(long));
    assert_eq!(row(&rows, "failure-free", DetectorKind::Phi, 6.0).mistakes, 0);
}

#[test]
fn swim_indirect_probes_absorb_one_lossy_link() {
    let rows =
        detect("lossy-link.toml", &[(DetectorKind::Timeout, vec![4000.0]), (DetectorKind::Swim, vec![4.0])], 1..4);
    let timeout = row(&rows, "lossy-link", DetectorKind::Timeout, 4000.0);
    let swim = row(&rows, "lossy-link", DetectorKind::Swim, 4.0);
    assert!(timeout.mistakes > 10, "{timeout:?}");
    assert_eq!(swim.mistakes, 0, "{swim:?}");
    assert_eq!(swim.query_accuracy(), Some(1.0));
}

#[test]
fn heartbeats_miss_a_gray_node_that_a_data_plane_probe_catches() {
    let heartbeat_based = [
        (DetectorKind::Timeout, vec![4000.0]),
        (DetectorKind::Phi, vec![8.0]),
        (DetectorKind::Cassandra, vec![8.0]),
        (DetectorKind::Swim, vec![4.0]),
    ];
    let mut detectors = heartbeat_based.to_vec();
    detectors.push((DetectorKind::Probe, vec![1.0]));
    let rows = detect("gray.toml", &detectors, 1..3);
    for (kind, t) in &heartbeat_based {
        let q = row(&rows, "gray", *kind, t[0]);
        assert!(q.crashes > 0 && q.undetected() == q.crashes, "{kind} saw the gray node: {q:?}");
    }
    let probe = row(&rows, "gray", DetectorKind::Probe, 1.0);
    assert_eq!(probe.undetected(), 0);
    assert!(p50(probe) <= Span::from_millis(1000));
}

#[test]
fn every_detector_sees_a_crash_within_its_threshold() {
    let rows = detect(
        "crash.toml",
        &[(DetectorKind::Timeout, vec![4000.0]), (DetectorKind::Phi, vec![8.0]), (DetectorKind::Swim, vec![4.0])],
        1..3,
    );
    for r in &rows {
        assert_eq!((r.qos.crashes, r.qos.undetected()), (8, 0), "{r:?}"); // 2 seeds x 4 monitors
    }
    // A 4 s timeout detects between 3 s and 4 s after the crash (the last heartbeat left up
    // to a period before it).
    let t = row(&rows, "crash", DetectorKind::Timeout, 4000.0);
    let (lo, hi) = (t.detection_time_percentile(1.0).unwrap(), t.detection_time_percentile(100.0).unwrap());
    assert!(lo >= Span::from_millis(2900) && hi <= Span::from_millis(4000), "{lo:?}..{hi:?}");
}

/// A detector that never suspects, and one that always does: the measurement must call
/// the first blind to the crash and the second wrong all the time.
#[test]
fn the_measurement_catches_broken_detectors() {
    struct Blind;
    impl Detector for Blind {
        fn heartbeat(&mut self, _at: Time) {}
        fn suspect_at(&self) -> Option<Time> {
            Some(Time::MAX)
        }
        fn level(&self, _now: Time) -> f64 {
            0.0
        }
    }
    struct Paranoid(Option<Time>);
    impl Detector for Paranoid {
        fn heartbeat(&mut self, at: Time) {
            self.0 = Some(at);
        }
        fn suspect_at(&self) -> Option<Time> {
            self.0
        }
        fn level(&self, _now: Time) -> f64 {
            f64::INFINITY
        }
    }
    let s = load("crash.toml");
    let config = eval::heartbeat_config(&s).unwrap();
    let signals = eval::record(&s, config, 0, 1);
    let (n4, n0) = (4, 0);
    let arrivals = &signals.heartbeats[n0 * signals.nodes + n4];
    let observation = qos::Observation { start: Time::ZERO, end: signals.end, crash: signals.failed_at[n4] };
    assert_eq!(qos::evaluate(&mut Blind, arrivals, observation).detection, qos::Detection::Undetected);
    let paranoid = qos::evaluate(&mut Paranoid(None), arrivals, observation);
    assert!(paranoid.query_accuracy().unwrap() < 0.01, "{paranoid:?}");
    assert!(paranoid.mistakes >= 1 && paranoid.mistake_time > Span::from_secs(1790), "{paranoid:?}");
    // A sound detector on the same arrivals: no mistakes, and the crash seen.
    let sound = qos::evaluate(&mut FixedTimeout::new(FixedTimeoutConfig::default()), arrivals, observation);
    assert_eq!(sound.mistakes, 0);
    assert!(sound.detection_time().is_some());
}

#[test]
fn runs_are_reproducible_and_independent_of_threads() {
    let detectors = [(DetectorKind::Phi, vec![2.0, 8.0]), (DetectorKind::Swim, vec![1.0])];
    let once = detect("gc-pauses.toml", &detectors, 1..4);
    assert_eq!(once, detect("gc-pauses.toml", &detectors, 1..4));
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        assert_eq!(once, pool.install(|| detect("gc-pauses.toml", &detectors, 1..4)), "{threads} threads");
    }
    // The pauses are seen: n2 is suspected by the four others and, paused, suspects them
    // (8 mistakes a pause; the shortest pause, 1.5 s, occasionally slips under phi = 8).
    let mistakes = row(&once, "gc-pauses", DetectorKind::Phi, 8.0).mistakes;
    assert!((3 * 6 * 8 - 6..=3 * 6 * 8).contains(&mistakes), "{mistakes}");
}
