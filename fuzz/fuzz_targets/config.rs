//! Fuzz target `config`: see `exaprobe_fuzz::config` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| exaprobe_fuzz::config(data));
