//! Fuzz target `ntp_reply`: see `exaprobe_fuzz::ntp_reply` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| exaprobe_fuzz::ntp_reply(data));
