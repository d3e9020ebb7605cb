//! The stack on a box, driven from the laptop over SSH: the box's layout
//! and shell, supervisord's configuration, services, data stores and their
//! seeds, and `up`, which brings all of it to the manifest's state.

pub mod front;
pub mod holds;
pub mod layout;
pub mod seed;
pub mod services;
pub mod shell;
pub mod stores;
pub mod supervisor;
pub mod up;
