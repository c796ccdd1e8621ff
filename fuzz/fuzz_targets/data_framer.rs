#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxmesh_fuzz::data_framer(data));
