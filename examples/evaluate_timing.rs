//! What does `retrieval::evaluate` cost next to the kNN scan? Builds In-shop-like data as
//! benches/retrieval.py does (same sizes and id distribution, its own generator): `2n`
//! items with ids drawn uniformly from `2n / 5` ids, embeddings `center[id] + 1.5 * noise`
//! (standard normal), L2-normalised float32; queries are the first `n`, the gallery the
//! last `n`. Times `evaluate` (metric L2, ks 1, 5, 10, 20, 50, as the benchmark calls it)
//! and `knn` with k = 1 in a pool of `threads` rayon threads, and prints one JSON line:
//! median wall and CPU seconds (all threads) of each, and the metrics (for comparing two
//! builds bit for bit).
//!
//! Run: `cargo run --release --no-default-features --example evaluate_timing -- 20000 128 5 2`
//! (arguments: n, dim, repeats, threads; these are the defaults).

use gridmatch::retrieval::{evaluate, knn, EvalOptions, KnnOptions, Metric};
use gridmatch::runtime::Monitor;
use ndarray::{s, Array2};
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// SplitMix64: uniform u64s.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// `n` L2-normalised rows with about `per_id` rows per id, and their ids.
fn inshop_like(n: usize, d: usize, per_id: f64, seed: u64) -> (Array2<f32>, Vec<i64>) {
    let mut rng = Rng(seed);
    let n_ids = ((n as f64 / per_id) as usize).max(1);
    let ids: Vec<i64> = (0..n).map(|_| (rng.next() % n_ids as u64) as i64).collect();
    let centers = Array2::from_shape_fn((n_ids, d), |_| rng.normal());
    let mut e = Array2::from_shape_fn((n, d), |(i, k)| {
        centers[[ids[i] as usize, k]] + 1.5 * rng.normal()
    });
    for mut row in e.rows_mut() {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        row.mapv_inplace(|v| v / norm);
    }
    (e, ids)
}

/// Median wall and CPU seconds of `reps` calls, and the last result.
fn timed<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let mut walls = Vec::with_capacity(reps);
    let mut cpus = Vec::with_capacity(reps);
    let mut out = None;
    for _ in 0..reps.max(1) {
        let (c0, t0) = (cpu_seconds(), Instant::now());
        out = Some(f());
        walls.push(t0.elapsed().as_secs_f64());
        cpus.push(cpu_seconds() - c0);
    }
    walls.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    let Some(out) = out else {
        unreachable!("at least one repeat ran")
    };
    (walls[walls.len() / 2], cpus[cpus.len() / 2], out)
}

fn arg(i: usize, default: usize) -> Result<usize, std::num::ParseIntError> {
    std::env::args().nth(i).map_or(Ok(default), |s| s.parse())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (n, d, reps, threads) = (arg(1, 20000)?, arg(2, 128)?, arg(3, 5)?, arg(4, 2)?);
    let (e, ids) = inshop_like(2 * n, d, 5.0, 1);
    let (q, g) = (e.slice(s![..n, ..]), e.slice(s![n.., ..]));
    let (iq, ig) = (&ids[..n], &ids[n..]);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let options = EvalOptions {
        ks: vec![1, 5, 10, 20, 50],
        knn: KnnOptions::new(Metric::L2),
    };
    let (ev_wall, ev_cpu, ev) =
        pool.install(|| timed(reps, || evaluate(q, iq, g, ig, &options, &Monitor::none())));
    let ev = ev?;
    let (knn_wall, knn_cpu, nb) = pool.install(|| timed(reps, || knn(q, g, 1, Metric::L2)));
    let first: i64 = nb?.indices.iter().take(8).sum();
    let metrics: Vec<String> = ev
        .to_pairs()
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v:.17}"))
        .collect();
    println!(
        "{{\"n\": {n}, \"d\": {d}, \"threads\": {threads}, \"repeats\": {reps}, \
         \"evaluate_wall\": {ev_wall:.4}, \"evaluate_cpu\": {ev_cpu:.4}, \
         \"knn1_wall\": {knn_wall:.4}, \"knn1_cpu\": {knn_cpu:.4}, \"knn1_check\": {first}, \
         \"metrics\": {{{}}}}}",
        metrics.join(", ")
    );
    Ok(())
}
