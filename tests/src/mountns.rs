//! A private mount namespace whose /etc is a throwaway overlay of the real
//! one: programs run inside see a real, writable /etc/hosts (getent, glibc,
//! rename into /etc) while the machine's own file is never touched.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct MountNs {
    holder: Child,
    pub dir: tempfile::TempDir,
}

impl MountNs {
    pub fn start() -> MountNs {
        let dir = tempfile::Builder::new().prefix("mountns-").tempdir_in(crate::e2e_root()).unwrap();
        let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
        std::fs::create_dir_all(&upper).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        let script =
            format!("mount -t overlay overlay -o lowerdir=/etc,upperdir={},workdir={} /etc && echo ready && exec sleep 3600", upper.display(), work.display());
        let mut holder =
            Command::new("unshare").args(["--mount", "--propagation", "private", "sh", "-c", &script]).stdout(Stdio::piped()).spawn().expect("unshare runs");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "the overlay on /etc could not be mounted");
        MountNs { holder, dir }
    }

    /// A command run inside the namespace (nsenter execs it: same pid, so
    /// killing the child kills the program itself).
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = self.enter();
        c.arg(program);
        c
    }

    /// `nsenter` into the namespace, waiting for the program to run.
    pub fn enter(&self) -> Command {
        let mut c = Command::new("nsenter");
        c.arg("-t").arg(self.holder.id().to_string()).arg("-m").arg("--");
        c
    }

    /// /etc/hosts as the namespace sees it, reachable from outside.
    pub fn hosts(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root/etc/hosts", self.holder.id()))
    }

    /// `getent hosts NAME` inside: the first address, if any.
    pub fn getent(&self, name: &str) -> Option<String> {
        let out = self.cmd("getent").args(["hosts", name]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().map(str::to_owned)
    }

    /// Replaces /etc/hosts inside by a bind mount of `file` (as container
    /// runtimes do): rename over it then fails with EBUSY.
    pub fn bind_hosts(&self, file: &std::path::Path) {
        let out = self.cmd("mount").arg("--bind").arg(file).arg("/etc/hosts").output().unwrap();
        assert!(out.status.success(), "bind mount: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for MountNs {
    fn drop(&mut self) {
        // A box created inside (`ip netns add` run there) has its namespace
        // mounted only inside: outside, /run/netns/NAME is a plain file, so
        // the env's teardown finds no processes to stop, and they would
        // outlive the test. Stop them from inside.
        use std::os::unix::fs::MetadataExt;
        let inside = PathBuf::from(format!("/proc/{}/root/run/netns", self.holder.id()));
        let nsfs = std::fs::metadata("/proc/self/ns/net").map(|m| m.dev()).unwrap_or_default();
        let only_inside: Vec<String> = std::fs::read_dir(&inside)
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                // A namespace mounted here (nsfs) and not the same one outside;
                // a plain file here is someone else's box, mounted outside.
                let id = |p: &std::path::Path| std::fs::metadata(p).ok().filter(|m| m.dev() == nsfs).map(|m| m.ino());
                let here = id(&e.path());
                here.is_some() && here != id(&PathBuf::from("/run/netns").join(e.file_name()))
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for ns in only_inside {
            // Until empty: supervisord may start a program while others stop.
            for _ in 0..5 {
                let pids = self.cmd("ip").args(["netns", "pids", &ns]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
                if pids.trim().is_empty() {
                    break;
                }
                let _ = Command::new("kill").arg("-9").args(pids.split_whitespace()).status();
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = self.cmd("ip").args(["netns", "del", &ns]).status();
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
