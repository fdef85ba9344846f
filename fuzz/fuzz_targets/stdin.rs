//! Fuzz target `stdin`: see `exaprobe_fuzz::stdin` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| exaprobe_fuzz::stdin(data));
