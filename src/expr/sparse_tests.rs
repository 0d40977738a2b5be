//! The sparse evaluator against the dense one.

use super::super::ast::{BinOp, Expr, Func, ALL_FUNCS};
use super::super::eval::kernel_row;
use super::super::parse;
use super::*;
use crate::runtime::CancelToken;
use ndarray::Array2;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `n × d` with about `density` nonzeros in [-1, 1], a few `-0.0`.
fn sparse_data(n: usize, d: usize, density: f64, seed: u64) -> Array2<f64> {
    let mut r = Rng(seed);
    Array2::from_shape_fn((n, d), |_| {
        let u = r.unit();
        if u < density {
            r.unit() * 2.0 - 1.0
        } else if u < density + 0.01 {
            -0.0
        } else {
            0.0
        }
    })
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

/// Dense and sparse `K(X, Y)`, row by row (no finiteness check). `None`: no plan.
fn both(
    p: &Program,
    x: &Array2<f64>,
    y: &Array2<f64>,
    from_diag: bool,
) -> Option<(Vec<f64>, Vec<f64>, Visit)> {
    let d = x.ncols();
    let (xs, ys) = (x.as_slice().unwrap(), y.as_slice().unwrap());
    let (xr, yr) = (SparseRows::new(xs, d), SparseRows::new(ys, d));
    let plan = p.sparse_plan(&xr, &yr)?;
    let m = y.nrows();
    let mut dense = vec![0.0; x.nrows() * m];
    let mut sparse = vec![0.0; x.nrows() * m];
    let mut ev = p.evaluator(d);
    for i in 0..x.nrows() {
        let from = if from_diag { i } else { 0 };
        let row = &mut dense[i * m..(i + 1) * m];
        kernel_row(&mut ev, &xs[i * d..(i + 1) * d], ys, from, row);
        let row = &mut sparse[i * m..(i + 1) * m];
        super::kernel_row(&mut ev, &plan, xs, i, ys, Cols::From(from), row);
        let mut portable = vec![0.0; m];
        kernel_row_portable(&mut ev, &plan, xs, i, ys, Cols::From(from), &mut portable);
        for (a, b) in portable.iter().zip(row.iter()).skip(from) {
            assert!(close(*a, *b), "{}: portable {a} vs {b}", p.text);
        }
    }
    Some((dense, sparse, plan.visit))
}

fn check(text: &str, x: &Array2<f64>, y: &Array2<f64>) -> Visit {
    let p = Program::compile(&parse(text).unwrap()).unwrap();
    let (dense, sparse, visit) = both(&p, x, y, false).expect("a sparse plan");
    for (k, (a, b)) in sparse.iter().zip(&dense).enumerate() {
        assert!(
            close(*a, *b),
            "{text} ({visit:?}) at {k}: sparse {a} vs dense {b}"
        );
    }
    visit
}

const TEXTS: [&str; 16] = [
    "norm1(min(sin(x * y), sin(dot(x, y))))",
    "norm1(cos(x * y)) + norm1(exp(x) - cosh(y))",
    "norm1(sigmoid(x * y) + softplus(x - y))",
    "l2(tanh(x) * sinh(y)) + l1(relu(x) - min0(y)) + l1dist(x, y) + l2dist(x, y)",
    "norm1(max(x, y) - min(x, 0.5) + expdiff(x, y))",
    "norm1(square(x) - cube(y) + abs(x) * sign(y) + sqrt_abs(x * y))",
    "dot(x, y) + l2(-x) + norm1(y / 3) + l1(x + y)",
    "norm1(x / y)",
    "norm1(y / (x * y))",
    "norm1(x * y / dot(x, y))",
    "norm1(sin(x * y) * exp(dot(x, y)))",
    "norm1(min(x * y, dot(x, x)) - max(x * y, l2(y)))",
    "norm1(x * (y + 1)) + norm1(y * cos(x))",
    "norm1(1 / (x * y + 1)) + norm1(2)",
    "l2(x * y - dot(x, y)) + dot(sin(x), sin(y))",
    "norm1(expdiff(x * y, dot(x, y)) * sign(x - y))",
];

#[test]
fn sparse_matches_dense_for_every_operation() {
    let x = sparse_data(9, 70, 0.2, 1);
    let y = sparse_data(7, 70, 0.25, 2);
    let mut visits = Vec::new();
    for text in TEXTS {
        visits.push(check(text, &x, &y));
        check(text, &y, &x);
    }
    // The analysis finds the sparse structure where there is one.
    assert_eq!(visits[0], Visit::Both);
    assert_eq!(visits[1], Visit::Either);
    assert_eq!(visits[9], Visit::Both);
    assert_eq!(visits[12], Visit::Either);
    let p = Program::compile(&parse("norm1(x * (y + 1))").unwrap()).unwrap();
    assert_eq!(visit_for(&p.expr, 1.0, 70), Visit::X);
    let p = Program::compile(&parse("norm1(y * cos(x))").unwrap()).unwrap();
    assert_eq!(visit_for(&p.expr, 1.0, 70), Visit::Y);
}

/// A zero times something that may overflow is not a zero (`0 · inf = NaN`): the
/// interval bound keeps such a product out of the shortcut.
#[test]
fn overflow_blocks_the_zero_shortcut() {
    let mut x = sparse_data(6, 40, 0.2, 3);
    let y = sparse_data(5, 40, 0.2, 4);
    x[[0, 0]] = 800.0;
    x[[1, 0]] = 800.0;
    for (text, visit) in [
        ("norm1(y * exp(x))", Visit::Either),
        ("norm1(exp(x) * y) + dot(x, y)", Visit::Either),
        // (In A, sinh(square(0)) = 0 and y is bounded: that product is a zero.)
        ("norm1(y * sinh(square(x)))", Visit::X),
    ] {
        let p = Program::compile(&parse(text).unwrap()).unwrap();
        assert_eq!(visit_for(&p.expr, 800.0, 40), visit, "{text}");
        check(text, &x, &y);
        check(text, &y, &x);
    }
    // Bounded data: exp(x) is finite, so y = 0 makes the term 0 whatever x is, and where
    // x = 0 (exp = 1) the term is y, which varies: y's nonzeros are visited (as for
    // `y * cos(x)` above).
    let p = Program::compile(&parse("norm1(y * exp(x))").unwrap()).unwrap();
    assert_eq!(visit_for(&p.expr, 1.0, 40), Visit::Y);
    check(
        "norm1(y * exp(x))",
        &sparse_data(6, 40, 0.2, 8),
        &sparse_data(5, 40, 0.2, 9),
    );
}

#[test]
fn non_finite_data_take_the_dense_path() {
    let mut x = sparse_data(4, 30, 0.2, 5);
    let y = sparse_data(4, 30, 0.2, 6);
    let p = Program::compile(&parse("norm1(x * y)").unwrap()).unwrap();
    let (xs, ys) = (x.as_slice().unwrap(), y.as_slice().unwrap());
    assert!(p
        .sparse_plan(&SparseRows::new(xs, 30), &SparseRows::new(ys, 30))
        .is_some());
    x[[2, 3]] = f64::INFINITY;
    let xs = x.as_slice().unwrap();
    assert!(p
        .sparse_plan(&SparseRows::new(xs, 30), &SparseRows::new(ys, 30))
        .is_none());
    // Dense data: no plan either.
    let z = sparse_data(4, 30, 0.95, 7);
    let zs = z.as_slice().unwrap();
    assert!(p
        .sparse_plan(&SparseRows::new(zs, 30), &SparseRows::new(zs, 30))
        .is_none());
}

/// Zeros where a divisor or a non-finite value makes the class matter, and rows that
/// are all zero.
#[test]
fn non_finite_results_are_unchanged() {
    let mut x = sparse_data(6, 50, 0.2, 8);
    let y = sparse_data(6, 50, 0.2, 9);
    x.row_mut(3).fill(0.0);
    for text in [
        "norm1(x / y)",
        "norm1(sin(x * y) / dot(x, y))",
        "norm1(1 / (x * y))",
        "norm1(min(x * y, 0) / x)",
        "dot(x, y) / dot(x, x)",
        "norm1(exp(1 / (x - y)))",
    ] {
        check(text, &x, &y);
        check(text, &y, &x);
    }
}

fn random_expr(r: &mut Rng, depth: usize) -> Expr {
    if depth == 0 || r.below(4) == 0 {
        return match r.below(6) {
            0 | 1 => Expr::x(),
            2 | 3 => Expr::y(),
            4 => Expr::Const([0.5, 2.0, -1.0, 0.0, 3.0][r.below(5)]),
            _ => Expr::bin(BinOp::Mul, Expr::x(), Expr::y()),
        };
    }
    match r.below(3) {
        0 => {
            let op = [BinOp::Add, BinOp::Sub, BinOp::Mul, BinOp::Div][r.below(4)];
            Expr::bin(op, random_expr(r, depth - 1), random_expr(r, depth - 1))
        }
        1 => Expr::neg(random_expr(r, depth - 1)),
        _ => {
            let f = ALL_FUNCS[r.below(ALL_FUNCS.len())];
            let args = (0..f.arity()).map(|_| random_expr(r, depth - 1)).collect();
            Expr::call(f, args)
        }
    }
}

/// Random expressions of the whole language (every operation, nested reductions).
#[test]
fn random_expressions_agree() {
    let x = sparse_data(6, 45, 0.2, 10);
    let y = sparse_data(5, 45, 0.3, 11);
    let mut r = Rng(12);
    let mut sparse_visits = 0;
    for _ in 0..400 {
        let e = random_expr(&mut r, 4);
        let e = if e.value_type() == crate::expr::ValueType::Vector {
            Expr::call(Func::Norm1, vec![e])
        } else {
            e
        };
        let p = Program::compile(&e).unwrap();
        for (a, b) in [(&x, &y), (&y, &x)] {
            let (dense, sparse, visit) = both(&p, a, b, false).expect("a sparse plan");
            sparse_visits += usize::from(visit != Visit::Either);
            for (k, (u, v)) in sparse.iter().zip(&dense).enumerate() {
                assert!(
                    close(*u, *v),
                    "{e} ({visit:?}) at {k}: sparse {u} vs dense {v}"
                );
            }
        }
    }
    assert!(sparse_visits > 50, "{sparse_visits}");
}

/// The drivers (`gram`, `gram_symmetric`, on-demand rows) take the sparse path and
/// agree with the dense evaluation.
#[test]
fn drivers_agree() {
    let x = sparse_data(12, 64, 0.2, 13);
    let y = sparse_data(8, 64, 0.2, 14);
    let tok = CancelToken::new();
    for text in TEXTS.iter().take(7) {
        let e = parse(text).unwrap();
        let p = Program::compile(&e).unwrap();
        let (dense, _, _) = both(&p, &x, &y, false).unwrap();
        let k = p.gram(x.view(), y.view(), &tok, false).unwrap();
        for (a, b) in k.iter().zip(&dense) {
            assert!(close(*a, *b), "{text}: {a} vs {b}");
        }
        let (dense, _, _) = both(&p, &x, &x, false).unwrap();
        if e.is_symmetric() {
            let k = p.gram_symmetric(x.view(), &tok, false).unwrap();
            for (a, b) in k.iter().zip(&dense) {
                assert!(close(*a, *b), "{text} symmetric: {a} vs {b}");
            }
        }
        let xs = x.as_slice().unwrap();
        let rows = SparseRows::new(xs, 64);
        let cols = [3usize, 0, 11, 5];
        let mut out = [0.0; 4];
        assert!(p.kernel_row_indexed(xs, 64, Some(&rows), 7, &cols, &mut out));
        for (o, &j) in out.iter().zip(&cols) {
            assert!(close(*o, dense[7 * 12 + j]), "{text} row: {o}");
        }
    }
}
