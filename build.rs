//! Compiles the CPU caching allocator (`src/train/cpu_cache.cpp`, a `c10::Allocator`)
//! against the headers of the libtorch that torch-sys links, when the `torch` feature is
//! on.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/train/cpu_cache.cpp");
    if std::env::var_os("CARGO_FEATURE_TORCH").is_none() {
        return;
    }
    // torch-sys (links = "tch") passes libtorch's lib directory to its direct dependents;
    // the headers are in the `include` directory beside it.
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        panic!(
            "torch-sys did not report libtorch's location (DEP_TCH_LIBTORCH_LIB): gridmatch \
             builds its CPU caching allocator against libtorch's headers (Linux or macOS)"
        );
    };
    let include = PathBuf::from(lib)
        .parent()
        .map(|p| p.join("include"))
        .filter(|p| p.join("c10/core/CPUAllocator.h").is_file())
        .unwrap_or_else(|| panic!("libtorch's headers (c10/core/CPUAllocator.h) not found"));
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++17")
        // libtorch's headers as system headers: their warnings are not ours.
        .flag("-isystem")
        .flag(include.to_string_lossy().as_ref())
        .flag_if_supported("-Wall")
        .flag_if_supported("-Wextra")
        .file("src/train/cpu_cache.cpp")
        .compile("gm_cpu_cache");
}
