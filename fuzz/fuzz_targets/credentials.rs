#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_server::fuzzing::credentials(data));
