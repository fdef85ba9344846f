//! Fuzz target `metrics_request`: see `exaprobe_fuzz::metrics_request` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| exaprobe_fuzz::metrics_request(data));
