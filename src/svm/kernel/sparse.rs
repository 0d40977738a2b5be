//! The built-in kernels on sparse rows (compressed sparse rows, as scipy's CSR): the
//! [`CsrRows`] matrix, the [`SparseGram`] the solver reads, and the kernel values of
//! test rows against support vectors for prediction.
//!
//! Kernel values come from dot products computed in float64, as libsvm computes them
//! on sparse input: one row is scattered into a dense float64 scratch row (one per
//! thread, as wide as the features), and every other row's stored values are
//! multiplied into it, so a pair costs the other row's stored values, not the feature
//! count. RBF uses the squared norms (`|a|² + |b|² − 2 a·b`), kept per row.

use super::{BuiltinKernel, Gram};
use crate::svm::SvmError;
use ndarray::ArrayViewMut2;
use rayon::prelude::*;
use std::cell::RefCell;

/// A read-only CSR matrix of float64 values: row `i` holds the values
/// `data[indptr[i]..indptr[i + 1]]` at the columns `indices[..]` of the same range.
/// Rows need not be sorted; a column may not appear twice in a row (scipy's canonical
/// format; the Python layer sums duplicates first).
pub struct CsrRows<'a> {
    data: &'a [f64],
    indices: Vec<u32>,
    indptr: Vec<usize>,
    n_cols: usize,
    sq: Vec<f64>,
}

impl<'a> CsrRows<'a> {
    /// Check and wrap the three CSR arrays of an `n × n_cols` matrix (`n` is
    /// `indptr.len() - 1`). `SvmError::Shape` names what is inconsistent: the pointer
    /// array not starting at 0, decreasing or not ending at the number of values, a
    /// column index out of range, or more than `u32::MAX` columns.
    pub fn new(
        data: &'a [f64],
        indices: &[i64],
        indptr: &[i64],
        n_cols: usize,
    ) -> Result<Self, SvmError> {
        let bad = |m: String| Err(SvmError::Shape(format!("sparse matrix: {m}")));
        if n_cols > u32::MAX as usize {
            return bad(format!("{n_cols} columns (at most {})", u32::MAX));
        }
        if indices.len() != data.len() {
            return bad(format!(
                "{} column indices for {} values",
                indices.len(),
                data.len()
            ));
        }
        if indptr.first() != Some(&0) {
            return bad("the row pointers must start at 0".into());
        }
        let mut ptr = Vec::with_capacity(indptr.len());
        for (i, w) in indptr.windows(2).enumerate() {
            if w[1] < w[0] {
                return bad(format!("the row pointers decrease at row {i}"));
            }
        }
        for &p in indptr {
            ptr.push(usize::try_from(p).unwrap_or(usize::MAX));
        }
        if ptr.last() != Some(&data.len()) {
            return bad(format!(
                "the row pointers end at {:?}, the matrix stores {} values",
                indptr.last(),
                data.len()
            ));
        }
        let mut idx = Vec::with_capacity(indices.len());
        for (k, &c) in indices.iter().enumerate() {
            if c < 0 || c as u64 >= n_cols as u64 {
                return bad(format!("column index {c} (value {k}) outside 0..{n_cols}"));
            }
            idx.push(c as u32);
        }
        let sq = ptr
            .windows(2)
            .map(|w| data[w[0]..w[1]].iter().map(|v| v * v).sum())
            .collect();
        Ok(CsrRows {
            data,
            indices: idx,
            indptr: ptr,
            n_cols,
            sq,
        })
    }

    /// Number of rows.
    pub fn nrows(&self) -> usize {
        self.indptr.len() - 1
    }

    /// Number of columns (features).
    pub fn ncols(&self) -> usize {
        self.n_cols
    }

    /// The columns and values stored in row `i`.
    fn row(&self, i: usize) -> (&[u32], &[f64]) {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        (&self.indices[a..b], &self.data[a..b])
    }

    /// `put(j, k(self.row(i), other.row(j)))` for every `j` of `cols` (the value as
    /// float32, the solver's cache type).
    fn kernel_row(
        &self,
        i: usize,
        kernel: &BuiltinKernel,
        other: &CsrRows<'_>,
        cols: impl Iterator<Item = usize>,
        mut put: impl FnMut(usize, f32),
    ) {
        let (ix, vx) = self.row(i);
        let sq_i = self.sq[i];
        SCRATCH.with(|cell| {
            let mut buf = cell.borrow_mut();
            if buf.len() < self.n_cols.max(other.n_cols) {
                buf.resize(self.n_cols.max(other.n_cols), 0.0);
            }
            for (&c, &v) in ix.iter().zip(vx) {
                buf[c as usize] = v;
            }
            for j in cols {
                let (jx, jv) = other.row(j);
                let mut dot = 0.0f64;
                for (&c, &v) in jx.iter().zip(jv) {
                    dot += v * buf[c as usize];
                }
                put(j, value(kernel, dot, sq_i, other.sq[j]) as f32);
            }
            for &c in ix {
                buf[c as usize] = 0.0;
            }
        });
    }
}

thread_local! {
    /// One dense float64 row per thread: the scattered row of a kernel row's pairs
    /// (zero outside the scattered row's columns between uses).
    static SCRATCH: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// The kernel value from a dot product and the two squared norms, in float64.
#[inline]
fn value(kernel: &BuiltinKernel, dot: f64, sq_a: f64, sq_b: f64) -> f64 {
    match *kernel {
        BuiltinKernel::Linear => dot,
        BuiltinKernel::Poly {
            gamma,
            coef0,
            degree,
        } => (gamma * dot + coef0).powi(degree),
        BuiltinKernel::Rbf { gamma } => (-gamma * (sq_a + sq_b - 2.0 * dot).max(0.0)).exp(),
        BuiltinKernel::Sigmoid { gamma, coef0 } => (gamma * dot + coef0).tanh(),
    }
}

/// A built-in kernel on the sparse training rows `x`: the solver's [`Gram`].
pub struct SparseGram<'a> {
    kernel: BuiltinKernel,
    x: &'a CsrRows<'a>,
}

impl<'a> SparseGram<'a> {
    /// Bind `kernel` to the training rows `x`.
    pub fn new(kernel: BuiltinKernel, x: &'a CsrRows<'a>) -> Self {
        SparseGram { kernel, x }
    }
}

impl Gram for SparseGram<'_> {
    fn n(&self) -> usize {
        self.x.nrows()
    }

    fn diag(&self, i: usize) -> f64 {
        let sq = self.x.sq[i];
        value(&self.kernel, sq, sq, sq)
    }

    fn row(&self, i: usize, cols: &[usize], out: &mut [f32]) {
        // Long rows are split across the pool, as FeatureGram's; each piece scatters
        // row i into its own thread's scratch row.
        const CHUNK: usize = 1024;
        let fill = |c: &[usize], o: &mut [f32]| {
            let mut slots = o.iter_mut();
            self.x
                .kernel_row(i, &self.kernel, self.x, c.iter().copied(), |_, v| {
                    if let Some(s) = slots.next() {
                        *s = v;
                    }
                });
        };
        if cols.len() <= CHUNK {
            fill(cols, out);
        } else {
            out.par_chunks_mut(CHUNK)
                .zip(cols.par_chunks(CHUNK))
                .for_each(|(o, c)| fill(c, o));
        }
    }
}

/// The rows `b` of a CSR matrix by column (its transpose, as CSR): for every feature,
/// the positions in `b` of the rows storing it and their values. A block of dot products
/// `x.row(i) · b` then costs, per `i`, the stored values of `b` in `i`'s columns only
/// (Gustavson's sparse matrix product), not all of `b`'s.
struct Columns {
    ptr: Vec<usize>,
    pos: Vec<u32>,
    val: Vec<f64>,
    sq: Vec<f64>,
}

impl Columns {
    fn new(x: &CsrRows<'_>, b: &[usize]) -> Self {
        let mut ptr = vec![0usize; x.n_cols + 1];
        for &r in b {
            for &c in x.row(r).0 {
                ptr[c as usize + 1] += 1;
            }
        }
        for c in 0..x.n_cols {
            ptr[c + 1] += ptr[c];
        }
        let nnz = ptr[x.n_cols];
        let (mut pos, mut val) = (vec![0u32; nnz], vec![0f64; nnz]);
        let mut next = ptr.clone();
        for (k, &r) in b.iter().enumerate() {
            let (ix, vx) = x.row(r);
            for (&c, &v) in ix.iter().zip(vx) {
                let t = &mut next[c as usize];
                pos[*t] = k as u32;
                val[*t] = v;
                *t += 1;
            }
        }
        let sq = b.iter().map(|&r| x.sq[r]).collect();
        Columns { ptr, pos, val, sq }
    }

    /// `out[k] = k(x.row(i), b[k])` for every `k`, through the float64 products `acc`
    /// (`b.len()` long, zero on entry and on return).
    fn kernel_row(
        &self,
        kernel: &BuiltinKernel,
        x: &CsrRows<'_>,
        i: usize,
        acc: &mut [f64],
        out: &mut [f32],
    ) {
        let (ix, vx) = x.row(i);
        for (&c, &v) in ix.iter().zip(vx) {
            let (a, b) = (self.ptr[c as usize], self.ptr[c as usize + 1]);
            for (&k, &w) in self.pos[a..b].iter().zip(&self.val[a..b]) {
                acc[k as usize] += v * w;
            }
        }
        let sq_i = x.sq[i];
        for ((o, a), &sq) in out.iter_mut().zip(acc.iter_mut()).zip(&self.sq) {
            *o = value(kernel, *a, sq_i, sq) as f32;
            *a = 0.0;
        }
    }
}

/// `out[p, q] = k(x.row(a[p]), x.row(b[q]))`, rows of `out` in parallel.
pub fn block(
    kernel: &BuiltinKernel,
    x: &CsrRows<'_>,
    a: &[usize],
    b: &[usize],
    out: ArrayViewMut2<'_, f32>,
) {
    let cols = Columns::new(x, b);
    rows_against(kernel, x, a.iter().copied(), &cols, out);
}

/// `out[p, q] = k(x.row(a[p]), x.row(a[q]))`, symmetric: the upper triangle is mirrored
/// onto the lower one.
pub fn block_symmetric(
    kernel: &BuiltinKernel,
    x: &CsrRows<'_>,
    a: &[usize],
    mut out: ArrayViewMut2<'_, f32>,
) {
    block(kernel, x, a, a, out.view_mut());
    for p in 0..a.len() {
        for q in 0..p {
            out[[p, q]] = out[[q, p]];
        }
    }
}

/// Row `r` of `out` from `k(x.row(rows[r]), ·)` against `cols`, rows in parallel (each
/// thread with its own float64 accumulator).
fn rows_against(
    kernel: &BuiltinKernel,
    x: &CsrRows<'_>,
    rows: impl Iterator<Item = usize>,
    cols: &Columns,
    mut out: ArrayViewMut2<'_, f32>,
) {
    let n = cols.sq.len();
    let work: Vec<_> = out.axis_iter_mut(ndarray::Axis(0)).zip(rows).collect();
    work.into_par_iter().for_each_init(
        || vec![0f64; n],
        |acc, (mut o, i)| {
            let slots = o.as_slice_mut().expect("a fresh block is contiguous");
            cols.kernel_row(kernel, x, i, acc, slots);
        },
    );
}

/// The support vectors by column, for [`kernel_block`] (built once per prediction).
pub struct SupportColumns(Columns);

impl SupportColumns {
    /// Every row of `sv`, by column.
    pub fn new(sv: &CsrRows<'_>) -> Self {
        let all: Vec<usize> = (0..sv.nrows()).collect();
        SupportColumns(Columns::new(sv, &all))
    }
}

/// Kernel values `out[r, s] = k(x.row(first + r), sv.row(s))` of the test rows
/// `first..first + out.nrows()` against every support vector (`sv`: their columns;
/// `x` has as many columns as the support vectors, which the caller checks).
pub fn kernel_block(
    kernel: &BuiltinKernel,
    x: &CsrRows<'_>,
    first: usize,
    sv: &SupportColumns,
    out: ArrayViewMut2<'_, f32>,
) {
    let rows = first..first + out.nrows();
    rows_against(kernel, x, rows, &sv.0, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svm::Kernel;
    use ndarray::{Array2, Axis};

    /// A dense matrix with about a third of its values zero, and its CSR arrays.
    fn sample(n: usize, d: usize, seed: u64) -> (Array2<f32>, Vec<f64>, Vec<i64>, Vec<i64>) {
        let mut rng = crate::rng::Rng::new(seed);
        let mut dense = Array2::<f32>::zeros((n, d));
        let (mut data, mut indices, mut indptr) = (Vec::new(), Vec::new(), vec![0i64]);
        for i in 0..n {
            for j in 0..d {
                if rng.uniform() < 0.35 {
                    // values exact in float32, so both paths see the same numbers
                    let v = ((rng.uniform() * 8.0).round() - 4.0) / 4.0;
                    dense[[i, j]] = v as f32;
                    data.push(v);
                    indices.push(j as i64);
                }
            }
            indptr.push(data.len() as i64);
        }
        (dense, data, indices, indptr)
    }

    #[test]
    fn sparse_gram_matches_the_dense_kernels() {
        let (dense, data, indices, indptr) = sample(30, 17, 1);
        let x = CsrRows::new(&data, &indices, &indptr, 17).unwrap();
        let kernels = [
            BuiltinKernel::Linear,
            BuiltinKernel::Rbf { gamma: 0.3 },
            BuiltinKernel::Poly {
                gamma: 0.2,
                coef0: 1.0,
                degree: 3,
            },
            BuiltinKernel::Sigmoid {
                gamma: 0.1,
                coef0: -0.5,
            },
        ];
        let cols: Vec<usize> = (0..30).rev().collect();
        for k in kernels {
            let g = SparseGram::new(k, &x);
            let mut want = Array2::<f32>::zeros((30, 30));
            k.block(dense.view(), dense.view(), want.view_mut());
            for i in 0..30 {
                let mut got = vec![0f32; 30];
                g.row(i, &cols, &mut got);
                for (t, &c) in cols.iter().enumerate() {
                    let w = want[[i, c]];
                    assert!(
                        (got[t] - w).abs() <= 1e-5 * (1.0 + w.abs()),
                        "{k:?} {i} {c}"
                    );
                }
                assert!((g.diag(i) as f32 - want[[i, i]]).abs() <= 1e-5 * (1.0 + want[[i, i]]));
            }
            let mut block = Array2::<f32>::zeros((7, 30));
            kernel_block(&k, &x, 5, &SupportColumns::new(&x), block.view_mut());
            for (r, row) in block.axis_iter(Axis(0)).enumerate() {
                for (s, &v) in row.iter().enumerate() {
                    let w = want[[5 + r, s]];
                    assert!((v - w).abs() <= 1e-5 * (1.0 + w.abs()));
                }
            }
        }
    }

    #[test]
    fn shared_blocks_and_fits_match_the_dense_path() {
        let (dense, data, indices, indptr) = sample(60, 23, 4);
        let x = CsrRows::new(&data, &indices, &indptr, 23).unwrap();
        let k = BuiltinKernel::Rbf { gamma: 0.2 };
        let (a, b): (Vec<usize>, Vec<usize>) = (0..60).partition(|i| i % 3 == 0);
        let mut want = Array2::<f32>::zeros((60, 60));
        k.block(dense.view(), dense.view(), want.view_mut());
        let mut ab = Array2::<f32>::zeros((a.len(), b.len()));
        block(&k, &x, &a, &b, ab.view_mut());
        let mut aa = Array2::<f32>::zeros((a.len(), a.len()));
        block_symmetric(&k, &x, &a, aa.view_mut());
        for (p, &i) in a.iter().enumerate() {
            for (q, &j) in b.iter().enumerate() {
                assert!((ab[[p, q]] - want[[i, j]]).abs() <= 1e-5);
            }
            for (q, &j) in a.iter().enumerate() {
                assert!((aa[[p, q]] - want[[i, j]]).abs() <= 1e-5);
                assert_eq!(aa[[p, q]], aa[[q, p]]);
            }
        }
        // the shared-block fit and the on-demand fit give the dense path's model
        use crate::runtime::Monitor;
        use crate::svm::{fit_ovo_features_with, fit_ovo_sparse_with, Classes, SolverParams};
        let y: Vec<usize> = (0..60).map(|i| (i * 7 % 60) / 20).collect();
        let c = vec![1.0; 60];
        let classes = Classes::new(&y, 3, &c);
        let dense_fit = fit_ovo_features_with(
            &k,
            dense.view(),
            &classes,
            &SolverParams::default(),
            None,
            &Monitor::none(),
        )
        .unwrap();
        for cache_bytes in [SolverParams::default().cache_bytes, 1] {
            let params = SolverParams {
                cache_bytes,
                ..SolverParams::default()
            };
            let fit = fit_ovo_sparse_with(k, &x, &classes, &params, None, &Monitor::none());
            let fit = fit.unwrap();
            assert_eq!(fit.support, dense_fit.support, "cache {cache_bytes}");
            for (u, v) in fit.rho.iter().zip(&dense_fit.rho) {
                assert!((u - v).abs() <= 1e-3 * (1.0 + v.abs()));
            }
        }
    }

    #[test]
    fn long_rows_split_across_the_pool_agree() {
        let (_, data, indices, indptr) = sample(2500, 40, 2);
        let x = CsrRows::new(&data, &indices, &indptr, 40).unwrap();
        let g = SparseGram::new(BuiltinKernel::Rbf { gamma: 0.05 }, &x);
        let cols: Vec<usize> = (0..2500).collect();
        let mut whole = vec![0f32; 2500];
        g.row(3, &cols, &mut whole);
        for (c, &v) in cols.iter().zip(&whole).step_by(97) {
            let mut one = [0f32];
            g.row(3, &[*c], &mut one);
            assert_eq!(one[0], v);
        }
    }

    #[test]
    fn malformed_arrays_are_shape_errors() {
        let data = [1.0, 2.0, 3.0];
        let ok = CsrRows::new(&data, &[0, 2, 1], &[0, 2, 3], 3).unwrap();
        assert_eq!((ok.nrows(), ok.ncols()), (2, 3));
        let cases: [(&[i64], &[i64], usize, &str); 5] = [
            (&[0, 2, 1], &[1, 2, 3], 3, "start at 0"),
            (&[0, 2, 1], &[0, 2, 1, 3], 3, "decrease"),
            (&[0, 2, 1], &[0, 2, 2], 3, "end at"),
            (&[0, 3, 1], &[0, 2, 3], 3, "outside 0..3"),
            (&[0, 2], &[0, 2, 3], 3, "2 column indices for 3 values"),
        ];
        for (indices, indptr, n, msg) in cases {
            match CsrRows::new(&data, indices, indptr, n) {
                Err(SvmError::Shape(m)) => assert!(m.contains(msg), "{m} lacks {msg}"),
                _ => panic!("accepted {indices:?} {indptr:?}"),
            }
        }
    }
}
