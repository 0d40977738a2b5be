//! Any bytes, raw or gzip-compressed: the IDX reader returns an error or exactly
//! `product(dims)` bytes (never a panic; memory bounded by the input, see the reader).
#![no_main]

use flate2::read::GzDecoder;
use gridmatch::data::idx::parse_idx;
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let check = |r: Result<gridmatch::data::idx::IdxArray, _>| {
        if let Ok(a) = r {
            assert!((1..=4).contains(&a.dims.len()));
            assert_eq!(a.data.len(), a.dims.iter().product::<usize>());
        }
    };
    check(parse_idx(Cursor::new(data), Path::new("fuzz")));
    if data.starts_with(&[0x1f, 0x8b]) {
        check(parse_idx(GzDecoder::new(data), Path::new("fuzz.gz")));
    }
});
