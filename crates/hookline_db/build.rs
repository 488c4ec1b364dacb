//! `embed_migrations!` reads migrations/ at compile time; a new migration directory must
//! rebuild this crate even when no Rust file changed.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
