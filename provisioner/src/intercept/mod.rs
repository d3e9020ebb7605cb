//! `workstation intercept`: one service runs on the laptop inside the box's
//! stack. The box stops the service and holds it for as long as the laptop
//! renews a lease ([`hold`]); the service's ports on the box reach the
//! laptop and the box's other ports reach the laptop's process ([`plan`]),
//! all over one OpenSSH connection with the pinned host key ([`session`]).
//! A personal intercept ([`personal`]) leaves the service running and has
//! the box's proxy route only requests with a header (or a copy of each)
//! to the laptop, optionally with its own copy of the data ([`branch`]).

pub mod branch;
pub mod end;
pub mod hold;
pub mod personal;
pub mod plan;
pub mod session;
