//! The laptop's side: per-user settings, where workstation keeps its
//! files, the client of the hosts agent, and local boxes' secrets.

pub mod hosts;
pub mod paths;
pub mod secrets;
pub mod settings;
