//! The local provider: each box is a [`BoxHost`](crate::provider::netns::BoxHost) (network namespace + sshd)
//! on this machine, with a state directory that is its disk:
//! `~/.local/state/workstation/local/<owner>--<name>/`.
//!
//! `box.json` there plays the part EC2 tags play for the aws provider; the
//! box's first boot writes its host key into it, as the aws image publishes
//! its key in a tag.
//!
//! The provider's state (`store`), what `box.json` holds (`record`),
//! bringing a box up and down (`boot`), data volumes (`volumes`), and the
//! [`super::Provider`] verbs (`lifecycle`).

mod boot;
mod lifecycle;
mod record;
mod store;
mod volumes;

pub use store::LocalProvider;
