//! A box's life as the laptop sees it: create, start, stop, destroy, the
//! checks of `doctor`, and the steps of `init`.

pub mod access;
pub mod doctor;
pub mod init;
pub mod lifecycle;
pub mod share;
