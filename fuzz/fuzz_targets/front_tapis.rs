#![no_main]
use tessera_server::fuzzing::Front;
libfuzzer_sys::fuzz_target!(|data: &[u8]| tessera_fuzz::fronts().request(Front::Tapis, data));
