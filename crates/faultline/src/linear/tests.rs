//! The checker on known answers: classic anomalies by hand, histories linearizable by
//! construction and their mutations, a brute-force checker on thousands of small random
//! histories, and the same verdicts whatever the thread count.

use proptest::prelude::*;

use super::generate::{Shape, history};
use super::parse::{Format, parse};
use super::*;

fn budget() -> Budget<'static> {
    Budget::steps(50_000_000, 1 << 30)
}

fn edn(model: ModelKind, text: &str) -> History {
    parse("test.edn", text.as_bytes(), Format::Edn, model).unwrap_or_else(|e| panic!("{e}"))
}

fn verdict(model: ModelKind, text: &str) -> Report {
    check(&edn(model, text), model, &budget(), false)
}

/// The lines (of the invocations) of the set that cannot be ordered.
fn set_lines(r: &Report) -> Vec<u64> {
    r.counterexample.as_ref().expect("a counterexample").minimal.iter().map(|o| o.line).collect()
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in ["nil", "1"] {
        let h = format!(
            "{{:process 0, :type :invoke, :f :write, :value 1}}
             {{:process 1, :type :invoke, :f :read, :value nil}}
             {{:process 1, :type :ok, :f :read, :value {seen}}}
             {{:process 0, :type :ok, :f :write, :value 1}}"
        );
        assert_eq!(verdict(ModelKind::Register, &h).verdict, Verdict::Linearizable, "read {seen}");
    }
}

#[test]
fn a_stale_read_after_a_completed_write_is_caught() {
    let r = verdict(
        ModelKind::Register,
        "{:process 0, :type :invoke, :f :write, :value 1}
         {:process 0, :type :ok, :f :write, :value 1}
         {:process 0, :type :invoke, :f :write, :value 2}
         {:process 0, :type :ok, :f :write, :value 2}
         {:process 1, :type :invoke, :f :read, :value nil}
         {:process 1, :type :ok, :f :read, :value 1}",
    );
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    // The stale read, the write it saw and the write that overwrote it: all three.
    assert_eq!(set_lines(&r), vec![1, 3, 5]);
    let c = r.counterexample.as_ref().unwrap();
    assert_eq!(c.longest.len(), 2, "both writes can be placed, the read cannot");
    assert!(c.minimal_complete);
}

#[test]
fn a_lost_update_is_caught() {
    // Two compare-and-sets from the same old value cannot both succeed.
    let r = verdict(
        ModelKind::Register,
        "{:process 0, :type :invoke, :f :write, :value 0}
         {:process 0, :type :ok, :f :write, :value 0}
         {:process 1, :type :invoke, :f :cas, :value [0 1]}
         {:process 2, :type :invoke, :f :cas, :value [0 2]}
         {:process 1, :type :ok, :f :cas, :value [0 1]}
         {:process 2, :type :ok, :f :cas, :value [0 2]}",
    );
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(set_lines(&r), vec![1, 3, 4]);
    // Appends: two appends completed, a later read shows only one of them.
    let r = verdict(
        ModelKind::Kv,
        r#"{:process 0, :type :invoke, :f :append, :key "x", :value "a"}
           {:process 1, :type :invoke, :f :append, :key "x", :value "b"}
           {:process 0, :type :ok, :f :append, :key "x", :value "a"}
           {:process 1, :type :ok, :f :append, :key "x", :value "b"}
           {:process 2, :type :invoke, :f :get, :key "x", :value nil}
           {:process 2, :type :ok, :f :get, :key "x", :value "b"}"#,
    );
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(set_lines(&r), vec![1, 2, 5]);
}

#[test]
fn a_read_that_sees_a_write_before_it_began_is_caught() {
    let r = verdict(
        ModelKind::Register,
        "{:process 1, :type :invoke, :f :read, :value nil}
         {:process 1, :type :ok, :f :read, :value 3}
         {:process 0, :type :invoke, :f :write, :value 3}
         {:process 0, :type :ok, :f :write, :value 3}",
    );
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(set_lines(&r), vec![1, 3]);
}

#[test]
fn concurrent_writes_read_in_two_orders_by_two_readers_are_caught() {
    let h = "{:process 0, :type :invoke, :f :write, :value 1}
             {:process 1, :type :invoke, :f :write, :value 2}
             {:process 2, :type :invoke, :f :read, :value nil}
             {:process 2, :type :ok, :f :read, :value 1}
             {:process 3, :type :invoke, :f :read, :value nil}
             {:process 3, :type :ok, :f :read, :value 2}
             {:process 2, :type :invoke, :f :read, :value nil}
             {:process 2, :type :ok, :f :read, :value 2}
             {:process 3, :type :invoke, :f :read, :value nil}
             {:process 3, :type :ok, :f :read, :value 1}
             {:process 0, :type :ok, :f :write, :value 1}
             {:process 1, :type :ok, :f :write, :value 2}";
    let r = verdict(ModelKind::Register, h);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    // p2 saw 1 then 2, so 1 was written first; p3's read of 1 began after p2 had read 2. (p3's
    // first read is not needed.)
    assert_eq!(set_lines(&r), vec![1, 2, 3, 7, 9]);
    // One reader alone seeing 1 then 2 is fine.
    let one: String = h.lines().filter(|l| !l.contains(":process 3")).collect::<Vec<_>>().join("\n");
    assert_eq!(verdict(ModelKind::Register, &one).verdict, Verdict::Linearizable);
}

#[test]
fn info_operations_may_or_may_not_have_happened() {
    // A crashed write may show up later, or never; a crashed cas may have failed.
    for seen in ["nil", "5"] {
        let h = format!(
            "{{:process 0, :type :invoke, :f :write, :value 5}}
             {{:process 0, :type :info, :f :write, :value 5}}
             {{:process 1, :type :invoke, :f :read, :value nil}}
             {{:process 1, :type :ok, :f :read, :value {seen}}}"
        );
        assert_eq!(verdict(ModelKind::Register, &h).verdict, Verdict::Linearizable, "read {seen}");
    }
    let h = "{:process 0, :type :invoke, :f :cas, :value [7 8]}
             {:process 0, :type :info, :f :cas, :value [7 8]}
             {:process 1, :type :invoke, :f :read, :value nil}
             {:process 1, :type :ok, :f :read, :value nil}";
    assert_eq!(verdict(ModelKind::Register, h).verdict, Verdict::Linearizable);
    // But it cannot take effect before it was invoked.
    let h = "{:process 1, :type :invoke, :f :read, :value nil}
             {:process 1, :type :ok, :f :read, :value 5}
             {:process 0, :type :invoke, :f :write, :value 5}
             {:process 0, :type :info, :f :write, :value 5}";
    assert_eq!(verdict(ModelKind::Register, h).verdict, Verdict::NotLinearizable);
    // Nor un-happen: once a read saw it, a later read cannot see the old value.
    let h = "{:process 0, :type :invoke, :f :write, :value 5}
             {:process 0, :type :info, :f :write, :value 5}
             {:process 1, :type :invoke, :f :read, :value nil}
             {:process 1, :type :ok, :f :read, :value 5}
             {:process 1, :type :invoke, :f :read, :value nil}
             {:process 1, :type :ok, :f :read, :value nil}";
    assert_eq!(verdict(ModelKind::Register, h).verdict, Verdict::NotLinearizable);
}

#[test]
fn kv_keys_never_written_read_as_nil_or_empty_and_keys_are_independent() {
    let h = r#"{:process 0, :type :invoke, :f :get, :key "a", :value nil}
               {:process 0, :type :ok, :f :get, :key "a", :value nil}
               {:process 0, :type :invoke, :f :get, :key "a", :value nil}
               {:process 0, :type :ok, :f :get, :key "a", :value ""}
               {:process 0, :type :invoke, :f :append, :key "b", :value "x"}
               {:process 0, :type :ok, :f :append, :key "b", :value "x"}
               {:process 0, :type :invoke, :f :append, :key "b", :value "y"}
               {:process 0, :type :ok, :f :append, :key "b", :value "y"}
               {:process 0, :type :invoke, :f :get, :key "b", :value nil}
               {:process 0, :type :ok, :f :get, :key "b", :value "xy"}
               {:process 0, :type :invoke, :f :get, :key "a", :value nil}
               {:process 0, :type :ok, :f :get, :key "a", :value nil}"#;
    let r = verdict(ModelKind::Kv, h);
    assert_eq!(r.verdict, Verdict::Linearizable);
    assert_eq!(r.partitions.len(), 2);
    let wrong = h.replace(r#""xy""#, r#""yx""#);
    let r = verdict(ModelKind::Kv, &wrong);
    assert_eq!(r.verdict, Verdict::NotLinearizable);
    assert_eq!(
        r.partitions.iter().map(|p| p.verdict).collect::<Vec<_>>(),
        [Verdict::Linearizable, Verdict::NotLinearizable]
    );
    assert_eq!(r.counterexample.as_ref().unwrap().key, Some(Val::Str("b".into())));
}

#[test]
fn the_budget_gives_unknown_never_a_guess() {
    let h = history(&Shape { model: ModelKind::Register, ops: 400, clients: 20, keys: 1, info_permille: 50 }, 3);
    let r = check(&h, ModelKind::Register, &Budget::steps(100, 1 << 30), false);
    assert_eq!(r.verdict, Verdict::Unknown);
    assert_eq!(r.partitions[0].exhausted, Some(Exhausted::Steps));
    let stop = || true;
    let r =
        check(&h, ModelKind::Register, &Budget { max_steps: u64::MAX, max_memo_bytes: 1 << 30, stop: &stop }, false);
    assert_eq!(r.verdict, Verdict::Unknown);
    let r = check(&h, ModelKind::Register, &Budget::steps(u64::MAX, 1000), false);
    assert_eq!(r.partitions[0].exhausted, Some(Exhausted::Memory));
}

/// A read of `ops` mutated to return a value no operation wrote.
fn never_written(h: &History, pick: usize) -> Option<History> {
    let reads: Vec<usize> = (0..h.ops.len()).filter(|&i| h.ops[i].output.is_some()).collect();
    let &i = reads.get(pick % reads.len().max(1))?;
    let mut h = h.clone();
    h.ops[i].output = Some(match h.ops[i].output {
        Some(Val::Str(_)) => Val::Str("never-written".into()),
        _ => Val::Int(-1),
    });
    Some(h)
}

/// A read mutated to return a value overwritten before it began: a write w1 completed,
/// then a write w2 of the same key began and completed, all before the read began. Values
/// are unique, so only w1 wrote what the read now returns.
fn overwritten(h: &History, pick: usize) -> Option<History> {
    let write_of = |o: &Operation| match &o.call {
        Call::Write(v) | Call::Put(v) if o.complete.is_some() => Some(v.clone()),
        _ => None,
    };
    let mut found = Vec::new();
    for (r, read) in h.ops.iter().enumerate().filter(|(_, o)| o.output.is_some()) {
        let before = |o: &&Operation| o.key == read.key && o.complete.is_some_and(|c| c < read.invoke);
        for w2 in h.ops.iter().filter(before).filter(|o| write_of(o).is_some()) {
            for w1 in h.ops.iter().filter(before).filter(|o| o.complete.is_some_and(|c| c < w2.invoke)) {
                if let Some(v) = write_of(w1) {
                    found.push((r, v));
                }
            }
        }
    }
    let (r, v) = found.get(pick % found.len().max(1))?.clone();
    let mut h = h.clone();
    h.ops[r].output = Some(v);
    Some(h)
}

fn shapes() -> impl Strategy<Value = Shape> {
    (prop_oneof![Just(ModelKind::Register), Just(ModelKind::Kv)], 1usize..300, 1usize..12, 1usize..5, 0u32..200)
        .prop_map(|(model, ops, clients, keys, info_permille)| Shape { model, ops, clients, keys, info_permille })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn histories_from_a_real_object_are_linearizable(shape in shapes(), seed in any::<u64>()) {
        let h = history(&shape, seed);
        let r = check(&h, shape.model, &budget(), false);
        prop_assert_eq!(r.verdict, Verdict::Linearizable);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_not(shape in shapes(), seed in any::<u64>(), pick in any::<usize>()) {
        let Some(h) = never_written(&history(&shape, seed), pick) else { return Ok(()) };
        let r = check(&h, shape.model, &budget(), false);
        prop_assert_eq!(r.verdict, Verdict::NotLinearizable);
        // The set is that read alone: nothing can explain it.
        let c = r.counterexample.unwrap();
        prop_assert_eq!(c.minimal.len(), 1);
        prop_assert!(c.minimal[0].output.is_some());
    }

    #[test]
    fn a_read_of_an_overwritten_value_is_not(shape in shapes(), seed in any::<u64>(), pick in any::<usize>()) {
        let Some(h) = overwritten(&history(&shape, seed), pick) else { return Ok(()) };
        let r = check(&h, shape.model, &budget(), false);
        prop_assert_eq!(r.verdict, Verdict::NotLinearizable);
        let c = r.counterexample.unwrap();
        // The set is itself not linearizable, and no smaller than the three operations
        // of the story (the stale read, the write it saw, the one that overwrote it).
        let sub = History { ops: c.minimal.clone(), failed: 0, events: 0 };
        prop_assert_eq!(check(&sub, shape.model, &budget(), false).verdict, Verdict::NotLinearizable);
        let has_cas = c.minimal.iter().any(|o| matches!(o.call, Call::Cas { .. }));
        prop_assert!(c.minimal.len() >= 3 || has_cas, "set of {}", c.minimal.len());
    }
}

/// Small random histories with outputs perturbed at random, so both verdicts come up.
fn small_random(seed: u64) -> (ModelKind, History) {
    use rand::{Rng, SeedableRng};
    let mut rng = crate::rng::SimRng::seed_from_u64(seed);
    let model = if rng.next_u64() % 2 == 0 { ModelKind::Register } else { ModelKind::Kv };
    let shape = Shape {
        model,
        ops: 2 + (rng.next_u64() % 7) as usize,
        clients: 1 + (rng.next_u64() % 4) as usize,
        keys: 1 + (rng.next_u64() % 2) as usize,
        info_permille: (rng.next_u64() % 300) as u32,
    };
    let mut h = history(&shape, rng.next_u64());
    let written: Vec<Val> = h
        .ops
        .iter()
        .filter_map(|o| match &o.call {
            Call::Write(v) | Call::Put(v) | Call::Cas { new: v, .. } => Some(v.clone()),
            _ => None,
        })
        .chain([Val::Nil])
        .collect();
    for op in h.ops.iter_mut() {
        if op.output.is_some() && rng.next_u64() % 3 == 0 {
            op.output = Some(written[(rng.next_u64() % written.len() as u64) as usize].clone());
        }
    }
    (model, h)
}

#[test]
fn the_search_agrees_with_brute_force_on_thousands_of_small_histories() {
    let (mut yes, mut no) = (0, 0);
    for seed in 0..5000 {
        let (model, h) = small_random(seed);
        let expected = naive::linearizable(model, &h.ops);
        let r = check(&h, model, &budget(), false);
        let got = r.verdict == Verdict::Linearizable;
        assert_eq!(got, expected, "seed {seed}: {:#?}", h.ops);
        if let Some(c) = &r.counterexample {
            // Every reported set is proven: brute force agrees it cannot be ordered.
            assert!(!naive::linearizable(model, &c.minimal), "seed {seed}: the set can be ordered");
        }
        if got { yes += 1 } else { no += 1 }
    }
    // Both verdicts must come up often, or the agreement proves little.
    assert!(yes > 1000 && no > 1000, "{yes} linearizable, {no} not");
}

#[test]
fn verdicts_are_the_same_for_any_thread_count() {
    let mut h = history(&Shape { model: ModelKind::Kv, ops: 3000, clients: 10, keys: 10, info_permille: 50 }, 9);
    h = never_written(&h, 7).expect("reads");
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("a pool");
        let r = pool.install(|| check(&h, ModelKind::Kv, &budget(), true));
        format!("{:?} {:?} {:?}", r.verdict, r.partitions, r.counterexample.map(|c| c.minimal))
    };
    let one = run(1);
    assert!(one.starts_with("NotLinearizable"));
    assert_eq!(one, run(2));
    assert_eq!(one, run(4));
}

/// Small random histories over tiny value sets: the same value written twice, writes of
/// nil, puts of "", pieces that are substrings of one another. The reductions (unread
/// writes, unobserved unknowns, the minimiser's read-from closure) are most fragile there.
fn tiny_random(seed: u64) -> (ModelKind, History) {
    use rand::{Rng, SeedableRng};
    let (model, mut h) = small_random(seed);
    let mut rng = crate::rng::SimRng::seed_from_u64(seed ^ 0x5eed);
    let mut pick = |vals: &[Val]| vals[(rng.next_u64() % vals.len() as u64) as usize].clone();
    let reg = [Val::Nil, Val::Int(0), Val::Int(1)];
    let pieces: Vec<Val> = ["", "a", "b", "ab"].iter().map(|s| Val::Str((*s).into())).collect();
    let mut seen: Vec<Val> = ["", "a", "b", "ab", "ba", "aab", "abab"].iter().map(|s| Val::Str((*s).into())).collect();
    seen.push(Val::Nil);
    for op in h.ops.iter_mut() {
        match (&mut op.call, model) {
            (Call::Write(v), _) => *v = pick(&reg),
            (Call::Cas { old, new }, _) => {
                *old = pick(&reg);
                *new = pick(&reg);
            }
            (Call::Put(v) | Call::Append(v), _) => *v = pick(&pieces),
            _ => {}
        }
        if op.output.is_some() {
            op.output = Some(if model == ModelKind::Register { pick(&reg) } else { pick(&seen) });
        }
    }
    (model, h)
}

#[test]
fn the_search_agrees_with_brute_force_over_tiny_value_sets() {
    let (mut yes, mut no) = (0, 0);
    for seed in 0..5000 {
        let (model, h) = tiny_random(seed);
        let expected = naive::linearizable(model, &h.ops);
        let r = check(&h, model, &budget(), false);
        assert_eq!(r.verdict == Verdict::Linearizable, expected, "seed {seed}: {:#?}", h.ops);
        if let Some(c) = &r.counterexample {
            assert!(!naive::linearizable(model, &c.minimal), "seed {seed}: the set can be ordered");
        }
        if expected { yes += 1 } else { no += 1 }
    }
    assert!(yes > 500 && no > 500, "{yes} linearizable, {no} not");
}
