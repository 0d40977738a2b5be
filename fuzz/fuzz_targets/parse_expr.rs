//! Any text: the parser returns an error or a tree whose canonical text parses back to
//! the same tree (never a panic).
#![no_main]

use gridmatch::expr::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The Python bindings refuse text nesting deeper than 1000 levels before parsing
    // (src/python/expr.rs, check_nesting); stay within what reaches the parser.
    if text.len() > 1000 {
        return;
    }
    if let Ok(e) = parse(text) {
        let canonical = e.to_string();
        let back = parse(&canonical).expect("canonical text must parse");
        assert_eq!(back, e, "{canonical}");
        assert_eq!(back.to_string(), canonical);
    }
});
