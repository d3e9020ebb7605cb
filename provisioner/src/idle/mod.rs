//! When boxes stop: the pure stop policy, `reap`, the central backstop
//! that applies it to every owner's boxes, and when a box reports activity
//! for reap.

pub mod policy;
pub mod reap;
pub mod report;
