//! Tests of the SMO solver (a module of `solver.rs`).

use super::*;
use crate::runtime::CancelToken;
use crate::svm::kernel::{BuiltinKernel, FeatureGram, PrecomputedGram};
use ndarray::Array2;

fn toy(n: usize, seed: u64) -> (Array2<f32>, Vec<i8>) {
    // Two noisy, overlapping blobs (deterministic LCG).
    let mut s = seed;
    let mut rnd = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f64 / (1u64 << 31) as f64) as f32
    };
    let mut x = Array2::<f32>::zeros((n, 3));
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let lab: i8 = if i % 3 == 0 { -1 } else { 1 };
        for k in 0..3 {
            x[[i, k]] = rnd() * 2.0 + if lab == 1 { 0.7 } else { 0.0 };
        }
        y.push(lab);
    }
    (x, y)
}

fn params(tol: f64) -> SolverParams {
    SolverParams {
        tol,
        ..SolverParams::default()
    }
}

#[test]
fn two_points_hard_margin() {
    let x = ndarray::array![[0.0f32], [2.0]];
    let g = FeatureGram::new(&BuiltinKernel::Linear, x.view());
    let sol = solve_binary(
        &g,
        &[0, 1],
        &[1, -1],
        &[10.0, 10.0],
        &params(1e-9),
        &Monitor::none(),
    )
    .unwrap();
    assert!((sol.coef[0] - 0.5).abs() < 1e-6 && (sol.coef[1] + 0.5).abs() < 1e-6);
    assert!((sol.rho + 1.0).abs() < 1e-6);
    assert!(sol.converged);
}

#[test]
fn infinite_bound_gives_the_hard_margin() {
    // Separable in 1-D: the hard margin puts w = 1, b = 0 through -1 and 1
    // (a = 1/2 each); C = inf (scikit-learn's hard margin) must give exactly that,
    // with and without shrinking.
    let x = ndarray::array![[-3.0f32], [-2.0], [-1.0], [1.0], [2.0], [4.0]];
    let g = FeatureGram::new(&BuiltinKernel::Linear, x.view());
    let y = [-1, -1, -1, 1, 1, 1];
    let c = [f64::INFINITY; 6];
    for shrinking in [true, false] {
        let p = SolverParams {
            shrinking,
            ..params(1e-9)
        };
        let sol = solve_binary(&g, &[0, 1, 2, 3, 4, 5], &y, &c, &p, &Monitor::none()).unwrap();
        let want = [0.0, 0.0, -0.5, 0.5, 0.0, 0.0];
        for (a, w) in sol.coef.iter().zip(want) {
            assert!((a - w).abs() < 1e-9, "{:?}", sol.coef);
        }
        assert!(sol.rho.abs() < 1e-9 && sol.converged);
    }
}

fn kkt_violation(g: &dyn Gram, y: &[i8], c: &[f64], sol: &BinarySolution) -> f64 {
    let n = y.len();
    let cols: Vec<usize> = (0..n).collect();
    let mut row = vec![0f32; n];
    let mut worst: f64 = 0.0;
    for i in 0..n {
        g.row(i, &cols, &mut row);
        let f: f64 = row
            .iter()
            .zip(&sol.coef)
            .map(|(&k, &a)| f64::from(k) * a)
            .sum::<f64>()
            - sol.rho;
        let yf = f64::from(y[i]) * f;
        let a = sol.coef[i] * f64::from(y[i]);
        let v = if a <= 0.0 {
            (1.0 - yf).max(0.0)
        } else if a >= c[i] {
            (yf - 1.0).max(0.0)
        } else {
            (yf - 1.0).abs()
        };
        worst = worst.max(v);
    }
    worst
}

#[test]
fn rbf_solution_satisfies_kkt_and_constraint() {
    let (x, y) = toy(120, 7);
    let k = BuiltinKernel::Rbf { gamma: 0.5 };
    let g = FeatureGram::new(&k, x.view());
    let idx: Vec<usize> = (0..120).collect();
    let c = vec![2.0; 120];
    let sol = solve_binary(&g, &idx, &y, &c, &params(1e-4), &Monitor::none()).unwrap();
    let sum: f64 = sol.coef.iter().sum();
    assert!(sum.abs() < 1e-9, "sum y a = {sum}");
    assert!(sol.coef.iter().zip(&y).all(|(&a, &l)| {
        let al = a * f64::from(l);
        (-1e-12..=2.0 + 1e-12).contains(&al)
    }));
    // libsvm's stopping rule bounds the violation by roughly tol.
    assert!(kkt_violation(&g, &y, &c, &sol) < 1e-2);
    assert!(sol.objective < 0.0);
}

#[test]
fn shrinking_and_tiny_cache_do_not_change_the_solution() {
    let (x, y) = toy(150, 3);
    let k = BuiltinKernel::Rbf { gamma: 1.0 };
    let g = FeatureGram::new(&k, x.view());
    let idx: Vec<usize> = (0..150).collect();
    let c = vec![1.0; 150];
    let base = solve_binary(&g, &idx, &y, &c, &params(1e-6), &Monitor::none()).unwrap();
    let no_shrink = SolverParams {
        shrinking: false,
        ..params(1e-6)
    };
    let tiny = SolverParams {
        cache_bytes: 1,
        ..params(1e-6)
    };
    for p in [no_shrink, tiny] {
        let other = solve_binary(&g, &idx, &y, &c, &p, &Monitor::none()).unwrap();
        assert!((other.objective - base.objective).abs() < 1e-5 * base.objective.abs());
        assert!((other.rho - base.rho).abs() < 1e-3);
    }
}

#[test]
fn indefinite_kernel_terminates() {
    let n = 40;
    let mut k = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..n {
            k[[i, j]] = (((i * 7 + j * 7) % 11) as f64 - 5.0) / 3.0; // symmetric, indefinite
        }
    }
    let g = PrecomputedGram::new(k.view()).unwrap();
    let y: Vec<i8> = (0..n).map(|i| if i % 2 == 0 { 1 } else { -1 }).collect();
    let idx: Vec<usize> = (0..n).collect();
    let sol = solve_binary(&g, &idx, &y, &vec![1.0; n], &params(1e-3), &Monitor::none()).unwrap();
    assert!(sol.converged);
    assert!(sol.coef.iter().all(|a| a.is_finite()) && sol.rho.is_finite());
}

#[test]
fn max_iter_is_reported_and_cancel_stops() {
    let (x, y) = toy(90, 5);
    let k = BuiltinKernel::Rbf { gamma: 0.5 };
    let g = FeatureGram::new(&k, x.view());
    let idx: Vec<usize> = (0..90).collect();
    let c = vec![1.0; 90];
    let p = SolverParams {
        max_iter: Some(3),
        ..params(1e-3)
    };
    let sol = solve_binary(&g, &idx, &y, &c, &p, &Monitor::none()).unwrap();
    assert_eq!(sol.iterations, 3);
    assert!(!sol.converged);
    let token = CancelToken::new();
    token.cancel();
    let mon = Monitor::new(token, None);
    let r = solve_binary(&g, &idx, &y, &c, &params(1e-3), &mon);
    assert_eq!(r, Err(SvmError::Cancelled(crate::runtime::Cancelled)));
}
