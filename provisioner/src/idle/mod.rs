//! When boxes stop: the pure stop policy, and `reap`, the central backstop
//! that applies it to every owner's boxes.

pub mod policy;
pub mod reap;
