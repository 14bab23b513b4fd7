//! train crate (work in progress)
