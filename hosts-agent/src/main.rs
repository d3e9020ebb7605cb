//! workstation-hosts: the privileged laptop daemon that owns workstation's
//! block in /etc/hosts. Filled in by the hosts-agent issue; until then it
//! only says so, rather than pretending to work.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("workstation-hosts {}: not implemented yet (see the hosts-agent issue)", env!("CARGO_PKG_VERSION"));
    ExitCode::from(2)
}
