//! Makes moto's instances real: every running instance becomes a box (a
//! network namespace with sshd) at the private address moto assigned, and
//! runs the image's first-boot step, `workstation box publish-host-key`,
//! against moto. Stopped instances are powered off, terminated ones removed.
//!
//! A box's root (home, stores, `src/`) is the directory of the EBS volume
//! attached at its data device, so a volume kept by `destroy` and
//! reattached by `create` brings its files along; an instance launched to
//! reattach one boots once it is attached, as the image waits for it.
//! Given the shim's URL ([`Fleet::follow_root_tasks`]), the fleet also does
//! the shim's root volume replacement tasks: the box halts, loses its host
//! key (the root volume's), boots and publishes a new one.

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
    tasks_from: Arc<Mutex<Option<String>>>,
}

struct Instance {
    id: String,
    state: InstanceStateName,
    address: Option<std::net::Ipv4Addr>,
    has_host_key: bool,
    /// The volume at the data device.
    data: Option<String>,
    /// Launched by workstation (which records the image), so with a data
    /// volume: made with it (moto lists it a moment after the launch), or
    /// a kept one attached once it runs.
    wants_data: bool,
}

impl Fleet {
    /// Boxes reach moto and `imds` (the instance metadata server) as an
    /// EC2 instance reaches AWS: through its SSH sessions' environment
    /// (what an image-built box's programs inherit from the system),
    /// with credentials from the instance role in metadata.
    pub fn start(moto: &Moto, imds: &str, network: LocalNetwork, dir: PathBuf, public_key: String, bin: &Path) -> Fleet {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (client, env, bin) = (moto.client(), moto.client_env(), bin.to_owned());
        let box_env: Vec<(String, String)> = [
            ("WORKSTATION_BIN", bin.display().to_string()),
            ("AWS_ENDPOINT_URL", moto.url.clone()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.to_owned()),
            ("AWS_REGION", crate::REGION.to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let tasks_from = Arc::new(Mutex::new(None::<String>));
        let (stop2, errors2, tasks2) = (stop.clone(), errors.clone(), tasks_from.clone());
        let thread = std::thread::spawn(move || {
            let mut hosts: HashMap<String, BoxHost> = HashMap::new();
            while !stop2.load(Ordering::SeqCst) {
                let instances = block_on(describe(&client));
                for inst in instances {
                    if let Err(e) = reconcile(&inst, &mut hosts, &network, &dir, &public_key, &bin, &env, &box_env) {
                        errors2.lock().unwrap().push(format!("{}: {e}", inst.id));
                    }
                }
                let shim = tasks2.lock().unwrap().clone();
                if let Some(shim) = shim {
                    if let Err(e) = replace_roots(&shim, &hosts, &bin, &env) {
                        errors2.lock().unwrap().push(format!("root replacement: {e}"));
                    }
                }
                std::thread::sleep(TICK);
            }
            for host in hosts.values() {
                let _ = host.halt();
            }
        });
        Fleet { stop, thread: Some(thread), errors, tasks_from }
    }

    /// Does the root volume replacement tasks of the shim at `url`.
    pub fn follow_root_tasks(&self, url: &str) {
        *self.tasks_from.lock().unwrap() = Some(url.to_owned());
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
            data: i
                .block_device_mappings()
                .iter()
                .find(|b| b.device_name() == Some(workstation::provider::data::DEVICE))
                .and_then(|b| b.ebs()?.volume_id())
                .map(String::from),
            wants_data: i.tags().iter().any(|t| t.key() == Some(tags::DATA_VOLUME) || t.key() == Some(tags::IMAGE_ID)),
        })
        .collect()
}

// One argument per thing a box is made from; the loop above owns them all.
#[allow(clippy::too_many_arguments)]
fn reconcile(
    inst: &Instance,
    hosts: &mut HashMap<String, BoxHost>,
    network: &LocalNetwork,
    dir: &Path,
    public_key: &str,
    bin: &Path,
    env: &[(String, String)],
    box_env: &[(String, String)],
) -> Result<(), String> {
    match inst.state {
        InstanceStateName::Running => {
            let Some(address) = inst.address else { return Ok(()) };
            if inst.wants_data && inst.data.is_none() && !hosts.contains_key(&inst.id) {
                // The image waits for its data volume before anything starts.
                return Ok(());
            }
            let host = hosts.entry(inst.id.clone()).or_insert_with(|| {
                let hex = inst.id.trim_start_matches("i-");
                BoxHost {
                    ns: format!("wt-{hex}"),
                    veth: format!("wt{}", &hex[hex.len().saturating_sub(10)..]),
                    address,
                    network: network.clone(),
                    dir: dir.join(&inst.id),
                    root: match &inst.data {
                        Some(volume) => dir.join("volumes").join(volume),
                        None => dir.join(&inst.id).join("root"),
                    },
                    hostname: format!("box-{hex}"),
                    env: box_env.to_vec(),
                    team: false,
                }
            });
            if !host.is_up() {
                std::fs::create_dir_all(&host.dir).map_err(|e| e.to_string())?;
                std::fs::write(host.authorized_keys(), public_key).map_err(|e| e.to_string())?;
                host.boot().map_err(|e| e.to_string())?;
                // What the image's data unit writes once the volume is mounted.
                if inst.data.is_some() {
                    std::fs::write(host.root().join(workstation::provider::data::MARKER), b"").map_err(|e| e.to_string())?;
                }
            }
            if !inst.has_host_key {
                publish_host_key(&inst.id, host, bin, env)?;
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

/// The image's first-boot unit, run for real against moto.
fn publish_host_key(id: &str, host: &BoxHost, bin: &Path, env: &[(String, String)]) -> Result<(), String> {
    let out = Command::new(bin)
        .args(["box", "publish-host-key", "--region", crate::REGION, "--instance-id", id, "--host-key-file"])
        .arg(host.host_key_pub())
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("publish-host-key: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// The shim's pending root replacements, done as EC2 does them: the box
/// reboots onto a new root (a new host key, which its first-boot unit
/// publishes), its data volume untouched. A task the shim was told to fail
/// fails with the old root in place.
fn replace_roots(shim: &str, hosts: &HashMap<String, BoxHost>, bin: &Path, env: &[(String, String)]) -> Result<(), String> {
    let tasks: serde_json::Value = serde_json::from_str(&crate::shim::control(shim, "GET", "/__root_tasks", "")?).map_err(|e| e.to_string())?;
    for task in tasks.as_array().into_iter().flatten().filter(|t| t["taskState"] == "pending") {
        let (id, instance) = (task["replaceRootVolumeTaskId"].as_str().unwrap_or_default(), task["instanceId"].as_str().unwrap_or_default());
        let set = |state: &str| crate::shim::control(shim, "POST", &format!("/__root_tasks/{id}"), &format!("{{\"state\": \"{state}\"}}"));
        set("in-progress")?;
        let Some(host) = hosts.get(instance).filter(|_| task["fail"] != true) else {
            set("failed")?;
            continue;
        };
        host.halt().map_err(|e| e.to_string())?;
        host.forget_host_key().map_err(|e| e.to_string())?;
        host.boot().map_err(|e| e.to_string())?;
        set("succeeded")?;
        publish_host_key(instance, host, bin, env)?;
    }
    Ok(())
}
