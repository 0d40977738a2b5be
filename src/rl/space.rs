//! Search spaces as data: operands, unary and binary operation templates, the number of
//! units and the final reduction.
//!
//! A candidate is `units` units of 5 decisions each:
//! `unit = binary(unary1(op1), unary2(op2))`, where `op1`, `op2` are one of the
//! space's operands or an earlier unit's output. The candidate is `final(last unit)`.
//! Unary templates are expressions in `u`, binary templates in `a` and `b`; operands are
//! expressions in `x` (and `y` for kernels).

use super::RlError;
use crate::expr::{parse, parse_with_vars, Expr, ValueType};

/// What the candidates of a space are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceKind {
    /// Kernels `k(x, y)`: scalar-valued expressions.
    Kernel,
    /// Transforms `f(x)` of embeddings.
    Transform,
}

/// A search space.
#[derive(Debug, Clone)]
pub struct Space {
    /// Kernel or transform.
    pub kind: SpaceKind,
    /// `(name, expression)` of each operand.
    pub operands: Vec<(String, Expr)>,
    /// `(name, template in u)` of each unary operation.
    pub unary: Vec<(String, Expr)>,
    /// `(name, template in a, b)` of each binary operation.
    pub binary: Vec<(String, Expr)>,
    /// Number of units.
    pub units: usize,
    /// `(name, template in u)` applied to the last unit.
    pub final_op: (String, Expr),
}

/// Named unary operations: name → template in `u`.
pub const UNARY_NAMES: [(&str, &str); 19] = [
    ("identity", "u"),
    ("neg", "-u"),
    ("abs", "abs(u)"),
    ("square", "square(u)"),
    ("cube", "cube(u)"),
    ("sqrt_abs", "sqrt_abs(u)"),
    ("exp", "exp(u)"),
    ("sin", "sin(u)"),
    ("cos", "cos(u)"),
    ("sinh", "sinh(u)"),
    ("cosh", "cosh(u)"),
    ("tanh", "tanh(u)"),
    ("relu", "relu(u)"),
    ("min0", "min0(u)"),
    ("sigmoid", "sigmoid(u)"),
    ("softplus", "softplus(u)"),
    ("l1", "l1(u)"),
    ("l2", "l2(u)"),
    ("sign", "sign(u)"),
];

/// Named binary operations: name → template in `a`, `b`.
pub const BINARY_NAMES: [(&str, &str); 10] = [
    ("add", "a + b"),
    ("mul", "a * b"),
    ("sub", "a - b"),
    ("div", "a / b"),
    ("max", "max(a, b)"),
    ("min", "min(a, b)"),
    ("dot", "dot(a, b)"),
    ("expdiff", "expdiff(a, b)"),
    ("first", "a"),
    ("second", "b"),
];

/// Named kernel operands: the authors' 7 pairwise primitives.
pub const OPERAND_NAMES: [(&str, &str); 7] = [
    ("abs_diff", "abs(x - y)"),
    ("sum", "x + y"),
    ("abs_sq_diff", "abs(square(x) - square(y))"),
    ("l1dist", "l1dist(x, y)"),
    ("l2dist", "l2dist(x, y)"),
    ("dot", "dot(x, y)"),
    ("prod", "x * y"),
];

/// Named final operations.
pub const FINAL_NAMES: [(&str, &str); 2] = [("norm1", "norm1(u)"), ("identity", "u")];

fn lookup(
    table: &[(&str, &str)],
    item: &str,
    vars: &[&str],
    what: &str,
) -> Result<(String, Expr), RlError> {
    let item = item.trim();
    if let Some((name, t)) = table.iter().find(|(n, _)| *n == item) {
        return Ok((name.to_string(), parse_with_vars(t, vars)?));
    }
    // Not a name: a template expression.
    let is_name = !item.is_empty() && item.chars().all(|c| c.is_alphanumeric() || c == '_');
    if is_name && !vars.contains(&item) {
        let known: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
        return Err(RlError::Space(format!(
            "unknown {what} {item:?}; known names: {}; or give a template expression in {}",
            known.join(", "),
            vars.join(", ")
        )));
    }
    let e = parse_with_vars(item, vars).map_err(|e| {
        RlError::Space(format!(
            "{what} template {item:?} (variables {}): {e}",
            vars.join(", ")
        ))
    })?;
    Ok((item.to_string(), e))
}

impl Space {
    /// Build a space from names or template expressions.
    pub fn new(
        kind: SpaceKind,
        operands: &[&str],
        unary: &[&str],
        binary: &[&str],
        units: usize,
        final_op: &str,
    ) -> Result<Space, RlError> {
        for (list, what) in [
            (operands, "operands"),
            (unary, "unary operations"),
            (binary, "binary operations"),
        ] {
            if list.is_empty() {
                return Err(RlError::Space(format!("the search space has no {what}")));
            }
        }
        if units == 0 {
            return Err(RlError::Space(
                "the search space needs at least 1 unit".into(),
            ));
        }
        let var_names: &[&str] = match kind {
            SpaceKind::Kernel => &["x", "y"],
            SpaceKind::Transform => &["x"],
        };
        let operands = operands
            .iter()
            .map(|o| {
                let o = o.trim();
                if let Some((n, t)) = OPERAND_NAMES.iter().find(|(n, _)| *n == o) {
                    if kind == SpaceKind::Kernel {
                        return Ok((n.to_string(), parse(t)?));
                    }
                }
                let e = parse_with_vars(o, var_names).map_err(|e| {
                    RlError::Space(format!(
                        "operand {o:?} (variables {}): {e}",
                        var_names.join(", ")
                    ))
                })?;
                Ok((o.to_string(), e))
            })
            .collect::<Result<Vec<_>, RlError>>()?;
        let unary = unary
            .iter()
            .map(|u| lookup(&UNARY_NAMES, u, &["u"], "unary operation"))
            .collect::<Result<Vec<_>, _>>()?;
        let binary = binary
            .iter()
            .map(|b| lookup(&BINARY_NAMES, b, &["a", "b"], "binary operation"))
            .collect::<Result<Vec<_>, _>>()?;
        let final_op = lookup(&FINAL_NAMES, final_op, &["u"], "final operation")?;
        if kind == SpaceKind::Kernel
            && final_op.1.substitute(&[Expr::x()]).value_type() != ValueType::Scalar
        {
            return Err(RlError::Space(format!(
                "a kernel space's final operation must reduce to a scalar (e.g. norm1), got {:?}",
                final_op.0
            )));
        }
        Ok(Space {
            kind,
            operands,
            unary,
            binary,
            units,
            final_op,
        })
    }

    /// The authors' kernel space: 2 units, 7 pairwise operands, 18 unary and 8 binary
    /// operations, kernel = `norm1(last unit)`.
    pub fn paper_kernel() -> Space {
        let unary = [
            "identity", "neg", "abs", "square", "cube", "sqrt_abs", "exp", "sin", "cos", "sinh",
            "cosh", "tanh", "relu", "min0", "sigmoid", "softplus", "l1", "l2",
        ];
        let binary = ["add", "mul", "sub", "max", "min", "dot", "expdiff", "first"];
        let ops: Vec<&str> = OPERAND_NAMES.iter().map(|(n, _)| *n).collect();
        Self::new(SpaceKind::Kernel, &ops, &unary, &binary, 2, "norm1")
            .unwrap_or_else(|e| unreachable!("built-in space: {e}"))
    }

    /// A transform space for embeddings in the spirit of *Searching for Activation
    /// Functions*: operands `x` and `1`, 2 units, no final reduction.
    pub fn activation_transform() -> Space {
        let unary = [
            "identity",
            "neg",
            "abs",
            "square",
            "cube",
            "sqrt_abs",
            "exp",
            "sin",
            "cos",
            "tanh",
            "relu",
            "min0",
            "sigmoid",
            "softplus",
            "sign",
            "u + 1",
            "2 * u",
            "exp(-square(u))",
            "l2",
        ];
        let binary = [
            "add",
            "mul",
            "sub",
            "max",
            "min",
            "first",
            "sigmoid(a) * b",
            "a / (abs(b) + 0.001)",
            "expdiff",
        ];
        Self::new(
            SpaceKind::Transform,
            &["x", "1"],
            &unary,
            &binary,
            2,
            "identity",
        )
        .unwrap_or_else(|e| unreachable!("built-in space: {e}"))
    }

    /// Number of choices of every decision, in order.
    pub fn decisions(&self) -> Vec<usize> {
        let mut d = Vec::with_capacity(self.units * 5);
        for u in 0..self.units {
            let n_ops = self.operands.len() + u;
            d.extend([
                n_ops,
                n_ops,
                self.unary.len(),
                self.unary.len(),
                self.binary.len(),
            ]);
        }
        d
    }

    /// Number of distinct decision sequences (saturating).
    pub fn size(&self) -> f64 {
        self.decisions().iter().map(|&n| n as f64).product()
    }

    /// The candidate of a decision sequence (`actions[i] < decisions()[i]`).
    pub fn build(&self, actions: &[usize]) -> Result<Expr, RlError> {
        const MAX_CANDIDATE_NODES: usize = 100_000;
        let dec = self.decisions();
        if actions.len() != dec.len() || actions.iter().zip(&dec).any(|(&a, &n)| a >= n) {
            return Err(RlError::Space(format!(
                "invalid decisions {actions:?} for a space with choices {dec:?}"
            )));
        }
        let mut outs: Vec<Expr> = Vec::with_capacity(self.units);
        for u in 0..self.units {
            let a = &actions[u * 5..u * 5 + 5];
            let operand = |i: usize| -> Expr {
                if i < self.operands.len() {
                    self.operands[i].1.clone()
                } else {
                    outs[i - self.operands.len()].clone()
                }
            };
            let o1 = self.unary[a[2]].1.substitute(&[operand(a[0])]);
            let o2 = self.unary[a[3]].1.substitute(&[operand(a[1])]);
            let out = self.binary[a[4]].1.substitute(&[o1, o2]);
            let size = out.size();
            if size > MAX_CANDIDATE_NODES {
                return Err(RlError::Space(format!(
                    "the candidate grows to {size} nodes at unit {} (limit \
                     {MAX_CANDIDATE_NODES}): templates that use their variable several times \
                     multiply the size with every unit; use fewer units or simpler templates",
                    u + 1
                )));
            }
            outs.push(out);
        }
        let last = outs.pop().unwrap_or(Expr::x());
        Ok(self.final_op.1.substitute(&[last]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn paper_space_shape_and_kernel() {
        let s = Space::paper_kernel();
        assert_eq!(s.decisions(), vec![7, 7, 18, 18, 8, 8, 8, 18, 18, 8]);
        // unit 0 = min(sin(x * y), sin(dot(x, y))), unit 1 = first(identity(unit 0), ...)
        let e = s.build(&[6, 5, 7, 7, 4, 7, 0, 0, 0, 7]).unwrap();
        assert_eq!(e.to_string(), "norm1(min(sin(x * y), sin(dot(x, y))))");
        assert!(s.build(&[7, 5, 7, 7, 4, 7, 0, 0, 0, 7]).is_err());
    }

    #[test]
    fn exploding_templates_are_refused() {
        // Each unit squares-and-more the previous one: 9^8 nodes without the limit.
        let s = Space::new(
            SpaceKind::Kernel,
            &["prod"],
            &["u * u + u"],
            &["a * a + b * b + a"],
            8,
            "norm1",
        )
        .unwrap();
        let dec = s.decisions();
        // Every unit takes the previous unit's output (the last choice of each operand).
        let mut a = Vec::new();
        for (u, chunk) in dec.chunks(5).enumerate() {
            let op = if u == 0 { 0 } else { chunk[0] - 1 };
            a.extend([op, op, 0, 0, 0]);
        }
        let e = s.build(&a);
        assert!(
            matches!(e, Err(RlError::Space(ref m)) if m.contains("nodes")),
            "{e:?}"
        );
    }

    #[test]
    fn random_candidates_round_trip() {
        for s in [Space::paper_kernel(), Space::activation_transform()] {
            let dec = s.decisions();
            let mut r = Rng::raw(1);
            for _ in 0..2000 {
                let a: Vec<usize> = dec.iter().map(|&n| r.below(n)).collect();
                let e = s.build(&a).unwrap();
                let back = crate::expr::parse(&e.to_string()).unwrap();
                assert_eq!(back, e, "{e}");
                if s.kind == SpaceKind::Kernel {
                    assert_eq!(e.value_type(), ValueType::Scalar);
                } else {
                    assert!(!e.uses_var(1));
                }
            }
        }
    }

    #[test]
    fn bad_spaces() {
        let k = SpaceKind::Kernel;
        assert!(Space::new(k, &[], &["sin"], &["add"], 2, "norm1").is_err());
        assert!(Space::new(k, &["x"], &[], &["add"], 2, "norm1").is_err());
        assert!(Space::new(k, &["x"], &["sin"], &["add"], 0, "norm1").is_err());
        assert!(Space::new(k, &["x"], &["sine"], &["add"], 2, "norm1").is_err());
        assert!(Space::new(k, &["x"], &["sin"], &["add"], 2, "identity").is_err());
        assert!(Space::new(k, &["x"], &["sin(v)"], &["add"], 2, "norm1").is_err());
        let s = Space::new(k, &["x - y"], &["sin(u) * 2"], &["a + 2 * b"], 1, "norm1").unwrap();
        assert_eq!(
            s.build(&[0, 0, 0, 0, 0]).unwrap().to_string(),
            "norm1(sin(x - y) * 2 + 2 * (sin(x - y) * 2))"
        );
    }
}
