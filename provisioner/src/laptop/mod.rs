//! The laptop's side: per-user settings, where workstation keeps its
//! files, the client of the hosts agent, local boxes' secrets, and the
//! nonces of launches under way.

pub mod hosts;
pub mod launches;
pub mod paths;
pub mod secrets;
pub mod settings;
