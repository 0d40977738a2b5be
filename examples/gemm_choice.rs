//! Which f32 GEMM should the kNN engine use? Times the candidates on the engine's tile
//! shapes (`queries x gallery x dim`, C = A * B^T, single thread, best of 5) and prints
//! one JSON line per candidate and shape:
//!
//! - `gemm` 0.18 (pure Rust, run-time dispatch to AVX-512 / AVX2 / NEON kernels),
//! - `matrixmultiply` 0.3 (pure Rust, AVX2/FMA kernels; ndarray's `dot`),
//! - libtorch's `matmul` (MKL inside the torch wheel) with 1 intra-op thread.
//!
//! Run: `LD_LIBRARY_PATH=$(python -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
//! cargo run --release --example gemm_choice` (benches/retrieval.py does this).

use std::time::Instant;

fn best_gflops(flop: f64, mut f: impl FnMut()) -> f64 {
    f();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    flop / best / 1e9
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tch::set_num_threads(1);
    for &(m, n, k) in &[(256usize, 2048usize, 128usize), (256, 2048, 512)] {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1e3)
            .collect();
        let b: Vec<f32> = (0..n * k)
            .map(|i| ((i * 104729) % 1000) as f32 / 1e3)
            .collect();
        let mut c = vec![0f32; m * n];
        let flop = 2.0 * (m * n * k) as f64;
        let g = best_gflops(flop, || {
            // SAFETY: a is m x k, b is n x k, c is m x n, all row-major and disjoint.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    k as isize,
                    1,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
        let mm = best_gflops(flop, || {
            // SAFETY: as above; B^T is addressed with row stride 1, column stride k.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    k as isize,
                    1,
                    b.as_ptr(),
                    1,
                    k as isize,
                    0.0,
                    c.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        });
        let ta = tch::Tensor::f_from_slice(&a)?.f_reshape([m as i64, k as i64])?;
        let tb = tch::Tensor::f_from_slice(&b)?.f_reshape([n as i64, k as i64])?;
        let tbt = tb.f_tr()?;
        let mut failed = None;
        let t = best_gflops(flop, || {
            if let Err(e) = ta.f_matmul(&tbt) {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(e.into());
        }
        for (name, v) in [("gemm", g), ("matrixmultiply", mm), ("torch-mkl", t)] {
            println!(
                "{{\"gemm\": \"{name}\", \"m\": {m}, \"n\": {n}, \"k\": {k}, \"gflops\": {v:.1}}}"
            );
        }
    }
    Ok(())
}
