//! `sluice bench-solver`: times the TBN solver on one file (what `executors/bench/compare.sh`
//! runs beside the original StableConfigs), or generates the benchmark families.
//!
//! ```text
//! sluice bench-solver solve TBN_FILE [CONSTRAINTS_FILE] [GEN] [INIT_K] [COUNTING]
//!     solve a file in the original text format (COUNTING: exact, the default, or
//!     original); prints "monomers=M sites=S seconds=T polymers=P count=C"
//! sluice bench-solver gen FAMILY SIZE
//!     print a generated TBN (families: tree, random, random3, selfbind, copies)
//! ```

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::tbn::{solve, Counting, Dimacs, Problem};

/// Fast solves are repeated for this many seconds in all...
const REPEAT_FOR: f64 = 0.5;
/// ... or this many times, whichever comes first; the median is reported.
const REPEAT_MAX: usize = 200;

/// xorshift64*, so generated instances are reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

/// The original's `exponential_tree.txt` shape with `depth` levels.
fn tree(depth: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut id = 1;
    for level in 1..=depth {
        for _ in 0..1usize << (level - 1) {
            lines.push(format!("m[{id}] {}* {level} {level}", level - 1));
            id += 1;
        }
    }
    lines
}

/// `n` random monomers of 1-3 sites over `types` site types.
fn random(n: usize, types: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            (0..1 + rng.below(3))
                .map(|_| {
                    let star = if rng.below(2) == 0 { "*" } else { "" };
                    format!("t{}{star}", rng.below(types))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// `n` random monomers over `types` site types, half of them carrying a site and its
/// complement (they can bind themselves: the case the original miscounts), plus 0-2
/// random sites.
fn selfbind(n: usize, types: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let mut sites = Vec::new();
            if rng.below(2) == 0 {
                let t = rng.below(types);
                sites.push(format!("t{t}"));
                sites.push(format!("t{t}*"));
            }
            for _ in 0..rng.below(3) + usize::from(sites.is_empty()) {
                let star = if rng.below(2) == 0 { "*" } else { "" };
                sites.push(format!("t{}{star}", rng.below(types)));
            }
            sites.join(" ")
        })
        .collect()
}

/// `k` disjoint copies of the original's `and_gate.txt` (9 monomers each).
fn copies(k: usize) -> Vec<String> {
    let gate = [
        "a b c d e",
        "a* b* c* d*",
        "b* c* d* e*",
        "d e f",
        "a b",
        "b c",
        "c d",
        "e f",
        "e* f*",
    ];
    let mut lines = Vec::new();
    for i in 0..k {
        for g in gate {
            let line: Vec<String> = g
                .split_whitespace()
                .map(|t| match t.strip_suffix('*') {
                    Some(base) => format!("{base}{i}*"),
                    None => format!("{t}{i}"),
                })
                .collect();
            lines.push(line.join(" "));
        }
    }
    lines
}

/// Runs one `solve` or `gen` (see the module doc), printing its line(s) on stdout.
pub fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("gen") => {
            let family = args.get(1).ok_or("missing family")?;
            let size: usize = args
                .get(2)
                .ok_or("missing size")?
                .parse()
                .map_err(|e| format!("size: {e}"))?;
            let lines = match family.as_str() {
                "tree" => tree(size),
                "random" => random(size, (size / 3).max(2), 7 + size as u64),
                "random3" => random(size, 3, 11 + size as u64),
                "selfbind" => selfbind(size, 3, 13 + size as u64),
                "copies" => copies(size),
                other => return Err(format!("unknown family {other}")),
            };
            for l in lines {
                println!("{l}");
            }
            Ok(())
        }
        Some("dimacs") => {
            let tbn = std::fs::read_to_string(args.get(1).ok_or("missing file")?)
                .map_err(|e| e.to_string())?;
            let k: usize = args
                .get(2)
                .ok_or("missing k")?
                .parse()
                .map_err(|e| format!("k: {e}"))?;
            let problem = Problem::from_lines(tbn.lines(), [""; 0]).map_err(|e| e.to_string())?;
            print!(
                "{}",
                Dimacs::at_least(&problem, k).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Some("solve") => {
            let tbn = std::fs::read_to_string(args.get(1).ok_or("missing file")?)
                .map_err(|e| e.to_string())?;
            let constraints = match args.get(2).filter(|s| !s.is_empty() && *s != "-") {
                Some(path) => std::fs::read_to_string(path).map_err(|e| e.to_string())?,
                None => String::new(),
            };
            let number = |i: usize| -> Result<usize, String> {
                args.get(i)
                    .map_or(Ok(1), |s| s.parse().map_err(|e| format!("{e}")))
            };
            let (gen, init_k) = (number(3)?, number(4)?);
            let counting = match args.get(5).map(String::as_str) {
                None | Some("exact") => Counting::Exact,
                Some("original") => Counting::Original,
                Some(other) => return Err(format!("counting: exact or original, not {other}")),
            };
            let trace = std::env::var_os("BENCH_TRACE").is_some();
            // One parse and solve, timed; fast ones are repeated (up to REPEAT_FOR in all,
            // at most REPEAT_MAX times) and the median time is reported, as
            // run_original.py does for the original.
            let once = || {
                let start = Instant::now();
                let mut problem = Problem::from_lines(tbn.lines(), constraints.lines())
                    .map_err(|e| e.to_string())?;
                problem.counting = counting;
                let stop = AtomicBool::new(false);
                let mut progress = |count: usize, k: usize| {
                    if trace {
                        eprintln!("{:.3}s count={count} k={k}", start.elapsed().as_secs_f64());
                    }
                };
                let answer = solve(&problem, gen, init_k, &mut progress, &stop);
                Ok::<_, String>((start.elapsed().as_secs_f64(), problem, answer))
            };
            let (first, problem, answer) = once()?;
            let mut times = vec![first];
            while times.iter().sum::<f64>() < REPEAT_FOR && times.len() < REPEAT_MAX {
                times.push(once()?.0);
            }
            times.sort_by(f64::total_cmp);
            let seconds = times[times.len() / 2];
            let answer = answer.map_err(|e| e.to_string())?;
            let counts: Vec<String> = answer
                .configs
                .iter()
                .map(|c| c.polymers_count.to_string())
                .collect();
            println!(
                "monomers={} sites={} seconds={seconds:.6} polymers={} entropy={} count={}",
                problem.monomers.len(),
                problem.sites.len(),
                counts.join(","),
                answer.entropy,
                answer.count
            );
            Ok(())
        }
        _ => Err(
            "usage: sluice bench-solver solve FILE [CONSTRAINTS] [GEN] [INIT_K] | sluice bench-solver gen FAMILY SIZE".into(),
        ),
    }
}
