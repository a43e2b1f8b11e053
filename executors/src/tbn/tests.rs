//! Tests: the known answers of SEEDS §1.9, every error message, the
//! validator on every returned configuration, a brute-force comparison on
//! random small TBNs (with and without constraints), and stopping.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::constraints::Constraint;
use super::validate::validate;
use super::*;

fn request(monomers: &[&[&str]], constraints: &[&[&str]], gen: usize, init_k: usize) -> Request {
    let lists = |v: &[&[&str]]| -> Vec<Vec<String>> {
        v.iter()
            .map(|l| l.iter().map(|s| s.to_string()).collect())
            .collect()
    };
    Request {
        monomers: lists(monomers),
        constraints: lists(constraints),
        gen,
        init_k,
        counting: Counting::Exact,
    }
}

/// The same request, counting as the original StableConfigs.
fn original(mut req: Request) -> Request {
    req.counting = Counting::Original;
    req
}

/// Parses and solves, validating every configuration and their distinctness.
fn run(req: &Request) -> Result<Answer, TbnError> {
    let problem = Problem::parse(req)?;
    let stop = AtomicBool::new(false);
    let answer = solve(&problem, req.gen, req.init_k, &mut |_, _| {}, &stop)?;
    check(&problem, &answer);
    Ok(answer)
}

fn check(problem: &Problem, answer: &Answer) {
    assert_eq!(answer.count, answer.configs.len());
    let mut seen = BTreeSet::new();
    for c in &answer.configs {
        if let Err(e) = validate(problem, c) {
            panic!("invalid config {c:?}: {e}");
        }
        assert!(seen.insert(c.detail.pairs.clone()), "repeated pair set");
    }
}

fn counts(a: &Answer) -> Vec<usize> {
    a.configs.iter().map(|c| c.polymers_count).collect()
}

fn error(req: &Request) -> String {
    match run(req) {
        Ok(a) => panic!("expected an error, got {a:?}"),
        Err(e) => e.to_string(),
    }
}

/// A configuration as a set of polymers, each a sorted list of monomer JSON.
fn shape(c: &Config) -> BTreeSet<Vec<Vec<String>>> {
    c.polymers
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.sort();
            p
        })
        .collect()
}

fn polymer(ms: &[&[&str]]) -> Vec<Vec<String>> {
    let mut p: Vec<Vec<String>> = ms
        .iter()
        .map(|m| m.iter().map(|s| s.to_string()).collect())
        .collect();
    p.sort();
    p
}

const C1: &[&[&str]] = &[
    &["a", "b", ">mon1"],
    &["a*", "b*", ">mon2"],
    &["a", ">mon3"],
    &["b", ">mon4"],
];
const S1: &[&[&str]] = &[
    &["a", ">t2"],
    &["a*", "b*", ">t1"],
    &["a", "b"],
    &["b", ">t3"],
];
const AND_GATE: &[&[&str]] = &[
    &["a", "b", "c", "d", "e"],
    &["a*", "b*", "c*", "d*"],
    &["b*", "c*:s1", "d*", "e*"],
    &["d", "e", "f"],
    &["a", "b", ">input1"],
    &["b", "c:s2"],
    &["c", "d:s3", ">input2"],
    &["e", "f", ">output"],
    &["e*", "f*"],
];
const STRAND: &[&[&str]] = &[
    &["a1", "a2"],
    &["a1", "a2", "b1", "b2", "q"],
    &["a1*", "a2*", "b1*", "b2*"],
    &["a2", "b1", "x1"],
    &["b2", "q", "y1"],
    &["a2*", "b1*", "b2*", "q*"],
    &["b1", "x1", "x2"],
    &["b1*", "x1*"],
    &["q", "y1", "y2"],
    &["q*", "y1*"],
];

#[test]
fn a1_seed_readme_request() {
    let a = run(&request(
        &[&["a", "b"], &["a*", "b*"], &["a*", ">mon1"], &["b*"]],
        &[&["FREE", "mon1"]],
        2,
        2,
    ))
    .expect("A1 solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (2, 3, vec![3, 2]));
    let want: BTreeSet<_> = [
        polymer(&[&["a", "b"], &["a*", "b*"]]),
        polymer(&[&["a*", ">mon1"]]),
        polymer(&[&["b*"]]),
    ]
    .into_iter()
    .collect();
    assert_eq!(shape(&a.configs[0]), want);
    let want: BTreeSet<_> = [
        polymer(&[&["a", "b"], &["a*", "b*"], &["b*"]]),
        polymer(&[&["a*", ">mon1"]]),
    ]
    .into_iter()
    .collect();
    assert_eq!(shape(&a.configs[1]), want);
}

#[test]
fn c1_classic() {
    let a = run(&request(C1, &[], 1, 1)).expect("C1 solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (1, 3, vec![3]));
    let want: BTreeSet<_> = [
        polymer(&[&["a", "b", ">mon1"], &["a*", "b*", ">mon2"]]),
        polymer(&[&["a", ">mon3"]]),
        polymer(&[&["b", ">mon4"]]),
    ]
    .into_iter()
    .collect();
    assert_eq!(shape(&a.configs[0]), want);
}

#[test]
fn c2_classic_gen_2_gives_a_worse_second_config() {
    let a = run(&request(C1, &[], 2, 1)).expect("C2 solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (2, 3, vec![3, 2]));
}

#[test]
fn c3_classic_free_mon1() {
    let a = run(&request(C1, &[&["FREE", "mon1"]], 1, 1)).expect("C3 solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (1, 3, vec![2]));
    let want: BTreeSet<_> = [
        polymer(&[&["a", "b", ">mon1"]]),
        polymer(&[&["a*", "b*", ">mon2"], &["a", ">mon3"], &["b", ">mon4"]]),
    ]
    .into_iter()
    .collect();
    assert_eq!(shape(&a.configs[0]), want);
}

#[test]
fn b1_basic() {
    let m: &[&[&str]] = &[
        &["a", "b*"],
        &["a*", "b"],
        &["a"],
        &["a*", "b"],
        &["b"],
        &["b"],
    ];
    let a = run(&request(m, &[], 1, 1)).expect("B1 solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (1, 4, vec![4]));
}

#[test]
fn s1_together_merges_without_bond() {
    let a = run(&request(S1, &[&["TOGETHER", "t2", "t3"]], 2, 1)).expect("S1 solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (2, 3, vec![2, 2]));
    let shapes: BTreeSet<_> = a.configs.iter().map(shape).collect();
    let first: BTreeSet<_> = [
        polymer(&[&["a", ">t2"], &["a*", "b*", ">t1"], &["b", ">t3"]]),
        polymer(&[&["a", "b"]]),
    ]
    .into_iter()
    .collect();
    let second: BTreeSet<_> = [
        polymer(&[&["a", ">t2"], &["b", ">t3"]]),
        polymer(&[&["a*", "b*", ">t1"], &["a", "b"]]),
    ]
    .into_iter()
    .collect();
    assert_eq!(shapes, [first, second].into_iter().collect());
}

#[test]
fn s2_init_k_above_entropy() {
    assert_eq!(
        error(&request(S1, &[], 1, 4)),
        "Minimum Polymers [4] exceeds the max entropy of TBN system. No Results can be computed. Choose a lower value."
    );
}

#[test]
fn g1_and_gate() {
    let a = run(&request(AND_GATE, &[], 1, 1)).expect("G1 solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (1, 5, vec![5]));
    let a = run(&request(AND_GATE, &[&["FREE", "output"]], 1, 1)).expect("G1 FREE solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (1, 5, vec![5]));
}

#[test]
fn g2_strand_displacement() {
    let a = run(&request(STRAND, &[], 1, 1)).expect("G2 solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (1, 5, vec![5]));
}

#[test]
fn e1_no_monomers() {
    assert_eq!(
        error(&request(&[], &[], 1, 1)),
        "Input contains no monomers."
    );
    assert_eq!(
        error(&request(&[&["#", "a"], &[">x"]], &[], 1, 1)),
        "Input contains no monomers."
    );
}

#[test]
fn e2_anypaired_without_complement() {
    assert_eq!(
        error(&request(&[&["a:s1"]], &[&["ANYPAIRED", "s1"]], 1, 1)),
        "Binding Site [s1] does not have any complementary binding sites in the system."
    );
}

#[test]
fn parse_errors_have_the_original_messages() {
    type Case<'a> = (&'a [&'a [&'a str]], &'a [&'a [&'a str]], &'a str);
    let cases: &[Case] = &[
        (&[&["a", ">"]], &[], "Empty Monomer name. 'a >'. Note that any whitespace after the monomer name keyword is ignored."),
        (&[&["*a"]], &[], "Invalid BindingSite name. '*a'"),
        (&[&["a", ":x"]], &[], "Invalid BindingSite name. 'a :x'"),
        (&[&["a:"]], &[], "Invalid BindingSite name. 'a:'"),
        (&[&["a:x"], &["b:x"]], &[], "Duplicate BindingSite name. 'b:x'"),
        (&[&["a", ">m"], &["b", ">m"]], &[], "Duplicate Monomer name. 'b >m'"),
        (&[&["a", ">m"]], &[&["FREE"]], "Constraint 'FREE' takes 1 arguments, got 0. 'FREE'"),
        (&[&["a", ">m"]], &[&["NOTTOGETHER", "m"]], "Constraint 'NOTTOGETHER' takes 2 arguments, got 1. 'NOTTOGETHER m'"),
        (&[&["a:s", ">m"]], &[&["PAIRED", "s", "t"]], "BindingSite 't' does not exist. 'PAIRED s t'"),
        (&[&["a", ">m"]], &[&["FREE", "n"]], "Monomer 'n' does not exist. 'FREE n'"),
        (&[&["a", ">m"]], &[&["free", "m"]], "Invalid Constraint 'free'. 'free m'"),
        (&[&["a", ">m"]], &[&["BOGUS", "x", "y"]], "Invalid Constraint 'BOGUS'. 'BOGUS x y'"),
    ];
    for (m, c, want) in cases {
        assert_eq!(&error(&request(m, c, 1, 1)), want);
    }
}

#[test]
fn constraint_errors_have_the_original_messages() {
    let m: &[&[&str]] = &[
        &["a:s1", ">m1"],
        &["a*:s2", ">m2"],
        &["b:s3", ">m3"],
        &["c", ">m4"],
    ];
    let cases: &[(&[&str], &str)] = &[
        (
            &["TOGETHER", "m1", "m2", "m3"],
            "Monomer [m3] and Monomer [m1] cannot be together in any valid configuration.",
        ),
        (
            &["NOTFREE", "m4"],
            "Monomer [m4] cannot be together with any other Monomer in any valid configuration.",
        ),
        (
            &["PAIRED", "s1", "s3"],
            "Binding Site [s1] and Binding Site [s3] are not complementary.",
        ),
        (
            &["PAIRED", "s1", "s1"],
            "Binding Site [s1] and Binding Site [s1] are not complementary.",
        ),
        (
            &["ANYPAIRED", "s3"],
            "Binding Site [s3] does not have any complementary binding sites in the system.",
        ),
    ];
    for (c, want) in cases {
        assert_eq!(&error(&request(m, &[c], 1, 1)), want);
        assert_eq!(&error(&original(request(m, &[c], 1, 1))), want);
    }
    // The original asks for a pair inside m1, which it cannot have; a
    // monomer is always together with itself.
    assert_eq!(
        error(&original(request(m, &[&["TOGETHER", "m1", "m1"]], 1, 1))),
        "Monomer [m1] and Monomer [m1] cannot be together in any valid configuration."
    );
    run(&request(m, &[&["TOGETHER", "m1", "m1"]], 1, 1)).expect("m1 is with itself");
    // Ignored when they cannot matter.
    let ok: &[&[&str]] = &[
        &["NOTPAIRED", "s1", "s3"],
        &["NOTANYPAIRED", "s3"],
        &["NOTTOGETHER", "m1", "m3"],
        &["TOGETHER"],
        &["TOGETHER", "m1"],
    ];
    for c in ok {
        run(&request(m, &[c], 1, 1)).expect("ignored constraint");
    }
}

#[test]
fn comments_and_names_parse_like_the_original() {
    let p = Problem::from_lines(
        [
            "# a comment",
            "a b*:x#c d",
            "c c* >n1 # trailing",
            "  ",
            ">lonely",
            "e >m e*",
        ],
        ["", "# nothing", "FREE n1#x y"],
    )
    .expect("parses");
    assert_eq!(p.monomers.len(), 3);
    assert_eq!(p.monomer_json(0), ["a", "b*:x"]);
    assert_eq!(p.monomer_json(1), ["c", "c*", ">n1"]);
    assert_eq!(p.monomer_json(2), ["e", ">m"]);
    assert_eq!(p.constraints, [Constraint::Free(1)]);
}

#[test]
fn request_defaults() {
    let r: Request = serde_json::from_str(r#"{"monomers":[["a"],["a*"]]}"#).expect("json");
    assert_eq!((r.gen, r.init_k, r.constraints.len()), (1, 1, 0));
    let a = run(&r).expect("solves");
    let json = serde_json::to_value(&a).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"configs":[{"polymers":[[["a"],["a*"]]],"polymers_count":1}],"count":1,"entropy":1})
    );
}

// See: issue 14. A pair inside one monomer joins nothing: `{m0}` saturates
// itself and `{m1, m2}` the rest, 2 polymers. The original answered 1 (it
// forbids a self-bound monomer from representing its polymer); that answer
// was asserted here before and was wrong.
#[test]
fn a_monomer_that_binds_itself_is_a_polymer() {
    let m: &[&[&str]] = &[&["a*", "a", "a"], &["a*"], &["a", "a"]];
    let a = run(&request(m, &[], 1, 1)).expect("solves");
    assert_eq!((a.entropy, counts(&a)), (2, vec![2]));
    // Either {m0}, {m1, m2} or {m0, m1}, {m2}: both are stable.
    let alone = |c: &Config| c.polymers.iter().any(|p| p.len() == 1);
    assert!(alone(&a.configs[0]), "{:?}", a.configs[0].polymers);
    let a = run(&request(&[&["a", "a*"]], &[], 1, 1)).expect("solves");
    assert_eq!(
        (a.entropy, a.configs[0].polymers.clone()),
        (1, vec![polymer(&[&["a", "a*"]])])
    );
    let a = run(&request(&[&["x"], &["a", "a*"], &["x*"]], &[], 1, 1)).expect("solves");
    assert_eq!((a.entropy, counts(&a)), (2, vec![2]));
    // FREE lets a monomer pair with itself; NOTFREE needs another monomer.
    let m: &[&[&str]] = &[&["a", "a*", ">m0"], &["a"], &["b", ">m2"], &["b*"]];
    let a = run(&request(m, &[&["FREE", "m0"]], 1, 1)).expect("solves");
    assert_eq!((a.entropy, counts(&a)), (3, vec![3]));
    let a = run(&request(m, &[&["NOTFREE", "m0"]], 1, 1)).expect("solves");
    assert_eq!((a.entropy, counts(&a)), (3, vec![2]));
}

#[test]
fn counting_as_the_original_reproduces_its_answers() {
    let m: &[&[&str]] = &[&["a*", "a", "a"], &["a*"], &["a", "a"]];
    let a = run(&original(request(m, &[], 1, 1))).expect("solves");
    assert_eq!((a.entropy, counts(&a)), (1, vec![1]));
    // The original: Bind(m, m) -> !Rep(m).
    assert_eq!(
        error(&original(request(&[&["a", "a*"]], &[], 1, 1))),
        "Minimum Polymers [1] exceeds the max entropy of TBN system. No Results can be computed. Choose a lower value."
    );
    let a = run(&original(request(
        &[&["x"], &["a", "a*"], &["x*"]],
        &[],
        1,
        1,
    )))
    .expect("solves");
    assert_eq!((a.entropy, counts(&a)), (1, vec![1]));
    assert_eq!(a.configs[0].polymers, [polymer(&[&["x"], &["x*"]])]);
    let r: Request =
        serde_json::from_str(r#"{"monomers":[["a","a*"]],"counting":"original"}"#).expect("json");
    assert_eq!(r.counting, Counting::Original);
    assert!(serde_json::from_str::<Request>(r#"{"monomers":[],"counting":"rough"}"#).is_err());
}

#[test]
fn gen_without_pairs_stops_after_one() {
    let a = run(&request(&[&["a"], &["b"]], &[], 3, 1)).expect("solves");
    assert_eq!((a.count, a.entropy, counts(&a)), (1, 2, vec![2]));
}

#[test]
fn unsatisfiable_constraints_give_no_configs() {
    let m: &[&[&str]] = &[&["a", ">m1"], &["a*", ">m2"]];
    let a = run(&request(m, &[&["FREE", "m1"]], 3, 1)).expect("solves");
    assert_eq!((a.count, a.entropy), (0, 1));
    let a = run(&request(m, &[&["FREE", "m1"]], 0, 1)).expect("solves");
    assert_eq!(a.count, 0);
    let a = run(&request(m, &[], 0, 1)).expect("solves");
    assert_eq!(a.count, 1);
}

#[test]
fn progress_reports_count_and_k() {
    let problem = Problem::parse(&request(C1, &[], 2, 1)).expect("parses");
    let mut seen = Vec::new();
    let stop = AtomicBool::new(false);
    solve(&problem, 2, 1, &mut |c, k| seen.push((c, k)), &stop).expect("solves");
    assert_eq!(seen.first(), Some(&(1, 1)));
    assert!(seen.iter().any(|&(c, _)| c == 2));
}

#[test]
fn stop_before_start() {
    let problem = Problem::parse(&request(C1, &[], 1, 1)).expect("parses");
    let stop = AtomicBool::new(true);
    let e = solve(&problem, 1, 1, &mut |_, _| {}, &stop).expect_err("stopped");
    assert_eq!(
        e.to_string(),
        "Early Termination at count [0] min polymers [0]."
    );
}

/// A hard instance: 90 random monomers of 1-3 sites over 3 site types
/// (one big component; the original needs minutes on such instances).
fn big_problem() -> Problem {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut below = |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let lines: Vec<String> = (0..90)
        .map(|_| {
            (0..1 + below(3))
                .map(|_| format!("t{}{}", below(3), if below(2) == 0 { "*" } else { "" }))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    Problem::from_lines(&lines, [""; 0]).expect("parses")
}

#[test]
fn stop_interrupts_a_long_search() {
    let problem = big_problem();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        flag.store(true, Ordering::Relaxed);
        Instant::now()
    });
    let result = solve(&problem, 50, 1, &mut |_, _| {}, &stop);
    let returned = Instant::now();
    let raised = raiser.join().expect("thread");
    match result {
        Err(TbnError::EarlyTermination { .. }) => {
            let late = returned.saturating_duration_since(raised);
            eprintln!("stopped {late:?} after the flag was raised");
            assert!(late < Duration::from_secs(1), "took {late:?} to stop");
        }
        other => panic!("expected early termination, got {other:?}"),
    }
}

mod brute;

/// `sluice bench-solver gen random 80`: 80 random monomers of 1-3 sites over 26 types,
/// whose entropy takes the MIP seconds.
fn random_80() -> Problem {
    let mut x: u64 = 87;
    let mut below = |n: usize| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    };
    let lines: Vec<String> = (0..80)
        .map(|_| {
            (0..1 + below(3))
                .map(|_| {
                    let star = if below(2) == 0 { "*" } else { "" };
                    format!("t{}{star}", below(26))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    Problem::from_lines(&lines, [""; 0]).expect("parses")
}

#[test]
fn stop_interrupts_the_mip() {
    let problem = random_80();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let raiser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        flag.store(true, Ordering::Relaxed);
        Instant::now()
    });
    let engines = (polymers::RepMode::Auto, search::Engine::Mip);
    let result = search::solve_with(&problem, 1, 1, &mut |_, _| {}, &stop, engines);
    let returned = Instant::now();
    let raised = raiser.join().expect("thread");
    match result {
        Err(TbnError::EarlyTermination { .. }) => {
            let late = returned.saturating_duration_since(raised);
            eprintln!("the MIP stopped {late:?} after the flag was raised");
            assert!(late < Duration::from_secs(1), "took {late:?} to stop");
        }
        other => panic!("expected early termination, got {other:?}"),
    }
}
