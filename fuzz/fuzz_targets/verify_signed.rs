#![no_main]
// libFuzzer entry point; every dependency is the library's (hookline_fuzz::verify_signed).
#![allow(unused_crate_dependencies)]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hookline_fuzz::verify_signed::run(data));
