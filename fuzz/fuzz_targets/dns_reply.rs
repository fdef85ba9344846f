//! Fuzz target `dns_reply`: see `exaprobe_fuzz::dns_reply` (fuzz/src/lib.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| exaprobe_fuzz::dns_reply(data));
