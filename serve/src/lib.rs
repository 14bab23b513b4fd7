//! serve crate (work in progress)
