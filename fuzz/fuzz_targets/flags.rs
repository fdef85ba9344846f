//! Fuzz target `flags`: see `exaprobe_fuzz::flags` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| exaprobe_fuzz::flags(data));
