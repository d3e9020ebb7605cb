//! Makes moto's instances real: every running instance becomes a box (a
//! network namespace with sshd) at the private address moto assigned, and
//! runs the image's first-boot step, `workstation box publish-host-key`,
//! against moto. Stopped instances are powered off, terminated ones removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use aws_sdk_ec2::types::InstanceStateName;
use workstation::provider::netns::BoxHost;
use workstation::provider::tags;
use workstation::provider::LocalNetwork;

use crate::moto::{block_on, Moto};

/// How often the fleet looks at moto: fast enough that create's polling
/// sees changes within a few of its own polls.
const TICK: Duration = Duration::from_millis(50);

pub struct Fleet {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    errors: Arc<Mutex<Vec<String>>>,
}

struct Instance {
    id: String,
    state: InstanceStateName,
    address: Option<std::net::Ipv4Addr>,
    has_host_key: bool,
}

impl Fleet {
    pub fn start(moto: &Moto, network: LocalNetwork, dir: PathBuf, public_key: String, bin: &Path) -> Fleet {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (client, env, bin) = (moto.client(), moto.client_env(), bin.to_owned());
        let (stop2, errors2) = (stop.clone(), errors.clone());
        let thread = std::thread::spawn(move || {
            let mut hosts: HashMap<String, BoxHost> = HashMap::new();
            while !stop2.load(Ordering::SeqCst) {
                let instances = block_on(describe(&client));
                for inst in instances {
                    if let Err(e) = reconcile(&inst, &mut hosts, &network, &dir, &public_key, &bin, &env) {
                        errors2.lock().unwrap().push(format!("{}: {e}", inst.id));
                    }
                }
                std::thread::sleep(TICK);
            }
            for host in hosts.values() {
                let _ = host.halt();
            }
        });
        Fleet { stop, thread: Some(thread), errors }
    }

    /// Panics with the fleet's errors, if any: a box that failed to boot
    /// would otherwise show up as a confusing timeout.
    pub fn assert_healthy(&self) {
        let errors = self.errors.lock().unwrap();
        assert!(errors.is_empty(), "fleet errors:\n{}", errors.join("\n"));
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn describe(client: &aws_sdk_ec2::Client) -> Vec<Instance> {
    let Ok(out) = client.describe_instances().send().await else { return Vec::new() };
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| Instance {
            id: i.instance_id().unwrap_or_default().to_string(),
            state: i.state().and_then(|s| s.name()).cloned().unwrap_or(InstanceStateName::Pending),
            address: i.private_ip_address().and_then(|a| a.parse().ok()),
            has_host_key: i.tags().iter().any(|t| t.key() == Some(tags::HOST_KEY)),
        })
        .collect()
}

fn reconcile(
    inst: &Instance,
    hosts: &mut HashMap<String, BoxHost>,
    network: &LocalNetwork,
    dir: &Path,
    public_key: &str,
    bin: &Path,
    env: &[(String, String)],
) -> Result<(), String> {
    match inst.state {
        InstanceStateName::Running => {
            let Some(address) = inst.address else { return Ok(()) };
            let host = hosts.entry(inst.id.clone()).or_insert_with(|| {
                let hex = inst.id.trim_start_matches("i-");
                BoxHost {
                    ns: format!("wt-{hex}"),
                    veth: format!("wt{}", &hex[hex.len().saturating_sub(10)..]),
                    address,
                    network: network.clone(),
                    dir: dir.join(&inst.id),
                    root: dir.join(&inst.id).join("root"),
                    hostname: format!("box-{hex}"),
                }
            });
            if !host.is_up() {
                std::fs::create_dir_all(&host.dir).map_err(|e| e.to_string())?;
                std::fs::write(host.authorized_keys(), public_key).map_err(|e| e.to_string())?;
                host.boot().map_err(|e| e.to_string())?;
            }
            if !inst.has_host_key {
                // The image's first-boot unit, run for real against moto.
                let out = Command::new(bin)
                    .args(["box", "publish-host-key", "--region", crate::REGION, "--instance-id", &inst.id, "--host-key-file"])
                    .arg(host.host_key_pub())
                    .env_clear()
                    .envs(env.iter().map(|(k, v)| (k, v)))
                    .output()
                    .map_err(|e| e.to_string())?;
                if !out.status.success() {
                    return Err(format!("publish-host-key: {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
        }
        InstanceStateName::Stopping | InstanceStateName::Stopped => {
            if let Some(host) = hosts.get(&inst.id) {
                host.halt().map_err(|e| e.to_string())?;
            }
        }
        InstanceStateName::ShuttingDown | InstanceStateName::Terminated => {
            if let Some(host) = hosts.remove(&inst.id) {
                host.halt().map_err(|e| e.to_string())?;
                let _ = std::fs::remove_dir_all(&host.dir);
            }
        }
        _ => {}
    }
    Ok(())
}
