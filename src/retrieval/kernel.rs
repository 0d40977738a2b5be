//! The f32 score kernels of the exact engine: `C = A B^T` on packed panels.
//!
//! Every score is one sequential fused multiply-add chain over the dimensions,
//! `s = fma(a[d-1], b[d-1], ... fma(a[1], b[1], a[0] * b[0]))`, whatever the kernel, the
//! tile shape or the thread: the AVX-512 and AVX2 kernels give bit-identical scores (and
//! the same as the `gemm` crate's packed kernels, which accumulate the same way).
//!
//! Kernels, chosen at run time ([`Kernel::detect`]):
//! - `Avx512`: 8 query rows x 48 gallery rows per micro-kernel (24 zmm accumulators);
//! - `Avx2`: AVX2 + FMA, 6 x 16 (12 ymm accumulators);
//! - `Portable`: the `gemm` crate on the unpacked rows (other CPUs).
//!
//! Operands are packed in panels: rows `p*w .. p*w + w` of a matrix stored dimension by
//! dimension (`w` values per dimension, zero-padded), so that the micro-kernel reads
//! both operands contiguously. With `w = 1` packing is the identity.

use rayon::prelude::*;
use std::borrow::Cow;

/// A score kernel (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AVX-512F, 8 x 48 micro-kernel.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx512,
    /// AVX2 + FMA, 6 x 16 micro-kernel.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2,
    /// The `gemm` crate on row-major operands.
    Portable,
}

/// Environment variable that restricts the kernel (`avx512`, `avx2` or `portable`):
/// for tests and benchmarks. A kernel the CPU lacks is never used.
pub(crate) const KERNEL_ENV: &str = "GRIDMATCH_KNN_KERNEL";

impl Kernel {
    /// The best kernel this CPU supports, at most the one named by [`KERNEL_ENV`].
    pub fn detect() -> Kernel {
        let cap = std::env::var(KERNEL_ENV).ok();
        let allowed = |k: Kernel| match cap.as_deref() {
            Some("portable") => k == Kernel::Portable,
            Some("avx2") => k != Kernel::Avx512,
            _ => true,
        };
        Kernel::supported()
            .into_iter()
            .find(|&k| allowed(k))
            .unwrap_or(Kernel::Portable)
    }

    /// The kernels this CPU can run, best first.
    pub fn supported() -> Vec<Kernel> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.push(Kernel::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                out.push(Kernel::Avx2);
            }
        }
        out.push(Kernel::Portable);
        out
    }

    /// Query rows per panel.
    pub fn mr(self) -> usize {
        match self {
            Kernel::Avx512 => 8,
            Kernel::Avx2 => 6,
            Kernel::Portable => 1,
        }
    }

    /// Gallery rows per panel.
    pub fn nr(self) -> usize {
        match self {
            Kernel::Avx512 => 48,
            Kernel::Avx2 => 16,
            Kernel::Portable => 1,
        }
    }

    /// Pack the `rows x d` row-major matrix `a` in panels of `w` rows.
    pub fn pack(a: &[f32], rows: usize, d: usize, w: usize) -> Cow<'_, [f32]> {
        assert!(a.len() >= rows * d && w >= 1);
        if w == 1 {
            return Cow::Borrowed(&a[..rows * d]);
        }
        let panels = rows.div_ceil(w);
        let mut out = vec![0f32; panels * w * d];
        let fill = |(p, panel): (usize, &mut [f32])| {
            for r in 0..w.min(rows - p * w) {
                let row = &a[(p * w + r) * d..(p * w + r + 1) * d];
                for (k, &v) in row.iter().enumerate() {
                    panel[k * w + r] = v;
                }
            }
        };
        if rows * d >= 1 << 18 {
            out.par_chunks_mut(w * d).enumerate().for_each(fill);
        } else {
            out.chunks_mut(w * d).enumerate().for_each(fill);
        }
        Cow::Owned(out)
    }

    /// `dst (m x n, row-major) = A B^T` where `a` holds the `m` rows packed in panels of
    /// [`Self::mr`] rows and `b` the `n` rows packed in panels of [`Self::nr`] rows.
    pub fn tile(self, dst: &mut [f32], a: &[f32], m: usize, b: &[f32], n: usize, d: usize) {
        if m == 0 || n == 0 {
            return;
        }
        let (mr, nr) = (self.mr(), self.nr());
        assert!(dst.len() >= m * n);
        assert!(a.len() >= m.div_ceil(mr) * mr * d && b.len() >= n.div_ceil(nr) * nr * d);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: detect() returns Avx512 only when the CPU has AVX-512F; the sizes
            // were checked above.
            Kernel::Avx512 => unsafe { x86::tile_avx512(dst, a, m, b, n, d) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: detect() returns Avx2 only when the CPU has AVX2 and FMA.
            Kernel::Avx2 => unsafe { x86::tile_avx2(dst, a, m, b, n, d) },
            _ => gemm_nt(dst, a, b, m, n, d),
        }
    }

    /// Values per row of the blocks [`Self::blocks`] hands over: one micro-tile's
    /// [`Self::nr`], or two side by side for AVX2 (6 x 32: the scan's work per row is
    /// then shared by 32 columns, as AVX-512's by 48).
    pub fn block_width(self) -> usize {
        match self {
            Kernel::Avx2 => 2 * self.nr(),
            _ => self.nr(),
        }
    }

    /// The scores of [`Self::tile`], handed over one block at a time instead of
    /// stored: `f(r0, c0, rows, cols, block)` gets rows `r0..r0 + rows` x columns
    /// `c0..c0 + cols` in `block` (row-major, [`Self::block_width`] values per row; the
    /// values past `cols` are scores of padding, or stale, and must be ignored). Gallery
    /// panels are visited in increasing order, each with every query panel, so each row
    /// sees its columns in increasing order. The block stays in L1: no `m x n` tile is
    /// written and read back. Returns `false` (calling nothing) for the `Portable`
    /// kernel.
    pub fn blocks<F>(self, a: &[f32], m: usize, b: &[f32], n: usize, d: usize, f: &mut F) -> bool
    where
        F: FnMut(usize, usize, usize, usize, &[f32]),
    {
        if self == Kernel::Portable {
            return false;
        }
        if m == 0 || n == 0 {
            return true;
        }
        let (mr, nr) = (self.mr(), self.nr());
        assert!(a.len() >= m.div_ceil(mr) * mr * d && b.len() >= n.div_ceil(nr) * nr * d);
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: detect() returns Avx512 only when the CPU has AVX-512F; the sizes
            // were checked above.
            Kernel::Avx512 => unsafe { x86::blocks_avx512(a, m, b, n, d, f) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: detect() returns Avx2 only when the CPU has AVX2 and FMA.
            Kernel::Avx2 => unsafe { x86::blocks_avx2(a, m, b, n, d, f) },
            _ => return false,
        }
        true
    }
}

/// `dst (m x n, row-major) = a (m x d, row-major) * b (n x d, row-major)^T` by the `gemm`
/// crate.
fn gemm_nt(dst: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, d: usize) {
    assert!(dst.len() >= m * n && a.len() >= m * d && b.len() >= n * d);
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the slices hold at least the m*n, m*d and n*d elements addressed through
    // the strides below (checked above); dst does not alias a or b.
    unsafe {
        gemm::gemm(
            m,
            n,
            d,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            d as isize,
            b.as_ptr(),
            d as isize,
            1,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

// The AVX-512 intrinsics are stable since Rust 1.89 (the crate's rust-version).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Walk the panels: gallery panels outer (one stays in L1 while every query panel
    /// passes), query panels inner. A partial last gallery panel goes through a local
    /// buffer. `$micro(pa, pb, d, c, ldc, rows)` writes `rows` full rows of a panel.
    macro_rules! walk {
        ($micro:ident, $mr:expr, $nr:expr, $dst:expr, $a:expr, $m:expr, $b:expr, $n:expr, $d:expr) => {{
            let (dst, a, m, b, n, d) = ($dst, $a, $m, $b, $n, $d);
            // SAFETY (for the block): panel offsets stay within the sizes checked by
            // `Kernel::tile`; the micro-kernel writes `rows` rows of `$nr` values at
            // stride `n` (full panel) or into `tmp`.
            unsafe {
                let mut tmp = [0f32; $mr * $nr];
                for j in 0..n.div_ceil($nr) {
                    let cols = (n - j * $nr).min($nr);
                    let pb = b.as_ptr().add(j * $nr * d);
                    for i in 0..m.div_ceil($mr) {
                        let rows = (m - i * $mr).min($mr);
                        let pa = a.as_ptr().add(i * $mr * d);
                        if cols == $nr {
                            let c = dst.as_mut_ptr().add(i * $mr * n + j * $nr);
                            $micro(pa, pb, d, c, n, rows);
                        } else {
                            $micro(pa, pb, d, tmp.as_mut_ptr(), $nr, rows);
                            for r in 0..rows {
                                let o = (i * $mr + r) * n + j * $nr;
                                dst[o..o + cols].copy_from_slice(&tmp[r * $nr..r * $nr + cols]);
                            }
                        }
                    }
                }
            }
        }};
    }

    /// A micro-tile's scores, cache-line aligned.
    #[repr(C, align(64))]
    struct Block<const L: usize>([f32; L]);

    /// Like `walk!`, but the micro-tiles of `$pp` adjacent gallery panels go to a local
    /// block (`$mr` rows x `$pp · $nr` columns, in L1) handed to
    /// `$f(r0, c0, rows, cols, block)` (see `Kernel::blocks`).
    macro_rules! walk_blocks {
        ($micro:ident, $mr:expr, $nr:expr, $pp:expr, $a:expr, $m:expr, $b:expr, $n:expr, $d:expr, $f:expr) => {{
            let (a, m, b, n, d, f) = ($a, $m, $b, $n, $d, $f);
            let mut blk = Block([0f32; $mr * $pp * $nr]);
            let panels = n.div_ceil($nr);
            for j in (0..panels).step_by($pp) {
                let cols = (n - j * $nr).min($pp * $nr);
                let here = (panels - j).min($pp);
                for i in 0..m.div_ceil($mr) {
                    let rows = (m - i * $mr).min($mr);
                    for h in 0..here {
                        // SAFETY: panel offsets stay within the sizes checked by
                        // `Kernel::blocks`; the micro-kernel writes `rows` rows of `$nr`
                        // values at stride `$pp · $nr` into `blk`, from column `h · $nr`.
                        unsafe {
                            let pa = a.as_ptr().add(i * $mr * d);
                            let pb = b.as_ptr().add((j + h) * $nr * d);
                            let c = blk.0.as_mut_ptr().add(h * $nr);
                            $micro(pa, pb, d, c, $pp * $nr, rows);
                        }
                    }
                    f(i * $mr, j * $nr, rows, cols, &blk.0[..]);
                }
            }
        }};
    }

    /// # Safety
    /// The CPU must have AVX-512F; the sizes must be those checked by `Kernel::blocks`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn blocks_avx512<F>(
        a: &[f32],
        m: usize,
        b: &[f32],
        n: usize,
        d: usize,
        f: &mut F,
    ) where
        F: FnMut(usize, usize, usize, usize, &[f32]),
    {
        walk_blocks!(micro_avx512, MR512, V512 * 16, 1, a, m, b, n, d, f);
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA; the sizes must be those checked by
    /// `Kernel::blocks`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn blocks_avx2<F>(
        a: &[f32],
        m: usize,
        b: &[f32],
        n: usize,
        d: usize,
        f: &mut F,
    ) where
        F: FnMut(usize, usize, usize, usize, &[f32]),
    {
        // Two adjacent gallery panels per block (6 x 32), both in L1 (16 KiB at d = 128).
        walk_blocks!(micro_avx2, MR256, V256 * 8, 2, a, m, b, n, d, f);
    }

    const MR512: usize = 8;
    const V512: usize = 3;

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn micro_avx512(
        pa: *const f32,
        pb: *const f32,
        d: usize,
        c: *mut f32,
        ldc: usize,
        rows: usize,
    ) {
        // SAFETY: the caller passes panels of d steps and room for `rows` rows.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); V512]; MR512];
            for k in 0..d {
                let mut b = [_mm512_setzero_ps(); V512];
                for (v, bv) in b.iter_mut().enumerate() {
                    *bv = _mm512_loadu_ps(pb.add((k * V512 + v) * 16));
                }
                let ak = pa.add(k * MR512);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*ak.add(r));
                    for (av, &bv) in acc_r.iter_mut().zip(&b) {
                        *av = _mm512_fmadd_ps(x, bv, *av);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                for (v, &av) in acc_r.iter().enumerate() {
                    _mm512_storeu_ps(c.add(r * ldc + v * 16), av);
                }
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX-512F; the sizes must be those checked by `Kernel::tile`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tile_avx512(
        dst: &mut [f32],
        a: &[f32],
        m: usize,
        b: &[f32],
        n: usize,
        d: usize,
    ) {
        walk!(micro_avx512, MR512, V512 * 16, dst, a, m, b, n, d);
    }

    const MR256: usize = 6;
    const V256: usize = 2;

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn micro_avx2(
        pa: *const f32,
        pb: *const f32,
        d: usize,
        c: *mut f32,
        ldc: usize,
        rows: usize,
    ) {
        // SAFETY: the caller passes panels of d steps and room for `rows` rows.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); V256]; MR256];
            for k in 0..d {
                let mut b = [_mm256_setzero_ps(); V256];
                for (v, bv) in b.iter_mut().enumerate() {
                    *bv = _mm256_loadu_ps(pb.add((k * V256 + v) * 8));
                }
                let ak = pa.add(k * MR256);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let x = _mm256_broadcast_ss(&*ak.add(r));
                    for (av, &bv) in acc_r.iter_mut().zip(&b) {
                        *av = _mm256_fmadd_ps(x, bv, *av);
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate().take(rows) {
                for (v, &av) in acc_r.iter().enumerate() {
                    _mm256_storeu_ps(c.add(r * ldc + v * 8), av);
                }
            }
        }
    }

    /// # Safety
    /// The CPU must have AVX2 and FMA; the sizes must be those checked by `Kernel::tile`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tile_avx2(
        dst: &mut [f32],
        a: &[f32],
        m: usize,
        b: &[f32],
        n: usize,
        d: usize,
    ) {
        walk!(micro_avx2, MR256, V256 * 8, dst, a, m, b, n, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect()
    }

    /// The defined score: one sequential fma chain.
    fn chain(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).fold(0.0f32, |s, (&x, &y)| x.mul_add(y, s))
    }

    #[test]
    fn every_kernel_is_the_fma_chain_bit_for_bit() {
        for &(m, n, d) in &[
            (1, 1, 1),
            (1, 5, 3),
            (7, 47, 128),
            (8, 48, 128),
            (13, 97, 64),
            (37, 301, 17),
            (64, 200, 128),
        ] {
            let a = rand(m * d, 1 + m as u64);
            let b = rand(n * d, 2 + n as u64);
            for kernel in Kernel::supported() {
                let pa = Kernel::pack(&a, m, d, kernel.mr());
                let pb = Kernel::pack(&b, n, d, kernel.nr());
                let mut c = vec![f32::NAN; m * n];
                kernel.tile(&mut c, &pa, m, &pb, n, d);
                for i in 0..m {
                    for j in 0..n {
                        let want = chain(&a[i * d..(i + 1) * d], &b[j * d..(j + 1) * d]);
                        let got = c[i * n + j];
                        // The gemm crate (Portable) takes another order for tiny m.
                        if kernel == Kernel::Portable && m < 4 {
                            assert!((got - want).abs() <= 1e-5 * d as f32);
                        } else {
                            assert_eq!(
                                got.to_bits(),
                                want.to_bits(),
                                "{kernel:?} {m}x{n}x{d} at {i},{j}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn blocks_hand_over_the_tile_scores() {
        for &(m, n, d) in &[(1, 1, 3), (7, 47, 128), (13, 97, 64), (37, 301, 17)] {
            let a = rand(m * d, 3 + m as u64);
            let b = rand(n * d, 4 + n as u64);
            for kernel in Kernel::supported() {
                let pa = Kernel::pack(&a, m, d, kernel.mr());
                let pb = Kernel::pack(&b, n, d, kernel.nr());
                let mut want = vec![0f32; m * n];
                kernel.tile(&mut want, &pa, m, &pb, n, d);
                let mut got = vec![f32::NAN; m * n];
                // Last column seen by each row: columns arrive in increasing order.
                let mut last = vec![None::<usize>; m];
                let nr = kernel.block_width();
                let mut f = |r0: usize, c0: usize, rows: usize, cols: usize, blk: &[f32]| {
                    for r in 0..rows {
                        assert!(last[r0 + r].is_none_or(|l| l < c0));
                        last[r0 + r] = Some(c0 + cols - 1);
                        for c in 0..cols {
                            got[(r0 + r) * n + c0 + c] = blk[r * nr + c];
                        }
                    }
                };
                let fused = kernel.blocks(&pa, m, &pb, n, d, &mut f);
                assert_eq!(fused, kernel != Kernel::Portable);
                if fused {
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{kernel:?} {m}x{n}x{d}");
                }
            }
        }
    }

    #[test]
    fn packing_pads_with_zeros() {
        let a: Vec<f32> = (0..6).map(|v| v as f32).collect(); // 3 x 2
        let p = Kernel::pack(&a, 3, 2, 2);
        assert_eq!(&*p, &[0.0, 2.0, 1.0, 3.0, 4.0, 0.0, 5.0, 0.0]);
        assert!(matches!(Kernel::pack(&a, 3, 2, 1), Cow::Borrowed(_)));
    }

    #[test]
    fn env_restricts_the_kernel() {
        // Only checks the parsing logic through supported(): the best kernel is first.
        let all = Kernel::supported();
        assert_eq!(all.last(), Some(&Kernel::Portable));
        assert!(all.contains(&Kernel::detect()));
    }
}
