//! The prefilter's AVX2 code: the integer micro-kernel (`vpmaddubsw` on the quantized
//! panels), the f32 bound and its mask per panel, and the exact FMA chains of the
//! candidates that survive.

use super::quantize::Gallery;
use super::{MR, NR, WIDEN};
use std::arch::x86_64::*;

/// For panels `panels` of `gal` against the `MR` query rows of `a` (row stride
/// `stride`) with parameters `params[r]` (scale, bound factors, threshold), set
/// `bits[(p - panels.start) * MR + r]` to the mask of [`mask`].
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn scan_block(
    a: &[u8],
    stride: usize,
    gal: &Gallery,
    panels: std::ops::Range<usize>,
    params: &[[f32; 4]; MR],
    bits: &mut [u32],
) {
    assert!(bits.len() >= panels.len() * MR);
    for (pi, p) in panels.enumerate() {
        let mut sums = [0i32; MR * NR];
        // SAFETY: the caller checked AVX2 and FMA.
        unsafe { tile(a, stride, gal.panel(p), gal.quads, &mut sums) };
        let j0 = p * NR;
        let cols = [
            &gal.scale[j0..],
            &gal.norm[j0..],
            &gal.residual[j0..],
            &gal.shift[j0..],
        ];
        for r in 0..MR {
            if params[r][3] == f32::INFINITY {
                continue;
            }
            // SAFETY: as above.
            bits[pi * MR + r] = unsafe {
                mask(
                    &sums[r * NR..(r + 1) * NR],
                    &gal.offset[j0..],
                    cols,
                    params[r],
                )
            };
        }
    }
}

/// `sums[r * NR + c] = sum_k a[r][k] * b[c][k]` for the `MR` unsigned query rows of
/// `a` (row stride `stride` bytes) and the packed panel `b` of `NR` signed columns,
/// over `quads` groups of four dimensions.
// Not inlined: compiled on its own, its accumulators get the registers (inlined into
// scan_block, LLVM spilled one to the stack inside the inner loop: evaluate 0.61 s
// against 0.38 s at 20k x 20k x 128 on the EPYC).
#[inline(never)]
#[target_feature(enable = "avx2")]
unsafe fn tile(a: &[u8], stride: usize, b: &[i8], quads: usize, sums: &mut [i32; MR * NR]) {
    assert!(a.len() >= MR * stride && stride >= quads * 4 && b.len() >= quads * 4 * NR);
    // SAFETY: the assert above bounds every pointer read and write below.
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); 2 * MR];
        let ap = a.as_ptr();
        let bp = b.as_ptr();
        let mut t0 = 0;
        while t0 < quads {
            let t1 = (t0 + WIDEN).min(quads);
            let mut part = [_mm256_setzero_si256(); 2 * MR];
            for t in t0..t1 {
                let b0 = _mm256_loadu_si256(bp.add(t * 4 * NR) as *const __m256i);
                let b1 = _mm256_loadu_si256(bp.add(t * 4 * NR + 32) as *const __m256i);
                for r in 0..MR {
                    let word = (ap.add(r * stride + t * 4) as *const i32).read_unaligned();
                    let x = _mm256_set1_epi32(word);
                    part[2 * r] = _mm256_add_epi16(part[2 * r], _mm256_maddubs_epi16(x, b0));
                    part[2 * r + 1] =
                        _mm256_add_epi16(part[2 * r + 1], _mm256_maddubs_epi16(x, b1));
                }
            }
            for (s, p) in acc.iter_mut().zip(&part) {
                *s = _mm256_add_epi32(*s, _mm256_madd_epi16(*p, ones));
            }
            t0 = t1;
        }
        for r in 0..MR {
            let out = sums.as_mut_ptr().add(r * NR);
            _mm256_storeu_si256(out as *mut __m256i, acc[2 * r]);
            _mm256_storeu_si256(out.add(8) as *mut __m256i, acc[2 * r + 1]);
        }
    }
}

/// Bit `c` set when column `c` of one micro-kernel row passes the bound: `sums`
/// holds the row's [`NR`] integer products, `offset` and `cols` (scale, norm,
/// residual, shift) the columns' terms (at least [`NR`] each), `q` the query's
/// scale, bound factors and threshold.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn mask(sums: &[i32], offset: &[i32], cols: [&[f32]; 4], q: [f32; 4]) -> u32 {
    assert!(sums.len() >= NR && offset.len() >= NR && cols.iter().all(|c| c.len() >= NR));
    let [scale, norm, residual, shift] = cols;
    let [qs, qa, qb, qt] = q.map(|v| _mm256_set1_ps(v));
    let mut bits = 0u32;
    // SAFETY: the assert above bounds every read.
    unsafe {
        for h in 0..NR / 8 {
            let o = h * 8;
            let s = _mm256_loadu_si256(sums.as_ptr().add(o) as *const __m256i);
            let off = _mm256_loadu_si256(offset.as_ptr().add(o) as *const __m256i);
            let int = _mm256_cvtepi32_ps(_mm256_sub_epi32(s, off));
            let y = _mm256_mul_ps(qs, _mm256_loadu_ps(scale.as_ptr().add(o)));
            let z = _mm256_fmsub_ps(
                qb,
                _mm256_loadu_ps(residual.as_ptr().add(o)),
                _mm256_loadu_ps(shift.as_ptr().add(o)),
            );
            let z = _mm256_fmadd_ps(qa, _mm256_loadu_ps(norm.as_ptr().add(o)), z);
            let ub = _mm256_fmadd_ps(int, y, z);
            let pass = _mm256_cmp_ps::<_CMP_GE_OQ>(ub, qt);
            bits |= (_mm256_movemask_ps(pass) as u32) << o;
        }
    }
    bits
}

/// Append to `out` the f32 inner products of `q` (`d` values) with gallery rows
/// `idx` (rows of `d` values in `g`): per row the FMA chain over the dimensions in
/// order, as the kernels compute it, eight rows at a time so that the chains
/// overlap.
#[target_feature(enable = "fma")]
pub(super) unsafe fn chains(q: &[f32], g: &[f32], d: usize, idx: &[u32], out: &mut Vec<f32>) {
    assert!(q.len() >= d && idx.iter().all(|&j| (j as usize + 1) * d <= g.len()));
    for batch in idx.chunks(8) {
        let last = batch.len() - 1;
        // SAFETY: the assert above bounds every row's d values and q's.
        unsafe {
            let rows: [*const f32; 8] =
                std::array::from_fn(|c| g.as_ptr().add(batch[c.min(last)] as usize * d));
            let mut s = [0f32; 8];
            for k in 0..d {
                let x = *q.get_unchecked(k);
                for c in 0..8 {
                    s[c] = x.mul_add(*rows[c].add(k), s[c]);
                }
            }
            out.extend_from_slice(&s[..batch.len()]);
        }
    }
}
