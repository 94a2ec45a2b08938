//! Nothing here: the benchmark is benches/b1.rs.
