//! Property tests (proptest) of the parsers that read user-controlled bytes: the
//! expression parser/printer and the IDX reader.
//!
//! - Random expression trees print to text that parses back to the same tree, and the
//!   canonical text is a fixed point.
//! - Random and mutated expression text never panics the parser; what parses prints to
//!   text that parses back to the same tree.
//! - Random and mutated IDX bytes never panic the reader; it accepts exactly the inputs
//!   a reference parse accepts, and no single allocation made while reading is larger
//!   than about twice the input, whatever the header's counts claim.

use flate2::write::GzEncoder;
use flate2::Compression;
use gridmatch::data::idx::{parse_idx, read_idx};
use gridmatch::expr::{parse, BinOp, Expr, ALL_FUNCS};
use proptest::collection::vec;
use proptest::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Cursor, Write};
use std::path::Path;

// ------------------------------------------------------------- allocation tracking
/// The system allocator, recording the largest request of the current thread.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| {
        if size > c.get() {
            c.set(size)
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Run `f` and return its result and the largest allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let out = f();
    (out, LARGEST.with(|c| c.get()))
}

// ------------------------------------------------------------------- expressions
fn constant() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0u32..1000, 0i32..4).prop_map(|(m, e)| f64::from(m) / 10f64.powi(e)),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        Just(Expr::x()),
        Just(Expr::y()),
        constant().prop_map(|v| Expr::Const(v.abs())),
    ]
}

fn op() -> impl Strategy<Value = BinOp> {
    prop_oneof![
        Just(BinOp::Add),
        Just(BinOp::Sub),
        Just(BinOp::Mul),
        Just(BinOp::Div)
    ]
}

/// Trees built with the helper constructors, as the parser builds them.
fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(6, 64, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(Expr::neg),
            (op(), inner.clone(), inner.clone()).prop_map(|(o, a, b)| Expr::bin(o, a, b)),
            (0..ALL_FUNCS.len(), vec(inner, 2)).prop_map(|(i, args)| {
                let f = ALL_FUNCS[i];
                Expr::call(f, args[..f.arity()].to_vec())
            }),
        ]
    })
}

/// Text over the language's alphabet (names, numbers, operators, brackets, junk).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[xy0-9.eE+*/(), -]{0,48}",
        "((sin|norm1|dot|max|min|l2dist|exp|x|y|1e5|\\.5|-|\\+|\\*|/|\\(|\\)|,| ){0,24})",
        any::<String>(),
    ]
}

/// A random edit of `s`: delete, duplicate or replace one character, or insert one.
fn mutate(s: &str, at: usize, kind: u8, c: char) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    let at = if chars.is_empty() {
        0
    } else {
        at % chars.len()
    };
    match kind % 4 {
        0 if !chars.is_empty() => {
            chars.remove(at);
        }
        1 if !chars.is_empty() => chars.insert(at, chars[at]),
        2 if !chars.is_empty() => chars[at] = c,
        _ => chars.insert(at, c),
    }
    chars.into_iter().collect()
}

/// Anything that parses prints canonically and parses back to the same tree.
fn check_canonical(e: &Expr) -> Result<(), TestCaseError> {
    let s = e.to_string();
    let back = parse(&s).map_err(|err| TestCaseError::fail(format!("{s:?}: {err}")))?;
    prop_assert_eq!(&back, e, "{}", s);
    prop_assert_eq!(back.to_string(), s);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn printed_trees_parse_back_to_the_same_tree(e in expr()) {
        check_canonical(&e)?;
    }

    #[test]
    fn random_text_never_panics(s in text()) {
        if let Ok(e) = parse(&s) {
            check_canonical(&e)?;
        }
    }

    #[test]
    fn mutated_expressions_never_panic(
        e in expr(),
        edits in vec((any::<usize>(), any::<u8>(), prop::char::range(' ', '~')), 1..4),
    ) {
        let mut s = e.to_string();
        for (at, kind, c) in edits {
            s = mutate(&s, at, kind, c);
        }
        if let Ok(p) = parse(&s) {
            check_canonical(&p)?;
        }
    }
}

// --------------------------------------------------------------------------- IDX
/// Reference parse: `(dims, data)` when `raw` is a valid unsigned-byte IDX file.
fn reference(raw: &[u8]) -> Option<(Vec<usize>, Vec<u8>)> {
    if raw.len() < 4 || raw[0] != 0 || raw[1] != 0 || raw[2] != 8 || !(1..=4).contains(&raw[3]) {
        return None;
    }
    let nd = usize::from(raw[3]);
    if raw.len() < 4 + 4 * nd {
        return None;
    }
    let dims: Vec<usize> = raw[4..4 + 4 * nd]
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let size = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
    let body = &raw[4 + 4 * nd..];
    (body.len() == size).then(|| (dims, body.to_vec()))
}

fn idx_file(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(body);
    v
}

/// Parse `raw`, compare with the reference, bound the allocations.
fn check_idx(raw: &[u8]) -> Result<(), TestCaseError> {
    let (got, largest) = largest_allocation(|| parse_idx(Cursor::new(raw), Path::new("fuzz")));
    match (got, reference(raw)) {
        (Ok(a), Some((dims, data))) => {
            prop_assert_eq!(a.dims, dims);
            prop_assert_eq!(a.data, data);
        }
        (Err(_), None) => {}
        (Ok(a), None) => return Err(TestCaseError::fail(format!("accepted invalid {a:?}"))),
        (Err(e), Some(_)) => return Err(TestCaseError::fail(format!("rejected valid: {e}"))),
    }
    prop_assert!(
        largest <= 2 * raw.len() + 4096,
        "allocated {} bytes for a {}-byte input",
        largest,
        raw.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(raw in vec(any::<u8>(), 0..256)) {
        check_idx(&raw)?;
    }

    #[test]
    fn lying_headers_allocate_nothing_big(
        dims in vec(prop_oneof![0u32..6, any::<u32>()], 1..5),
        body in vec(any::<u8>(), 0..300),
    ) {
        check_idx(&idx_file(&dims, &body))?;
    }

    #[test]
    fn mutated_files_never_panic(
        dims in vec(1u32..5, 1..5),
        flips in vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
        extra in vec(any::<u8>(), 0..3),
    ) {
        let size: usize = dims.iter().map(|&d| d as usize).product();
        let mut raw = idx_file(&dims, &vec![7u8; size]);
        for (at, x) in flips {
            let i = at % raw.len();
            raw[i] ^= x;
        }
        if cut % 3 == 0 {
            raw.truncate(cut % (raw.len() + 1));
        }
        raw.extend_from_slice(&extra);
        check_idx(&raw)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gzip_files_read_like_raw_ones(
        dims in vec(0u32..4, 1..4),
        cut in any::<usize>(),
        flip in any::<(usize, u8)>(),
    ) {
        let size: usize = dims.iter().map(|&d| d as usize).product();
        let raw = idx_file(&dims, &vec![3u8; size]);
        let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
        gz.write_all(&raw).unwrap();
        let mut gz = gz.finish().unwrap();
        let mutated = cut % 2 == 0;
        if mutated {
            // corrupt the compressed stream (keeping the gzip magic) or cut it short
            let i = 2 + flip.0 % (gz.len() - 2);
            gz[i] ^= flip.1 | 1;
            gz.truncate(2 + cut % (gz.len() - 1));
        }
        let dir = std::env::temp_dir().join(format!("gm-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("f{}.gz", cut % 1000));
        std::fs::write(&path, &gz).unwrap();
        let got = read_idx(&path);
        let _ = std::fs::remove_file(&path);
        if !mutated {
            let a = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(a.data, raw[4 + 4 * dims.len()..].to_vec());
        }
    }
}
