//! Tests of the evaluator (dense paths).

use super::super::parse;
use super::*;
use ndarray::Array2;

fn data(n: usize, d: usize, seed: u64) -> Array2<f64> {
    let mut s = seed;
    Array2::from_shape_fn((n, d), |_| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    })
}

fn gram(text: &str, x: &Array2<f64>, y: &Array2<f64>) -> Array2<f64> {
    let p = Program::compile(&parse(text).unwrap()).unwrap();
    p.gram(x.view(), y.view(), &CancelToken::new(), true)
        .unwrap()
}

#[test]
fn paper_kernel_matches_direct_formula() {
    let x = data(5, 13, 1);
    let y = data(4, 13, 2);
    let k = gram("norm1(min(sin(x * y), sin(dot(x, y))))", &x, &y);
    for i in 0..5 {
        for j in 0..4 {
            let d = 13.0;
            let dot: f64 = (0..13).map(|f| x[[i, f]] * y[[j, f]]).sum::<f64>() / d;
            let want: f64 = (0..13)
                .map(|f| (x[[i, f]] * y[[j, f]]).sin().min(dot.sin()).abs())
                .sum();
            assert!((k[[i, j]] - want).abs() < 1e-12 * want.abs().max(1.0));
        }
    }
    let p = Program::compile(&parse("norm1(min(sin(x * y), sin(dot(x, y))))").unwrap()).unwrap();
    assert_eq!(p.n_slots(), 1);
}

#[test]
fn broadcasting_and_slots() {
    let x = data(3, 6, 3);
    let y = data(2, 6, 4);
    // Deep tree: several live slots.
    let k = gram(
        "norm1((x - y) * (x + y) - (square(x) - square(y)) + 2)",
        &x,
        &y,
    );
    for v in k.iter() {
        assert!((v - 12.0).abs() < 1e-12, "{v}");
    }
    let k = gram("l1(dot(x, y))", &x, &y);
    let k2 = gram("abs(dot(x, y))", &x, &y);
    assert!((&k - &k2).iter().all(|v| v.abs() < 1e-14));
    let k = gram("norm1(3)", &x, &y);
    assert!(k.iter().all(|&v| (v - 18.0).abs() < 1e-12));
    let k = gram("l2(2)", &x, &y);
    assert!(k.iter().all(|&v| (v - 2.0 / 6f64.sqrt()).abs() < 1e-12));
}

#[test]
fn errors() {
    let x = data(3, 4, 5);
    let tok = CancelToken::new();
    let p = Program::compile(&parse("x * y").unwrap()).unwrap();
    assert!(matches!(
        p.gram(x.view(), x.view(), &tok, true),
        Err(ExprError::Invalid(_))
    ));
    let p = Program::compile(&parse("norm1(x / (x - x))").unwrap()).unwrap();
    assert!(matches!(
        p.gram(x.view(), x.view(), &tok, true),
        Err(ExprError::NonFinite { count: 9, .. })
    ));
    let p = Program::compile(&parse("x + y").unwrap()).unwrap();
    assert!(matches!(
        p.apply(x.view(), &tok, true),
        Err(ExprError::Invalid(_))
    ));
    let tok = CancelToken::new();
    tok.cancel();
    let p = Program::compile(&parse("dot(x, y)").unwrap()).unwrap();
    assert_eq!(
        p.gram(x.view(), x.view(), &tok, true),
        Err(ExprError::Cancelled)
    );
}

#[test]
fn symmetric_gram() {
    let x = data(7, 5, 11);
    let tok = CancelToken::new();
    for text in [
        "norm1(min(sin(x * y), sin(dot(x, y))))",
        "norm1(expdiff(x, y) + x * y) - l2dist(y, x)",
        "norm1(abs(x - y)) + l1(y - x) + l2(x - y)",
        "norm1(min(sin(abs(square(x) - square(y))), sqrt_abs(x + y)))",
        "norm1(cosh(y - x) * square(x - y) + sqrt_abs(x - y))",
    ] {
        let e = parse(text).unwrap();
        assert!(e.is_symmetric(), "{text}");
        let p = Program::compile(&e).unwrap();
        let full = p.gram(x.view(), x.view(), &tok, true).unwrap();
        let sym = p.gram_symmetric(x.view(), &tok, true).unwrap();
        assert_eq!(full, sym);
    }
    assert!(parse("norm1(x - y)").unwrap().is_symmetric());
    assert!(!parse("norm1(x - y + 1)").unwrap().is_symmetric());
    assert!(!parse("norm1(sin(x - y))").unwrap().is_symmetric());
    assert!(!parse("norm1(abs(x - 2 * y))").unwrap().is_symmetric());
    assert!(!parse("dot(x, x) - dot(y, y)").unwrap().is_symmetric());
}

/// The AVX2 + FMA code path (dispatched on this CPU when present) and the portable
/// one agree to rounding for every operation, including the fused instructions
/// (`BinNew`, `ReduceBin`) and the AVX2 reductions.
#[test]
fn simd_and_portable_paths_agree() {
    let x = data(6, 37, 21);
    let y = data(5, 37, 22);
    let texts = [
        "norm1(min(sin(x * y), sin(dot(x, y))))",
        "norm1(cos(3 * x + y)) + l1dist(x, y) + l2dist(x, y) + l1(x) + l2(y)",
        "norm1(exp(x) - sinh(y) + cosh(x * y) + tanh(x - y))",
        "norm1(sigmoid(x) * softplus(4 * y) / (2 + sqrt_abs(x)))",
        "norm1(max(x, y) - min(x, 0.5) + expdiff(x, y) + relu(y) + min0(x))",
        "l2(square(x) - cube(y) + abs(x) * sign(y)) + l1(x + y) + norm1(x - 0.25)",
        "dot(x, y) + l2(-x) + norm1(y / 3)",
    ];
    for text in texts {
        let p = Program::compile(&parse(text).unwrap()).unwrap();
        let d = x.ncols();
        let mut ev = p.evaluator(d);
        let xs = x.as_slice().unwrap();
        let ys = y.as_slice().unwrap();
        for i in 0..x.nrows() {
            let mut fast = vec![0.0; y.nrows()];
            let mut portable = vec![0.0; y.nrows()];
            kernel_row(&mut ev, &xs[i * d..(i + 1) * d], ys, 0, &mut fast);
            kernel_row_generic::<Unfused>(&mut ev, &xs[i * d..(i + 1) * d], ys, 0, &mut portable);
            for (a, b) in fast.iter().zip(&portable) {
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "{text}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn transform_rows() {
    let x = data(4, 5, 7);
    let p = Program::compile(&parse("x / l2(x) + sigmoid(x) * 0.5").unwrap()).unwrap();
    let t = p.apply(x.view(), &CancelToken::new(), true).unwrap();
    for i in 0..4 {
        let n: f64 = (0..5).map(|f| x[[i, f]].powi(2)).sum::<f64>().sqrt() / 5.0;
        for f in 0..5 {
            let v = x[[i, f]];
            let want = v / n + 0.5 / (1.0 + (-v).exp());
            assert!((t[[i, f]] - want).abs() < 1e-12);
        }
    }
}
