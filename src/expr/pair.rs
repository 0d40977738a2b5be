//! The per-pair evaluator ([`PairEvaluator`]): one compiled [`Program`] run on one pair
//! of vectors (a kernel value) or one row (a transform), with per-thread scratch slots
//! and scalar registers allocated once and reused for every pair. On the sparse path the
//! operands are gathered lanes and the reductions are [`super::weighted`]'s.

use super::compile::{Instr, Program, Src};
use super::fastmath::Madd;
use super::simd::{
    bin_dispatch, bin_left, bin_new, bin_right, reduce, reduce_bin, unary_inplace, unary_scalar,
    View,
};
use super::weighted::{reduce_bin_weighted, reduce_weighted, Weights, EXTRA_LANES};

/// Per-thread evaluation state for one [`Program`] and feature count: scratch slots and
/// scalar registers, allocated once and reused for every pair.
pub struct PairEvaluator<'p> {
    pub(super) prog: &'p Program,
    /// Length of the operand vectors of the current run (the feature count, or the
    /// number of gathered lanes on the sparse path).
    pub(super) d: usize,
    slots: Vec<f64>,
    sca: Vec<f64>,
    /// Sparse path: how the reductions weight the gathered lanes (`None`: dense).
    pub(super) wt: Option<Weights>,
    /// Sparse path: gathered `x` and `y` lanes.
    pub(super) gx: Vec<f64>,
    pub(super) gy: Vec<f64>,
}

impl PairEvaluator<'_> {
    #[inline(always)]
    fn view<'a>(&'a self, s: Src, x: &'a [f64], y: &'a [f64], slots: &'a [f64]) -> View<'a> {
        match s {
            Src::X => View::V(x),
            Src::Y => View::V(y),
            Src::Slot(k) => View::V(&slots[k * self.d..(k + 1) * self.d]),
            Src::Sca(k) => View::C(self.sca[k]),
            Src::Const(c) => View::C(c),
        }
    }

    #[inline(always)]
    fn scalar(&self, s: Src) -> f64 {
        match s {
            Src::Sca(k) => self.sca[k],
            Src::Const(c) => c,
            _ => f64::NAN,
        }
    }

    /// Run the program on one pair; afterwards the result is in [`Self::result`].
    #[inline(always)]
    fn run<M: Madd>(&mut self, x: &[f64], y: &[f64]) {
        let d = self.d;
        let mut slots = std::mem::take(&mut self.slots);
        for ins in &self.prog.instrs {
            match *ins {
                Instr::Load { src, slot } => {
                    let from = if src == Src::Y { y } else { x };
                    slots[slot * d..(slot + 1) * d].copy_from_slice(from);
                }
                Instr::UnaryV { f, slot } => {
                    unary_inplace::<M>(f, &mut slots[slot * d..(slot + 1) * d])
                }
                Instr::UnaryS { f, a, out } => self.sca[out] = unary_scalar::<M>(f, self.scalar(a)),
                Instr::BinS { f, a, b, out } => {
                    self.sca[out] = f.apply(self.scalar(a), self.scalar(b));
                }
                Instr::BinLeft { f, slot, b } | Instr::BinRight { f, a: b, slot } => {
                    let left = matches!(ins, Instr::BinLeft { .. });
                    let (o, other): (&mut [f64], View<'_>) = match b {
                        Src::Slot(k) => {
                            let (o, other) = two_slots(&mut slots, d, slot, k);
                            (o, View::V(other))
                        }
                        Src::X => (&mut slots[slot * d..(slot + 1) * d], View::V(x)),
                        Src::Y => (&mut slots[slot * d..(slot + 1) * d], View::V(y)),
                        Src::Sca(k) => (&mut slots[slot * d..(slot + 1) * d], View::C(self.sca[k])),
                        Src::Const(c) => (&mut slots[slot * d..(slot + 1) * d], View::C(c)),
                    };
                    if left {
                        bin_dispatch!(f, bin_left, o, other);
                    } else {
                        bin_dispatch!(f, bin_right, o, other);
                    }
                }
                Instr::BinNew { f, a, b, slot } => {
                    // (The compiler never gives BinNew a slot operand: `slots` is borrowed
                    // mutably for the output here.)
                    let operand = |s: Src| match s {
                        Src::X => View::V(x),
                        Src::Y => View::V(y),
                        Src::Sca(k) => View::C(self.sca[k]),
                        Src::Const(c) => View::C(c),
                        Src::Slot(_) => View::C(f64::NAN),
                    };
                    let (va, vb) = (operand(a), operand(b));
                    let o = &mut slots[slot * d..(slot + 1) * d];
                    bin_dispatch!(f, bin_new, o, va, vb);
                }
                Instr::ReduceBin { red, f, a, b, out } => {
                    let va = self.view(a, x, y, &slots);
                    let vb = self.view(b, x, y, &slots);
                    self.sca[out] = match &self.wt {
                        None => reduce_bin::<M>(red, f, va, vb, d),
                        Some(w) => reduce_bin_weighted::<M>(red, f, va, vb, w),
                    };
                }
                Instr::Reduce { f, a, b, out } => {
                    let va = self.view(a, x, y, &slots);
                    let vb = b.map(|b| self.view(b, x, y, &slots));
                    self.sca[out] = match &self.wt {
                        None => reduce::<M>(f, va, vb, d),
                        Some(w) => reduce_weighted::<M>(f, va, vb, w),
                    };
                }
            }
        }
        self.slots = slots;
    }

    /// Evaluate a scalar-valued program (a kernel) on one pair.
    #[inline(always)]
    pub(super) fn kernel<M: Madd>(&mut self, x: &[f64], y: &[f64]) -> f64 {
        self.run::<M>(x, y);
        match self.prog.result {
            Src::Sca(k) => self.sca[k],
            Src::Const(c) => c,
            _ => f64::NAN,
        }
    }

    /// Evaluate a program on one row (`y` = `x`) into `out` (`d` values; a scalar
    /// result is broadcast).
    #[inline(always)]
    pub(super) fn transform<M: Madd>(&mut self, x: &[f64], out: &mut [f64]) {
        self.run::<M>(x, x);
        match self.prog.result {
            Src::X | Src::Y => out.copy_from_slice(x),
            Src::Slot(k) => out.copy_from_slice(&self.slots[k * self.d..(k + 1) * self.d]),
            Src::Sca(k) => out.fill(self.sca[k]),
            Src::Const(c) => out.fill(c),
        }
    }
}

fn two_slots(buf: &mut [f64], d: usize, a: usize, b: usize) -> (&mut [f64], &[f64]) {
    if a < b {
        let (lo, hi) = buf.split_at_mut(b * d);
        (&mut lo[a * d..(a + 1) * d], &hi[..d])
    } else {
        let (lo, hi) = buf.split_at_mut(a * d);
        (&mut hi[..d], &lo[b * d..(b + 1) * d])
    }
}

impl Program {
    /// An evaluator for `d` features.
    pub fn evaluator(&self, d: usize) -> PairEvaluator<'_> {
        PairEvaluator {
            prog: self,
            d,
            // (Room for the sparse path's extra lanes.)
            slots: vec![0.0; self.n_slots * (d + EXTRA_LANES)],
            sca: vec![0.0; self.n_sca],
            wt: None,
            gx: Vec::new(),
            gy: Vec::new(),
        }
    }
}
