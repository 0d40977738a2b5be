//! Compilation of expression trees to flat programs.
//!
//! Every vector-valued node gets a slot of `d` numbers in a per-thread scratch buffer;
//! since each node of a tree is used once, a consumed slot is reused in place, so a
//! program needs as many slots as the tree's register pressure (3 for the paper's
//! kernel). Scalars broadcast.

use super::ast::{BinOp, Expr, Func, ValueType};
use super::ExprError;

/// Where an instruction reads a value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Src {
    X,
    Y,
    Slot(usize),
    Sca(usize),
    Const(f64),
}

impl Src {
    pub(super) fn is_vector(self) -> bool {
        matches!(self, Src::X | Src::Y | Src::Slot(_))
    }
}

/// Elementwise binary operations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Bin {
    Op(BinOp),
    F(Func),
}

impl Bin {
    #[inline(always)]
    pub(super) fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            Bin::Op(o) => o.apply(a, b),
            Bin::F(f) => f.apply2(a, b),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Instr {
    /// `slot = f(slot)` (the input was copied or computed into `slot`).
    UnaryV { f: Option<Func>, slot: usize },
    /// `sca[out] = f(a)` for a scalar input.
    UnaryS { f: Option<Func>, a: Src, out: usize },
    /// `slot = copy of x or y`.
    Load { src: Src, slot: usize },
    /// `slot = f(slot, b)`.
    BinLeft { f: Bin, slot: usize, b: Src },
    /// `slot = f(a, slot)`.
    BinRight { f: Bin, a: Src, slot: usize },
    /// `sca[out] = f(a, b)` for scalar inputs.
    BinS { f: Bin, a: Src, b: Src, out: usize },
    /// `slot = f(a, b)` for operands that are not slots (saves copying `a` first).
    BinNew { f: Bin, a: Src, b: Src, slot: usize },
    /// `sca[out] = red(f(a, b))` for a one-operand reduction `red` (`norm1`, `l1`,
    /// `l2`) of an elementwise binary result, without storing that result.
    ReduceBin {
        red: Func,
        f: Bin,
        a: Src,
        b: Src,
        out: usize,
    },
    /// `sca[out] = reduction(a[, b])`.
    Reduce {
        f: Func,
        a: Src,
        b: Option<Src>,
        out: usize,
    },
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Program {
    pub(super) instrs: Vec<Instr>,
    pub(super) n_slots: usize,
    pub(super) n_sca: usize,
    pub(super) result: Src,
    pub(super) uses_y: bool,
    pub(super) value_type: ValueType,
    pub(super) text: String,
    /// The source tree (the sparse evaluator analyses it).
    pub(super) expr: Expr,
}

struct Compiler {
    instrs: Vec<Instr>,
    free: Vec<usize>,
    n_slots: usize,
    n_sca: usize,
}

impl Compiler {
    fn slot(&mut self) -> usize {
        if let Some(s) = self.free.pop() {
            s
        } else {
            self.n_slots += 1;
            self.n_slots - 1
        }
    }

    fn sca(&mut self) -> usize {
        self.n_sca += 1;
        self.n_sca - 1
    }

    fn release(&mut self, s: Src) {
        if let Src::Slot(k) = s {
            self.free.push(k);
        }
    }

    /// A vector value in a slot we may overwrite.
    fn own(&mut self, s: Src) -> usize {
        match s {
            Src::Slot(k) => k,
            other => {
                let k = self.slot();
                self.instrs.push(Instr::Load {
                    src: other,
                    slot: k,
                });
                k
            }
        }
    }

    fn unary(&mut self, f: Option<Func>, a: Src) -> Src {
        if let Src::Const(c) = a {
            return Src::Const(match f {
                None => -c,
                Some(f) => f.apply1(c),
            });
        }
        if a.is_vector() {
            let slot = self.own(a);
            self.instrs.push(Instr::UnaryV { f, slot });
            Src::Slot(slot)
        } else {
            let out = self.sca();
            self.instrs.push(Instr::UnaryS { f, a, out });
            Src::Sca(out)
        }
    }

    fn binary(&mut self, f: Bin, a: Src, b: Src) -> Src {
        if let (Src::Const(x), Src::Const(y)) = (a, b) {
            return Src::Const(f.apply(x, y));
        }
        let is_slot = |s: Src| matches!(s, Src::Slot(_));
        if (a.is_vector() || b.is_vector()) && !is_slot(a) && !is_slot(b) {
            let slot = self.slot();
            self.instrs.push(Instr::BinNew { f, a, b, slot });
            return Src::Slot(slot);
        }
        match (a.is_vector(), b.is_vector()) {
            (false, false) => {
                let out = self.sca();
                self.instrs.push(Instr::BinS { f, a, b, out });
                Src::Sca(out)
            }
            (_, true) if matches!(b, Src::Slot(_)) && !matches!(a, Src::Slot(_)) => {
                let slot = self.own(b);
                self.instrs.push(Instr::BinRight { f, a, slot });
                Src::Slot(slot)
            }
            (true, _) => {
                let slot = self.own(a);
                self.instrs.push(Instr::BinLeft { f, slot, b });
                self.release(b);
                Src::Slot(slot)
            }
            (false, true) => {
                let slot = self.own(b);
                self.instrs.push(Instr::BinRight { f, a, slot });
                Src::Slot(slot)
            }
        }
    }

    fn node(&mut self, e: &Expr) -> Result<Src, ExprError> {
        crate::expr::grow(|| {
            Ok(match e {
                Expr::Var(0) => Src::X,
                Expr::Var(1) => Src::Y,
                Expr::Var(v) => {
                    return Err(ExprError::Invalid(format!(
                        "unbound placeholder variable number {v}"
                    )))
                }
                Expr::Const(c) => Src::Const(*c),
                Expr::Neg(a) => {
                    let a = self.node(a)?;
                    self.unary(None, a)
                }
                Expr::Bin(op, a, b) => {
                    let a = self.node(a)?;
                    let b = self.node(b)?;
                    self.binary(Bin::Op(*op), a, b)
                }
                Expr::Call(f, args) => {
                    let srcs = args
                        .iter()
                        .map(|a| self.node(a))
                        .collect::<Result<Vec<_>, _>>()?;
                    match (f.is_reduction(), srcs.as_slice()) {
                        (true, [a]) => self.reduce(*f, *a, None),
                        (true, [a, b]) => self.reduce(*f, *a, Some(*b)),
                        (false, [a]) => self.unary(Some(*f), *a),
                        (false, [a, b]) => self.binary(Bin::F(*f), *a, *b),
                        _ => {
                            return Err(ExprError::Invalid(format!(
                                "{} takes {} argument(s), got {}",
                                f.name(),
                                f.arity(),
                                srcs.len()
                            )))
                        }
                    }
                }
            })
        })
    }

    fn reduce(&mut self, f: Func, a: Src, b: Option<Src>) -> Src {
        let out = self.sca();
        if let (Func::Norm1 | Func::L1 | Func::L2, Src::Slot(k), None) = (f, a, b) {
            // Fuse with the elementwise binary operation that produced the slot.
            let fused = match self.instrs.last() {
                Some(&Instr::BinLeft { f: g, slot, b }) if slot == k => Some((g, a, b)),
                Some(&Instr::BinRight { f: g, a: l, slot }) if slot == k => Some((g, l, a)),
                Some(&Instr::BinNew {
                    f: g,
                    a: l,
                    b: r,
                    slot,
                }) if slot == k => Some((g, l, r)),
                _ => None,
            };
            if let Some((g, l, r)) = fused {
                self.instrs.pop();
                self.instrs.push(Instr::ReduceBin {
                    red: f,
                    f: g,
                    a: l,
                    b: r,
                    out,
                });
                self.release(a);
                return Src::Sca(out);
            }
        }
        self.instrs.push(Instr::Reduce { f, a, b, out });
        self.release(a);
        if let Some(b) = b {
            self.release(b);
        }
        Src::Sca(out)
    }
}

impl Program {
    /// Compile an expression.
    pub fn compile(e: &Expr) -> Result<Program, ExprError> {
        let mut c = Compiler {
            instrs: Vec::new(),
            free: Vec::new(),
            n_slots: 0,
            n_sca: 0,
        };
        let result = c.node(e)?;
        Ok(Program {
            instrs: c.instrs,
            n_slots: c.n_slots,
            n_sca: c.n_sca,
            result,
            uses_y: e.uses_var(1),
            value_type: e.value_type(),
            text: e.to_string(),
            expr: e.clone(),
        })
    }
}
