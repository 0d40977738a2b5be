//! The pure parsers of gridmatch, compiled from the main crate's own source files
//! (`#[path]` modules) so that the fuzz targets need neither libtorch nor Python.
//!
//! Only the error enums the parsers name are restated here (their variants must match
//! the main crate's `ExprError` / `DataError`; a mismatch fails to compile).

#![allow(dead_code)]

pub mod data;
pub mod expr;
