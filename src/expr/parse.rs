//! Tokenizer and recursive-descent parser.
//!
//! ```text
//! expr    := term (('+' | '-') term)*
//! term    := unary (('*' | '/') unary)*
//! unary   := '-' unary | primary
//! primary := number | variable | name '(' expr (',' expr)* ')' | '(' expr ')'
//! ```

use super::ast::{BinOp, Expr, Func, VAR_NAMES};
use super::ExprError;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Sym(char),
    End,
}

/// The deepest expression tree (and parser recursion) accepted: trees are processed
/// recursively (printing, compiling, dropping), so a deeper one, nested or a long chain
/// such as `x + x + ... + x`, is a syntax error rather than a stack overflow.
pub const MAX_DEPTH: usize = 1000;

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(Tok, usize)>,
    pos: usize,
    vars: &'a [&'a str],
    /// Current recursion depth of `expr`.
    nesting: usize,
}

/// A parsed subtree and its depth (a leaf has depth 1).
type Parsed = (Expr, usize);

fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let err = |message: String, position: usize| ExprError::Syntax {
        message,
        position,
        text: text.to_string(),
    };
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let s: String = chars[start..i].iter().collect();
            let v: f64 = s
                .parse()
                .map_err(|_| err(format!("malformed number {s:?}"), start))?;
            if !v.is_finite() {
                return Err(err(format!("number {s:?} is not finite"), start));
            }
            toks.push((Tok::Num(v), start));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push((Tok::Ident(chars[start..i].iter().collect()), start));
        } else if "+-*/(),".contains(c) {
            toks.push((Tok::Sym(c), i));
            i += 1;
        } else {
            return Err(err(format!("unexpected character {c:?}"), i));
        }
    }
    toks.push((Tok::End, chars.len()));
    Ok(toks)
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        &self.toks[self.pos.min(self.toks.len() - 1)].0
    }

    fn at(&self) -> usize {
        self.toks[self.pos.min(self.toks.len() - 1)].1
    }

    fn bump(&mut self) {
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
    }

    fn err(&self, message: impl Into<String>, position: usize) -> ExprError {
        ExprError::Syntax {
            message: message.into(),
            position,
            text: self.text.to_string(),
        }
    }

    fn describe(tok: &Tok) -> String {
        match tok {
            Tok::Num(v) => format!("number {v}"),
            Tok::Ident(s) => format!("name {s:?}"),
            Tok::Sym(c) => format!("{c:?}"),
            Tok::End => "end of expression".to_string(),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ExprError> {
        if *self.peek() == Tok::Sym(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.err(
                format!("expected {c:?}, found {}", Self::describe(self.peek())),
                self.at(),
            ))
        }
    }

    /// `depth` if within [`MAX_DEPTH`], else a syntax error at `position`.
    fn check_depth(&self, depth: usize, position: usize) -> Result<usize, ExprError> {
        // `depth` counts the top-level call and the leaf too: allow those two.
        if depth > MAX_DEPTH + 2 {
            return Err(self.err(
                format!("the expression is nested or chained deeper than {MAX_DEPTH} levels"),
                position,
            ));
        }
        Ok(depth)
    }

    fn expr(&mut self) -> Result<Parsed, ExprError> {
        crate::expr::grow(|| {
            self.nesting += 1;
            self.check_depth(self.nesting, self.at())?;
            let r = self.sum();
            self.nesting -= 1;
            r
        })
    }

    fn sum(&mut self) -> Result<Parsed, ExprError> {
        let (mut lhs, mut depth) = self.term()?;
        loop {
            let op = match self.peek() {
                Tok::Sym('+') => BinOp::Add,
                Tok::Sym('-') => BinOp::Sub,
                _ => return Ok((lhs, depth)),
            };
            let at = self.at();
            self.bump();
            let (rhs, d) = self.term()?;
            depth = self.check_depth(1 + depth.max(d) + self.nesting, at)? - self.nesting;
            lhs = Expr::bin(op, lhs, rhs);
        }
    }

    fn term(&mut self) -> Result<Parsed, ExprError> {
        let (mut lhs, mut depth) = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Sym('*') => BinOp::Mul,
                Tok::Sym('/') => BinOp::Div,
                _ => return Ok((lhs, depth)),
            };
            let at = self.at();
            self.bump();
            let (rhs, d) = self.unary()?;
            depth = self.check_depth(1 + depth.max(d) + self.nesting, at)? - self.nesting;
            lhs = Expr::bin(op, lhs, rhs);
        }
    }

    fn unary(&mut self) -> Result<Parsed, ExprError> {
        // Leading minuses counted in a loop, not by recursion.
        let start = self.at();
        let mut minuses = 0usize;
        while *self.peek() == Tok::Sym('-') {
            self.bump();
            minuses += 1;
            self.check_depth(minuses + self.nesting, start)?;
        }
        let (mut e, d) = self.primary()?;
        let depth = self.check_depth(d + minuses + self.nesting, start)? - self.nesting;
        for _ in 0..minuses {
            e = Expr::neg(e);
        }
        Ok((e, depth))
    }

    fn primary(&mut self) -> Result<Parsed, ExprError> {
        let start = self.at();
        match self.peek().clone() {
            Tok::Num(v) => {
                self.bump();
                Ok((Expr::Const(v), 1))
            }
            Tok::Sym('(') => {
                self.bump();
                let parsed = self.expr()?;
                self.expect(')')?;
                Ok(parsed)
            }
            Tok::Ident(name) => {
                self.bump();
                let is_call = *self.peek() == Tok::Sym('(');
                if let Some(v) = self.vars.iter().position(|n| *n == name) {
                    if is_call {
                        return Err(self.err(
                            format!("variable {name:?} cannot be called like a function"),
                            start,
                        ));
                    }
                    let v = u8::try_from(v).map_err(|_| self.err("too many variables", start))?;
                    return Ok((Expr::Var(v), 1));
                }
                let Some(func) = Func::from_name(&name) else {
                    let kind = if is_call { "function" } else { "name" };
                    let vars = self.vars.join(", ");
                    return Err(self.err(
                        format!("unknown {kind} {name:?} (variables: {vars}; see gridmatch.expr.FUNCTIONS)"),
                        start,
                    ));
                };
                if !is_call {
                    return Err(self.err(
                        format!("function {name:?} needs arguments: {name}(...)"),
                        start,
                    ));
                }
                self.bump();
                let mut args = Vec::new();
                let mut d = 0;
                if *self.peek() != Tok::Sym(')') {
                    loop {
                        let (a, da) = self.expr()?;
                        d = d.max(da);
                        args.push(a);
                        if *self.peek() == Tok::Sym(',') {
                            self.bump();
                        } else {
                            break;
                        }
                    }
                }
                self.expect(')')?;
                let want = func.arity();
                if args.len() != want {
                    let s = if want == 1 { "" } else { "s" };
                    return Err(self.err(
                        format!("{name} takes {want} argument{s}, got {}", args.len()),
                        start,
                    ));
                }
                Ok((Expr::call(func, args), 1 + d))
            }
            Tok::End => Err(self.err(
                if self.pos == 0 {
                    "empty expression".to_string()
                } else {
                    "unexpected end of expression".to_string()
                },
                start,
            )),
            tok => Err(self.err(format!("unexpected {}", Self::describe(&tok)), start)),
        }
    }
}

/// Parse a kernel / transform expression over the variables `x` and `y`.
pub fn parse(text: &str) -> Result<Expr, ExprError> {
    parse_with_vars(text, &VAR_NAMES)
}

/// Parse with the given variable names (`vars[i]` becomes `Expr::Var(i)`); used for
/// search-space templates such as `min(a, b)`.
pub fn parse_with_vars(text: &str, vars: &[&str]) -> Result<Expr, ExprError> {
    let toks = tokenize(text)?;
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        vars,
        nesting: 0,
    };
    let (e, _) = p.expr()?;
    if *p.peek() != Tok::End {
        return Err(p.err(
            format!(
                "unexpected {} after the expression",
                Parser::describe(p.peek())
            ),
            p.at(),
        ));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(s: &str) -> String {
        let e = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let printed = e.to_string();
        let again = parse(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
        assert_eq!(e, again, "{s} -> {printed}");
        printed
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(
            round_trip("norm1(min(sin(x*y),sin(dot(x,y))))"),
            "norm1(min(sin(x * y), sin(dot(x, y))))"
        );
        assert_eq!(round_trip("x - (y - 1)"), "x - (y - 1)");
        assert_eq!(round_trip("(x - y) - 1"), "x - y - 1");
        assert_eq!(round_trip("x * (y + 2)"), "x * (y + 2)");
        assert_eq!(round_trip("-(2)"), "-2");
        assert_eq!(round_trip("- - x"), "--x");
        assert_eq!(round_trip("x - -2.5e-3"), "x - -0.0025");
        assert_eq!(round_trip("-(x*y)"), "-(x * y)");
        assert_eq!(round_trip("x / y / 2"), "x / y / 2");
        assert_eq!(round_trip("x / (y / 2)"), "x / (y / 2)");
        assert_eq!(round_trip("1e300 * x"), round_trip(&round_trip("1e300*x")));
    }

    #[test]
    fn errors_name_positions() {
        let cases = [
            ("", "empty expression", 0),
            ("sin(x", "expected ')'", 5),
            ("foo(x)", "unknown function", 0),
            ("x + z", "unknown name", 4),
            ("max(x)", "max takes 2 arguments, got 1", 0),
            ("sin(x, y)", "sin takes 1 argument, got 2", 0),
            ("x + ", "unexpected end", 4),
            ("x $ y", "unexpected character", 2),
            ("x y", "after the expression", 2),
            ("sin", "needs arguments", 0),
            ("x(1)", "cannot be called", 0),
            ("1e999", "not finite", 0),
            ("1.2.3", "malformed number", 0),
        ];
        for (text, msg, pos) in cases {
            match parse(text) {
                Err(ExprError::Syntax {
                    message, position, ..
                }) => {
                    assert!(message.contains(msg), "{text}: {message}");
                    assert_eq!(position, pos, "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn depth_limit_instead_of_stack_overflow() {
        let deep =
            |n: usize, open: &str, close: &str| format!("{}x{}", open.repeat(n), close.repeat(n));
        for text in [
            deep(5000, "(", ")"),
            deep(5000, "sin(", ")"),
            deep(5000, "-", ""),
            vec!["x"; 5000].join(" + "),
            vec!["x"; 5000].join(" * "),
            format!("{}x{}", "min(x, ".repeat(3000), ")".repeat(3000)),
        ] {
            match parse(&text) {
                Err(ExprError::Syntax { message, .. }) => {
                    assert!(message.contains("deeper than 1000"), "{message}")
                }
                other => panic!("{}...: {other:?}", &text[..20]),
            }
        }
        // Within the limit: fine.
        assert!(parse(&deep(300, "sin(", ")")).is_ok());
        assert!(parse(&vec!["x"; 500].join(" + ")).is_ok());
        assert!(parse(&deep(400, "(", ")")).is_ok());
    }

    #[test]
    fn deep_expressions_on_a_small_stack_thread() {
        // A 128 KiB thread (smaller than any default) in whatever build runs the tests
        // (`make test` runs them in a debug build too): every deep input is the depth
        // error, and the deepest accepted tree is compiled, printed, compared, cloned and
        // dropped without overflowing.
        let run = || {
            let deep = |n: usize, open: &str, close: &str| {
                format!("{}x{}", open.repeat(n), close.repeat(n))
            };
            for text in [
                deep(100_000, "(", ")"),
                deep(20_000, "sin(", ")"),
                deep(20_000, "-", ""),
                vec!["x"; 20_000].join(" + "),
                format!("{}x{}", "max(y, ".repeat(20_000), ")".repeat(20_000)),
            ] {
                match parse(&text) {
                    Err(ExprError::Syntax { message, .. }) => {
                        assert!(message.contains("deeper than 1000"), "{message}")
                    }
                    other => panic!("{}...: {:?}", &text[..20], other.map(|e| e.size())),
                }
            }
            let e = parse(&deep(MAX_DEPTH - 1, "sin(", ")")).expect("within the limit");
            let chain = parse(&vec!["y"; MAX_DEPTH].join(" * ")).expect("within the limit");
            let text = e.to_string();
            assert_eq!(parse(&text).expect("round trip"), e.clone());
            assert_eq!(e.size(), MAX_DEPTH);
            assert!(!chain.commutative_normal().uses_var(0));
            let k = parse(&format!("norm1({})", vec!["x * y"; 400].join(" + "))).unwrap();
            let p = crate::expr::Program::compile(&k).expect("compiles");
            assert!(p.check_kernel().is_ok());
            assert!(crate::expr::Program::compile(&e).is_ok());
        };
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(run)
            .expect("spawn")
            .join()
            .expect("no overflow, no failed assertion");
    }

    #[test]
    fn types() {
        use super::super::ValueType;
        assert_eq!(parse("dot(x, y)").unwrap().value_type(), ValueType::Scalar);
        assert_eq!(
            parse("x + dot(x, y)").unwrap().value_type(),
            ValueType::Vector
        );
        assert_eq!(
            parse("norm1(x) * 2").unwrap().value_type(),
            ValueType::Scalar
        );
        assert_eq!(parse("sin(2)").unwrap().value_type(), ValueType::Scalar);
    }
}
