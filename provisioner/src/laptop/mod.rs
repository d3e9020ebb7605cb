//! The laptop's side: per-user settings, where workstation keeps its
//! files, and the client of the hosts agent.

pub mod hosts;
pub mod paths;
pub mod settings;
