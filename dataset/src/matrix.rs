//! matrix (see docs/architecture.md)
