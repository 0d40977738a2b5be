//! Where does `SVC.fit` spend its time? Fashion-MNIST pixels / 255, RBF, C = 10,
//! gamma = 'scale', the first `n` training images (default 5000; `n` as the first
//! argument), one rayon thread so that CPU time is stable on a shared machine. Prints
//! one JSON line: the CPU seconds of all kernel blocks of a one-vs-one fit (10 within-class
//! blocks + 45 cross blocks) as `BuiltinKernel::block` computes them, the same dot
//! products through `ndarray` (matrixmultiply, the former block implementation) and
//! through `gemm`, and the whole `fit_ovo_features`.
//!
//! Run: `LD_LIBRARY_PATH=$(python -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
//! cargo run --release --example svm_fit_timing -- 5000`.

use gridmatch::runtime::Monitor;
use gridmatch::svm::{fit_ovo_features, BuiltinKernel, Classes, Kernel, SolverParams};
use ndarray::{Array2, Axis};
use std::path::Path;

fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn median_of(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = cpu_seconds();
            f();
            cpu_seconds() - t
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[reps / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).map_or(Ok(5000), |s| s.parse())?;
    let root = std::env::var("GRIDMATCH_DATA").unwrap_or_else(|_| "../shared/datasets".into());
    let dir = Path::new(&root).join("fashion-mnist");
    let ds = gridmatch::data::idx::read_idx_dataset(
        &dir.join("train-images-idx3-ubyte.gz"),
        &dir.join("train-labels-idx1-ubyte.gz"),
    )?;
    let d = ds.rows * ds.cols;
    let x = Array2::from_shape_fn((n, d), |(i, k)| f32::from(ds.images[i * d + k]) / 255.0);
    let y: Vec<usize> = ds.labels[..n].iter().map(|&v| usize::from(v)).collect();
    let xd = x.mapv(f64::from);
    let var = xd.var(0.0);
    let gamma = 1.0 / (d as f64 * var);
    let k = BuiltinKernel::Rbf { gamma };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let members: Vec<Vec<usize>> = (0..10)
        .map(|c| (0..n).filter(|&i| y[i] == c).collect())
        .collect();
    let xs: Vec<Array2<f32>> = members.iter().map(|m| x.select(Axis(0), m)).collect();
    let blocks = |f: &dyn Fn(&Array2<f32>, &Array2<f32>)| {
        for a in 0..10 {
            for b in a..10 {
                f(&xs[a], &xs[b]);
            }
        }
    };
    let reps = 3;
    if std::env::args().nth(2).as_deref() == Some("fit") {
        // One fit only (for callgrind), with the default pool.
        let c = vec![10.0; n];
        let t = cpu_seconds();
        let m = fit_ovo_features(
            &k,
            x.view(),
            &Classes::new(&y, 10, &c),
            &SolverParams::default(),
            &Monitor::none(),
        )?;
        println!(
            "{{\"n\": {n}, \"cpu_s_fit\": {:.3}, \"n_sv\": {}}}",
            cpu_seconds() - t,
            m.support.len()
        );
        return Ok(());
    }
    let (t_block, t_mm, t_gemm, t_fit, n_sv) = pool.install(|| {
        let t_block = median_of(reps, || {
            blocks(&|a, b| {
                let mut o = Array2::<f32>::zeros((a.nrows(), b.nrows()));
                k.block(a.view(), b.view(), o.view_mut());
            })
        });
        let t_mm = median_of(reps, || {
            blocks(&|a, b| {
                let mut o = Array2::<f32>::zeros((a.nrows(), b.nrows()));
                ndarray::linalg::general_mat_mul(1.0, a, &b.t(), 0.0, &mut o);
            })
        });
        let t_gemm = median_of(reps, || {
            blocks(&|a, b| {
                let mut o = Array2::<f32>::zeros((a.nrows(), b.nrows()));
                let (m, nn, kk) = (a.nrows(), b.nrows(), a.ncols());
                // SAFETY: a (m x kk), b (nn x kk), o (m x nn) are contiguous row-major
                // and disjoint.
                unsafe {
                    gemm::gemm(
                        m,
                        nn,
                        kk,
                        o.as_mut_ptr(),
                        1,
                        nn as isize,
                        false,
                        a.as_ptr(),
                        1,
                        kk as isize,
                        b.as_ptr(),
                        kk as isize,
                        1,
                        0.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            })
        });
        let c = vec![10.0; n];
        let mut n_sv = 0;
        let t_fit = median_of(reps, || {
            let m = fit_ovo_features(
                &k,
                x.view(),
                &Classes::new(&y, 10, &c),
                &SolverParams::default(),
                &Monitor::none(),
            )
            .expect("fit");
            n_sv = m.support.len();
        });
        (t_block, t_mm, t_gemm, t_fit, n_sv)
    });
    println!(
        "{{\"n\": {n}, \"cpu_s_kernel_blocks\": {t_block:.3}, \"cpu_s_dots_matrixmultiply\": {t_mm:.3}, \
         \"cpu_s_dots_gemm\": {t_gemm:.3}, \"cpu_s_fit\": {t_fit:.3}, \"n_sv\": {n_sv}}}"
    );
    Ok(())
}
