//! samples (see docs/architecture.md)
