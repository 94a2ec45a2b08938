//! The migrations are embedded by `sqlx::migrate!` when this crate
//! compiles: a new file under `migrations/` must compile it again.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
