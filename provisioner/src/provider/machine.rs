//! What every HOME's local boxes share on one machine: the bridge's
//! addresses and a root-owned place for the boxes' roots. Two engineers (or
//! a demo and a trial) on one machine have separate HOMEs, so one HOME's
//! records cannot say which addresses are free: allocation looks at what
//! the machine holds, under one machine-wide lock.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::host::{addresses_in_use, gateway};
use super::{LocalError, ProviderError, Result};
use crate::provider::LocalNetwork;

/// Root-owned (0755): the lock, the address leases and the boxes' roots.
pub const MACHINE_DIR: &str = "/var/lib/workstation-local";

/// Machine-wide state of local boxes, in `dir` ([`MACHINE_DIR`]).
pub struct Machine {
    dir: PathBuf,
}

/// Held while an address is chosen and leased.
pub struct AllocationLock(#[allow(dead_code)] File);

impl Machine {
    pub fn new(dir: PathBuf) -> Machine {
        Machine { dir }
    }

    fn leases(&self) -> PathBuf {
        self.dir.join("leases")
    }

    /// `leases/<address>`: holds the path of the box.json of the box that
    /// has the address.
    fn lease(&self, address: Ipv4Addr) -> PathBuf {
        self.leases().join(address.to_string())
    }

    /// The box.json that `address`'s lease names, if there is a lease.
    fn holder(&self, address: Ipv4Addr) -> Option<PathBuf> {
        std::fs::read(self.lease(address)).ok().map(|held| PathBuf::from(std::ffi::OsString::from_vec(held)))
    }

    fn write_lease(&self, address: Ipv4Addr, record: &Path) -> Result<()> {
        let lease = self.lease(address);
        workstation_hosts_protocol::atomic::write(&lease, record.as_os_str().as_encoded_bytes(), 0o644).map_err(io(&lease))
    }

    /// Where the box whose namespace is `ns` keeps its root (stores,
    /// supervisord, synced checkouts): reachable by the store servers'
    /// users whatever the mode of the HOME that made the box.
    pub fn box_root(&self, ns: &str) -> PathBuf {
        self.dir.join("boxes").join(ns)
    }

    /// Where local data volume `id` keeps its contents (the root of the
    /// box it is attached to).
    pub fn volume_root(&self, id: &str) -> PathBuf {
        self.dir.join("volumes").join(id)
    }

    /// Creates the machine directories (0755, as root makes them).
    fn ensure(&self) -> Result<()> {
        for d in [self.dir.clone(), self.leases(), self.dir.join("boxes"), self.dir.join("volumes")] {
            std::fs::DirBuilder::new().mode(0o755).recursive(true).create(&d).map_err(io(&d))?;
        }
        Ok(())
    }

    /// The machine-wide allocation lock (every HOME takes the same one).
    pub fn lock(&self) -> Result<AllocationLock> {
        self.ensure()?;
        let path = self.dir.join("addresses.lock");
        let f = File::options().create(true).truncate(false).write(true).open(&path).map_err(io(&path))?;
        f.lock().map_err(io(&path))?;
        Ok(AllocationLock(f))
    }

    /// The lowest address of `net.subnet` that nobody holds: not the
    /// bridge's, not in any namespace on this machine, not leased to a box
    /// that still exists (a stopped box has no namespace but keeps its
    /// address), not in `also_used` (this HOME's own records). The lease is
    /// written for `record`, the box.json the box will have; a lease whose
    /// record is gone or names another address is free again.
    pub fn allocate(&self, _lock: &AllocationLock, net: &LocalNetwork, also_used: &[Ipv4Addr], record: &Path) -> Result<Ipv4Addr> {
        let mut used: Vec<Ipv4Addr> = also_used.to_vec();
        used.push(gateway(&net.network));
        used.extend(addresses_in_use().into_iter().map(|(_, a)| a));
        used.extend(self.live_leases());
        let free = net.subnet.hosts().find(|a| !used.contains(a));
        let Some(address) = free else {
            let held = used.iter().filter(|a| net.subnet.contains(*a)).collect::<std::collections::BTreeSet<_>>().len();
            return Err(LocalError::NoFreeAddress { subnet: net.subnet, held }.into());
        };
        self.write_lease(address, record)?;
        Ok(address)
    }

    /// Leases `address` to `record` (a box booting) unless it is leased to
    /// another box that still exists there, which is refused.
    pub fn claim(&self, _lock: &AllocationLock, address: Ipv4Addr, record: &Path) -> Result<()> {
        match self.holder(address) {
            Some(held) if held == record => return Ok(()),
            Some(other) if recorded_address(&other) == Some(address) => {
                return Err(LocalError::Leased { address, holder: other }.into());
            }
            _ => {}
        }
        self.write_lease(address, record)
    }

    /// Gives back `address` if its lease is `record`'s (destroy).
    pub fn release(&self, address: Ipv4Addr, record: &Path) {
        if self.holder(address).is_some_and(|held| held == record) {
            let _ = std::fs::remove_file(self.lease(address));
        }
    }

    /// Leased addresses whose box still exists at that address.
    fn live_leases(&self) -> Vec<Ipv4Addr> {
        let Ok(entries) = std::fs::read_dir(self.leases()) else { return Vec::new() };
        entries
            .flatten()
            .filter_map(|e| {
                let address: Ipv4Addr = e.file_name().to_str()?.parse().ok()?;
                recorded_address(&self.holder(address)?).is_some_and(|a| a == address).then_some(address)
            })
            .collect()
    }
}

/// The address a box.json records (a lease's holder, if it still exists).
fn recorded_address(record: &Path) -> Option<Ipv4Addr> {
    #[derive(serde::Deserialize)]
    struct Address {
        address: Ipv4Addr,
    }
    let bytes = std::fs::read(record).ok()?;
    serde_json::from_slice::<Address>(&bytes).ok().map(|r| r.address)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProviderError + '_ {
    move |source| ProviderError::Io { context: format!("{}", path.display()), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(subnet: &str) -> LocalNetwork {
        LocalNetwork { bridge: "wsunit0".into(), network: "10.250.0.0/16".parse().unwrap(), subnet: subnet.parse().unwrap() }
    }

    /// Two HOMEs allocate from one machine directory: the second skips the
    /// first's lease while its box exists, and reuses it once it is gone.
    #[test]
    fn leases_are_shared_by_every_home_and_freed_with_the_box() {
        let dir = tempfile::tempdir().unwrap();
        let machine = Machine::new(dir.path().join("machine"));
        let net = network("10.250.9.0/30");
        let alice = dir.path().join("alice-box.json");
        let lock = machine.lock().unwrap();
        let a = machine.allocate(&lock, &net, &[], &alice).unwrap();
        std::fs::write(&alice, format!("{{\"address\":\"{a}\"}}")).unwrap();
        let bob = dir.path().join("bob-box.json");
        let b = machine.allocate(&lock, &net, &[], &bob).unwrap();
        assert_ne!(a, b, "bob's HOME does not know alice's box, the machine does");
        std::fs::write(&bob, format!("{{\"address\":\"{b}\"}}")).unwrap();
        let err = machine.allocate(&lock, &net, &[], &dir.path().join("carol")).unwrap_err().to_string();
        assert!(err.contains("no free address in local.subnet 10.250.9.0/30") && err.contains("[local] subnet"), "{err}");
        machine.release(a, &alice);
        std::fs::remove_file(&alice).unwrap();
        let carol = dir.path().join("carol");
        assert_eq!(machine.allocate(&lock, &net, &[], &carol).unwrap(), a);
        // A box booting at an address another live box holds is refused.
        let err = machine.claim(&lock, b, &carol).unwrap_err().to_string();
        assert!(err.contains("leased to another local box"), "{err}");
        machine.claim(&lock, b, &bob).unwrap();
    }
}
