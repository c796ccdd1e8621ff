//! Exports the simulator's own `getrandom` (src/entropy.rs) in the binary's dynamic symbol
//! table, so that lookups through `dlsym(RTLD_DEFAULT, "getrandom")` (the getrandom crate,
//! std) find it before glibc's. Only this binary is linked this way.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,--export-dynamic-symbol=getrandom");
    println!("cargo:rerun-if-changed=build.rs");
}
