//! `workstation box hibernation`: the guest side of EC2 hibernation, run
//! at every boot of an image built with `box.hibernate` (images/
//! hibernation.nix), as AWS's hibinit agent does on Amazon Linux.
//!
//! EC2 hibernates by pressing the ACPI sleep button (logind hibernates on
//! it); the kernel then writes RAM to the active swap area and powers off,
//! and the next boot resumes if its command line names that area:
//! `resume=` the root device (the image's boot.resumeDevice) and
//! `resume_offset=` the swap file's first block, which is known only once
//! the file exists on this root. So each boot:
//! 1. makes the swap file the size of RAM if it is not (fallocate, as the
//!    agent), and swaps on it at the highest priority;
//! 2. finds its offset (FIEMAP) and writes it, then the device, to
//!    /sys/power (so this very boot can hibernate: systemd refuses to when
//!    /sys/power/resume does not match the swap in use);
//! 3. sets `ws_resume_args=resume_offset=N` ([`GRUB_VARIABLE`]) in GRUB's environment block,
//!    which the image's kernel command line expands (the next boot);
//! 4. says what it found in the journal and in a status file `doctor` reads.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The swap file's priority: above any other swap, so hibernation writes
/// its image here.
const PRIORITY: &str = "32767";
/// The GRUB variable the image's kernel command line expands
/// (images/lib.nix hibernation.kernelParams).
pub const GRUB_VARIABLE: &str = "ws_resume_args";
const MIB: u64 = 1024 * 1024;

pub struct Setup {
    pub swap_file: PathBuf,
    /// The block device the swap file is on (the root), as the kernel
    /// command line names it.
    pub resume_device: PathBuf,
    /// GRUB's environment block (`/boot/grub/grubenv`).
    pub grub_env: PathBuf,
    /// Where the outcome is written for `doctor`.
    pub status: PathBuf,
}

/// Prepares hibernation; the line for the journal and the status file,
/// `ready: ...` or `not ready: ...`.
pub fn prepare(setup: &Setup) -> Result<String, String> {
    let states = std::fs::read_to_string("/sys/power/state").unwrap_or_default();
    if !states.split_whitespace().any(|s| s == "disk") {
        return Err("the kernel cannot hibernate (no \"disk\" in /sys/power/state)".into());
    }
    let ram =
        mem_total_bytes(&std::fs::read_to_string("/proc/meminfo").map_err(|e| format!("reading /proc/meminfo: {e}"))?).ok_or("no MemTotal in /proc/meminfo")?;
    let size = ram.div_ceil(MIB) * MIB;
    let made = ensure_swap_file(&setup.swap_file, size)?;
    let device = std::fs::metadata(&setup.resume_device).map_err(|e| format!("resume device {}: {e}", setup.resume_device.display()))?.rdev();
    let on = std::fs::metadata(&setup.swap_file).map_err(|e| format!("{}: {e}", setup.swap_file.display()))?.dev();
    if on != device {
        return Err(format!("{} is not on {} (the resume device)", setup.swap_file.display(), setup.resume_device.display()));
    }
    let offset = resume_offset(&setup.swap_file)?;
    let (major, minor) = (libc::major(device), libc::minor(device));
    // The offset first: writing `resume` makes the kernel look there.
    std::fs::write("/sys/power/resume_offset", offset.to_string()).map_err(|e| format!("writing /sys/power/resume_offset: {e}"))?;
    std::fs::write("/sys/power/resume", format!("{major}:{minor}")).map_err(|e| format!("writing /sys/power/resume: {e}"))?;
    set_grub_env(&setup.grub_env, &format!("resume_offset={offset}"))?;
    Ok(format!(
        "ready: {} MiB swap file {} ({}) for {} MiB of RAM, resume={major}:{minor} resume_offset={offset}",
        size / MIB,
        setup.swap_file.display(),
        if made { "made" } else { "kept" },
        ram / MIB
    ))
}

/// Runs [`prepare`] and records the outcome for `doctor`.
pub fn prepare_and_record(setup: &Setup) -> Result<String, String> {
    let outcome = prepare(setup);
    let line = match &outcome {
        Ok(ready) => ready.clone(),
        Err(why) => format!("not ready: {why}"),
    };
    workstation_hosts_protocol::atomic::write(&setup.status, format!("{line}\n").as_bytes(), 0o644)
        .map_err(|e| format!("writing {}: {e}", setup.status.display()))?;
    outcome
}

fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let kib = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()?;
    Some(kib * 1024)
}

/// Makes `path` a swap area of `size` bytes unless it is one already, and
/// swaps on it; whether it was made.
fn ensure_swap_file(path: &Path, size: u64) -> Result<bool, String> {
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    let active = swaps.lines().skip(1).any(|l| l.split_whitespace().next() == Some(&path.display().to_string()));
    let current = std::fs::metadata(path).map(|m| m.len()).ok();
    let swapon = || run(Command::new("swapon").args(["--priority", PRIORITY]).arg(path));
    if current == Some(size) {
        // Kept: unless a boot died between making it and mkswap, when
        // swapon refuses it and it is made again.
        if active || swapon().is_ok() {
            return Ok(false);
        }
    } else if active {
        run(Command::new("swapoff").arg(path))?;
    }
    let _ = std::fs::remove_file(path);
    let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    allocate(&file, size).map_err(|e| format!("allocating {} MiB for {}: {e}", size / MIB, path.display()))?;
    run(Command::new("mkswap").arg(path))?;
    swapon()?;
    Ok(true)
}

fn allocate(file: &File, size: u64) -> std::io::Result<()> {
    let len = libc::off_t::try_from(size).map_err(|_| std::io::Error::other("too large"))?;
    // SAFETY: fallocate on a file descriptor this File owns.
    let rc = unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(file), 0, 0, len) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    file.sync_all()
}

/// FS_IOC_FIEMAP (linux/fs.h): _IOWR('f', 11, struct fiemap).
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const FIEMAP_FLAG_SYNC: u32 = 0x1;
/// Extent flags that make a block address unusable for swap: unknown or
/// delayed location, encoded, encrypted, not aligned, inline, packed in a
/// tail, shared (linux/fiemap.h).
const UNUSABLE: u32 = 0x2 | 0x4 | 0x8 | 0x80 | 0x100 | 0x200 | 0x400 | 0x2000;

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct FiemapExtent {
    logical: u64,
    physical: u64,
    length: u64,
    reserved64: [u64; 2],
    flags: u32,
    reserved: [u32; 3],
}

#[repr(C)]
#[derive(Default)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; 1],
}

/// `resume_offset` for the swap file at `path`: where its first page (the
/// swap header) is on the device, in pages (the kernel's
/// Documentation/power/swsusp-and-swap-files).
pub fn resume_offset(path: &Path) -> Result<u64, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut map = Fiemap { length: u64::MAX, flags: FIEMAP_FLAG_SYNC, extent_count: 1, ..Default::default() };
    // SAFETY: the kernel writes at most extent_count (1) extents into the
    // struct, which lives for the call.
    let rc = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), FS_IOC_FIEMAP as _, &mut map as *mut Fiemap) };
    if rc != 0 {
        return Err(format!("FIEMAP on {}: {}", path.display(), std::io::Error::last_os_error()));
    }
    let first = map.extents[0];
    if map.mapped_extents == 0 || first.logical != 0 {
        return Err(format!("{} has no block at its start (a hole): it cannot hold a swap header", path.display()));
    }
    if first.flags & UNUSABLE != 0 {
        return Err(format!("{}'s first block has no fixed address (extent flags {:#x})", path.display(), first.flags));
    }
    // SAFETY: sysconf has no memory effects.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).map_err(|_| "no page size")?;
    Ok(first.physical / page)
}

/// `grub-editenv FILE set ws_resume_args=VALUE`, unless already so.
fn set_grub_env(file: &Path, value: &str) -> Result<(), String> {
    let want = format!("{GRUB_VARIABLE}={value}");
    if file.exists() {
        let listed = Command::new("grub-editenv").arg(file).arg("list").output().map_err(|e| format!("grub-editenv: {e}"))?;
        if String::from_utf8_lossy(&listed.stdout).lines().any(|l| l == want) {
            return Ok(());
        }
    } else {
        run(Command::new("grub-editenv").arg(file).arg("create"))?;
    }
    run(Command::new("grub-editenv").arg(file).arg("set").arg(&want))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!("{:?} failed: {}", cmd.get_program(), String::from_utf8_lossy(&out.stderr).trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offset of a file made here, against e2fsprogs' own reading of
    /// its first extent (`filefrag -v`, in filesystem blocks). Made beside
    /// the crate, on a disk's filesystem (a tmpfs has no block addresses).
    #[test]
    fn the_resume_offset_is_the_files_first_block_in_pages() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("swapfile");
        let file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).unwrap();
        allocate(&file, 8 * MIB).unwrap();
        let offset = resume_offset(&path).unwrap();
        let out = Command::new("filefrag").arg("-v").arg(&path).output().expect("filefrag (e2fsprogs)");
        let text = String::from_utf8_lossy(&out.stdout);
        let block: u64 = text.lines().find_map(|l| l.split_once("blocks of ")).and_then(|(_, b)| b.split_whitespace().next()?.parse().ok()).unwrap();
        // "   0:        0..    2047:    3600384..   3602431: ..."
        let first = text.lines().find(|l| l.trim_start().starts_with("0:")).unwrap();
        let physical: u64 = first.split(':').nth(2).unwrap().trim().split("..").next().unwrap().trim().parse().unwrap();
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap();
        assert_eq!(offset, physical * block / page, "{text}");
        assert!(offset > 0);
        // A file that starts with a hole has no header block to point at.
        let sparse = dir.path().join("sparse");
        std::fs::File::create(&sparse).unwrap().set_len(MIB).unwrap();
        assert!(resume_offset(&sparse).unwrap_err().contains("no block at its start"));
    }

    #[test]
    fn ram_is_read_from_meminfo() {
        assert_eq!(mem_total_bytes("MemTotal:        8039352 kB\nMemFree: 1 kB\n"), Some(8039352 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
    }
}
