#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mxmesh_fuzz::mesh_decoders(data));
