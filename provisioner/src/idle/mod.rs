//! When boxes stop: the pure stop policy, `reap`, the central backstop
//! that applies it to every owner's boxes, and when a box reports activity
//! for reap; team boxes' own policy and working hours.

pub mod policy;
pub mod reap;
pub mod report;
pub mod team;
