#![no_main]
// libFuzzer entry point; every dependency is the library's (hookline_fuzz::envelope).
#![allow(unused_crate_dependencies)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookline_fuzz::envelope::run(data));
