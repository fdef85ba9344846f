//! Fuzz target `control`: see `exaprobe_fuzz::control` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| exaprobe_fuzz::control(data));
