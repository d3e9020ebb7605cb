//! The upload: disk blocks to an EBS snapshot, then RegisterImage.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_ebs::primitives::ByteStream;
use aws_sdk_ebs::types::ChecksumAlgorithm;
use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice, Filter, ImdsSupportValues, ResourceType, Tag, TagSpecification, VolumeType};
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::provider::tags;

use super::inputs::{api, GIB, ROOT_DEVICE};
use super::{Arch, Disk, ImageError, Inputs, BLOCK};

#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    pub blocks: u64,
    pub uploaded: u64,
    /// Holes and all-zero blocks, never sent.
    pub skipped_zero: u64,
    pub seconds: f64,
    /// Disk bytes covered per second (what a user waits for).
    pub mib_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Published {
    pub image_id: String,
    pub name: String,
    pub snapshot_id: String,
    /// True when an AMI with these inputs already existed.
    pub existing: bool,
    /// None when an existing snapshot was reused.
    pub upload: Option<Upload>,
    pub inputs: Inputs,
}

pub struct Publisher<'a> {
    pub ec2: &'a aws_sdk_ec2::Client,
    pub ebs: &'a aws_sdk_ebs::Client,
    /// Blocks in flight.
    pub concurrency: usize,
    pub progress: Option<&'a indicatif::ProgressBar>,
}

impl Publisher<'_> {
    pub async fn publish(&self, disk: &Path, inputs: &Inputs) -> Result<Published, ImageError> {
        let name = inputs.ami_name();
        if let Some((image_id, snapshot_id)) = self.find_image(&name).await? {
            // Tag again: a run that died between RegisterImage and
            // CreateTags left the AMI findable by name only.
            self.tag(&image_id, inputs).await?;
            return Ok(Published { image_id, name, snapshot_id, existing: true, upload: None, inputs: inputs.clone() });
        }
        let (snapshot_id, upload) = match self.find_snapshot(inputs).await? {
            Some(id) => (id, None),
            None => {
                let (id, upload) = self.upload(disk, inputs).await?;
                (id, Some(upload))
            }
        };
        self.wait_completed(&snapshot_id, Duration::from_secs(30 * 60)).await?;
        let image_id = match register_request(self.ec2, &name, &snapshot_id, inputs).send().await {
            Ok(out) => out.image_id().unwrap_or_default().to_string(),
            // A concurrent publish of the same inputs registered it first.
            Err(e) if e.as_service_error().and_then(|s| aws_sdk_ec2::error::ProvideErrorMetadata::code(s)) == Some("InvalidAMIName.Duplicate") => self
                .find_image(&name)
                .await?
                .map(|(id, _)| id)
                .ok_or(ImageError::Api { op: "RegisterImage", message: format!("{name} exists but cannot be found") })?,
            Err(e) => return Err(api("RegisterImage")(e)),
        };
        self.tag(&image_id, inputs).await?;
        Ok(Published { image_id, name, snapshot_id, existing: false, upload, inputs: inputs.clone() })
    }

    async fn find_image(&self, name: &str) -> Result<Option<(String, String)>, ImageError> {
        let out = self
            .ec2
            .describe_images()
            .owners("self")
            .filters(Filter::builder().name("name").values(name).build())
            .send()
            .await
            .map_err(api("DescribeImages"))?;
        Ok(out.images().iter().find(|i| !matches!(i.state().map(|s| s.as_str()), Some("deregistered" | "failed"))).map(|i| {
            let snapshot = i.block_device_mappings().iter().find_map(|b| b.ebs().and_then(|e| e.snapshot_id())).unwrap_or_default();
            (i.image_id().unwrap_or_default().to_string(), snapshot.to_string())
        }))
    }

    async fn find_snapshot(&self, inputs: &Inputs) -> Result<Option<String>, ImageError> {
        let out = self
            .ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(Filter::builder().name(format!("tag:{}", tags::IMAGE_INPUTS)).values(inputs.key()).build())
            .filters(Filter::builder().name("status").values("completed").build())
            .send()
            .await
            .map_err(api("DescribeSnapshots"))?;
        Ok(out.snapshots().first().and_then(|s| s.snapshot_id()).map(String::from))
    }

    async fn tag(&self, image_id: &str, inputs: &Inputs) -> Result<(), ImageError> {
        let tags = inputs.tags().into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        self.ec2.create_tags().resources(image_id).set_tags(Some(tags.collect())).send().await.map_err(api("CreateTags"))?;
        Ok(())
    }

    async fn upload(&self, disk: &Path, inputs: &Inputs) -> Result<(String, Upload), ImageError> {
        let shown = disk.display().to_string();
        let file = File::open(disk).map_err(|source| ImageError::Disk { path: shown.clone(), source })?;
        let size = file.metadata().map_err(|source| ImageError::Disk { path: shown.clone(), source })?.len();
        if size == 0 {
            return Err(ImageError::EmptyDisk { path: shown });
        }
        let blocks = size.div_ceil(BLOCK as u64);
        let started = Instant::now();
        let mut start = self
            .ebs
            .start_snapshot()
            .volume_size(size.div_ceil(GIB) as i64)
            .description(format!("{} root disk", inputs.ami_name()))
            .client_token(inputs.key())
            .timeout(60);
        for (k, v) in inputs.tags() {
            start = start.tags(aws_sdk_ebs::types::Tag::builder().key(k).value(v).build());
        }
        let snapshot = start.send().await.map_err(api("StartSnapshot"))?;
        let id = snapshot.snapshot_id().unwrap_or_default().to_string();
        if let Some(p) = self.progress {
            p.set_length(size);
            p.set_message(format!("uploading {shown} to {id}"));
        }

        // One thread reads (sequential reads are what disks are best at);
        // the puts run `concurrency` at a time.
        let (tx, rx) = tokio::sync::mpsc::channel::<(u64, Vec<u8>)>(self.concurrency * 2);
        let reader = tokio::task::spawn_blocking(move || read_blocks(file, size, &tx));
        let blocks_stream = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|b| (b, rx)) });
        let uploaded = blocks_stream
            .map(|(index, data)| self.put_block(&id, index, data))
            .buffer_unordered(self.concurrency.max(1))
            .try_fold(0u64, |n, ()| async move { Ok(n + 1) })
            .await;
        // A failed put drops the receiver, which ends the reader.
        let read = reader.await.expect("block reader panicked").map_err(|source| ImageError::Disk { path: shown.clone(), source });
        let uploaded = uploaded?;
        read?;
        self.ebs.complete_snapshot().snapshot_id(&id).changed_blocks_count(uploaded as i32).send().await.map_err(api("CompleteSnapshot"))?;
        let seconds = started.elapsed().as_secs_f64();
        let upload = Upload { blocks, uploaded, skipped_zero: blocks - uploaded, seconds, mib_per_s: size as f64 / (1 << 20) as f64 / seconds.max(1e-9) };
        Ok((id, upload))
    }

    async fn put_block(&self, snapshot: &str, index: u64, data: Vec<u8>) -> Result<(), ImageError> {
        let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&data));
        let len = data.len();
        self.ebs
            .put_snapshot_block()
            .snapshot_id(snapshot)
            .block_index(index as i32)
            .data_length(len as i32)
            .checksum(checksum)
            .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .block_data(ByteStream::from(data))
            .send()
            .await
            .map_err(api("PutSnapshotBlock"))?;
        if let Some(p) = self.progress {
            p.inc(len as u64);
        }
        Ok(())
    }

    /// EBS direct snapshots go from pending to completed after
    /// CompleteSnapshot; RegisterImage needs completed.
    async fn wait_completed(&self, id: &str, limit: Duration) -> Result<(), ImageError> {
        let started = Instant::now();
        loop {
            let out = self.ec2.describe_snapshots().snapshot_ids(id).send().await.map_err(api("DescribeSnapshots"))?;
            let state = out.snapshots().first().and_then(|s| s.state()).map(|s| s.as_str().to_string()).unwrap_or_default();
            match state.as_str() {
                "completed" => return Ok(()),
                "error" => return Err(ImageError::Api { op: "CompleteSnapshot", message: format!("snapshot {id} is in state error") }),
                _ if started.elapsed() >= limit => return Err(ImageError::SnapshotTimeout { id: id.into(), minutes: limit.as_secs() / 60, state }),
                _ => tokio::time::sleep(Duration::from_secs(2)).await,
            }
        }
    }
}

/// Sends the disk's blocks that hold data, in order, to the uploads.
fn read_blocks(file: File, size: u64, tx: &tokio::sync::mpsc::Sender<(u64, Vec<u8>)>) -> std::io::Result<()> {
    for block in DataBlocks::new(file, size) {
        if tx.blocking_send(block?).is_err() {
            break;
        }
    }
    Ok(())
}

/// `sha256:` of a disk's data blocks and their indices: what a bare disk
/// file is, for its AMI's identity (holes and zero blocks read as zeros,
/// so a file and its sparse copy are the same disk).
pub fn data_digest(path: &Path) -> std::io::Result<String> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut hash = Sha256::new();
    hash.update(size.to_le_bytes());
    for block in DataBlocks::new(file, size) {
        let (index, data) = block?;
        hash.update(index.to_le_bytes());
        hash.update(&data);
    }
    Ok(format!("sha256:{}", hex::encode(hash.finalize())))
}

/// The disk's blocks that hold data, as (index, whole block zero-padded at
/// the end): holes are skipped with SEEK_DATA, all-zero blocks after a read.
struct DataBlocks {
    file: File,
    size: u64,
    pos: u64,
}

impl DataBlocks {
    fn new(file: File, size: u64) -> DataBlocks {
        DataBlocks { file, size, pos: 0 }
    }

    fn next_block(&mut self) -> std::io::Result<Option<(u64, Vec<u8>)>> {
        use std::io::{Seek, SeekFrom};
        while self.pos < self.size {
            let Some(data) = next_data(&self.file, self.pos)? else { break };
            let index = data / BLOCK as u64;
            let at = index * BLOCK as u64;
            self.file.seek(SeekFrom::Start(at))?;
            let mut buf = vec![0u8; BLOCK];
            let want = (self.size - at).min(BLOCK as u64) as usize;
            self.file.read_exact(&mut buf[..want])?;
            self.pos = at + BLOCK as u64;
            if buf.iter().any(|b| *b != 0) {
                return Ok(Some((index, buf)));
            }
        }
        self.pos = self.size;
        Ok(None)
    }
}

impl Iterator for DataBlocks {
    type Item = std::io::Result<(u64, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_block().transpose()
    }
}

/// The next offset at or after `pos` that holds data, or None past the last
/// data. Filesystems without SEEK_DATA report `pos` itself.
fn next_data(file: &File, pos: u64) -> std::io::Result<Option<u64>> {
    // SAFETY: lseek on a valid, open descriptor only moves its offset.
    let at = unsafe { libc::lseek(file.as_raw_fd(), pos as libc::off_t, libc::SEEK_DATA) };
    if at >= 0 {
        return Ok(Some(at as u64));
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        Some(libc::EINVAL) => Ok(Some(pos)),
        _ => Err(err),
    }
}

/// RegisterImage as the boxes need it: HVM, ENA, a gp3 root that goes with
/// the instance, IMDSv2 only (no instance of this image can be asked for
/// credentials without a session token), the architecture's boot mode.
pub fn register_request(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    snapshot_id: &str,
    inputs: &Inputs,
) -> aws_sdk_ec2::operation::register_image::builders::RegisterImageFluentBuilder {
    // Tagged as it is registered (the publisher's IAM allows tags on an
    // image only then, or on one already carrying them); `tag` repeats it
    // for APIs without tag-on-create (moto ignores these).
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Image)
        .set_tags(Some(inputs.tags().into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
        .build();
    ec2.register_image()
        .name(name)
        .tag_specifications(tags)
        .description(format!("workstation box image ({} inputs {})", inputs.image, inputs.key()))
        .architecture(inputs.arch.ec2())
        .boot_mode(inputs.arch.boot_mode())
        .virtualization_type("hvm")
        .ena_support(true)
        .imds_support(ImdsSupportValues::V20)
        .root_device_name(ROOT_DEVICE)
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(ROOT_DEVICE)
                .ebs(EbsBlockDevice::builder().snapshot_id(snapshot_id).volume_type(VolumeType::Gp3).delete_on_termination(true).build())
                .build(),
        )
}

impl Inputs {
    /// The identity of `disk`: its architecture (given, else the nix system
    /// of the build, else this machine's) and content (its store path, else
    /// a pass over its data). What it says was baked in becomes tags once
    /// checked: a build result is local, but tag values are read by others.
    pub fn of(image: String, disk: &Disk, arch: Option<Arch>) -> Result<Inputs, ImageError> {
        let arch = match (arch, disk.system.as_str()) {
            (Some(a), _) => a,
            (None, "x86_64-linux") => Arch::X86_64,
            (None, "aarch64-linux") => Arch::Aarch64,
            (None, _) => Arch::of_this_machine().ok_or(ImageError::UnknownArch)?,
        };
        let content = match &disk.store_path {
            Some(p) => p.display().to_string(),
            None => data_digest(&disk.file).map_err(|source| ImageError::Disk { path: disk.file.display().to_string(), source })?,
        };
        let baked = |field: &'static str, value: &Option<String>, ok: fn(&str) -> bool| match value {
            Some(v) if !ok(v) => Err(ImageError::Baked { field, value: v.clone() }),
            v => Ok(v.clone()),
        };
        Ok(Inputs {
            image,
            arch,
            content,
            manifest_hash: baked("manifest_hash", &disk.baked.manifest_hash, |v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))?,
            nixpkgs: baked("nixpkgs", &disk.baked.nixpkgs, |v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))?,
            commit: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{ArchitectureValues, BootModeValues};

    use super::*;
    use crate::image::Arch;
    use std::io::{Seek, SeekFrom, Write};

    fn inputs(arch: Arch) -> Inputs {
        Inputs { image: "workstation".into(), arch, content: "sha256:00".into(), manifest_hash: None, nixpkgs: None, commit: None }
    }

    #[test]
    fn register_request_carries_what_boxes_need() {
        let conf = aws_sdk_ec2::Config::builder().behavior_version(aws_sdk_ec2::config::BehaviorVersion::latest()).build();
        let client = aws_sdk_ec2::Client::from_conf(conf);
        for (arch, ec2_arch, boot) in
            [(Arch::X86_64, ArchitectureValues::X8664, BootModeValues::LegacyBios), (Arch::Aarch64, ArchitectureValues::Arm64, BootModeValues::Uefi)]
        {
            let req = register_request(&client, "n", "snap-1", &inputs(arch));
            let input = req.as_input();
            assert_eq!(input.get_architecture().as_ref(), Some(&ec2_arch));
            assert_eq!(input.get_boot_mode().as_ref(), Some(&boot));
            assert_eq!(input.get_ena_support(), &Some(true));
            assert_eq!(input.get_imds_support().as_ref(), Some(&ImdsSupportValues::V20));
            assert_eq!(input.get_virtualization_type().as_deref(), Some("hvm"));
            let bdm = &input.get_block_device_mappings().as_ref().unwrap()[0];
            assert_eq!(bdm.device_name(), input.get_root_device_name().as_deref());
            let ebs = bdm.ebs().unwrap();
            assert_eq!((ebs.snapshot_id(), ebs.volume_type(), ebs.delete_on_termination()), (Some("snap-1"), Some(&VolumeType::Gp3), Some(true)));
        }
    }

    #[test]
    fn inputs_name_the_image() {
        let a = inputs(Arch::X86_64);
        assert_eq!(a.ami_name(), format!("workstation-x86_64-linux-{}", a.key()));
        assert_ne!(a.key(), inputs(Arch::Aarch64).key());
        assert_ne!(a.key(), Inputs { content: "sha256:01".into(), ..a.clone() }.key());
        assert_ne!(a.key(), Inputs { image: "other".into(), ..a.clone() }.key());
        // What the build says it baked in is a tag, not the identity.
        assert_eq!(a.key(), Inputs { manifest_hash: Some("m".into()), ..a.clone() }.key());
    }

    #[test]
    fn a_bare_disk_is_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let (dense, sparse) = (dir.path().join("dense"), dir.path().join("sparse"));
        let mut bytes = vec![0u8; 3 * BLOCK];
        bytes[BLOCK + 7] = 1;
        std::fs::write(&dense, &bytes).unwrap();
        let mut f = std::fs::File::create(&sparse).unwrap();
        f.seek(SeekFrom::Start(BLOCK as u64 + 7)).unwrap();
        f.write_all(&[1]).unwrap();
        f.set_len(3 * BLOCK as u64).unwrap();
        assert_eq!(data_digest(&dense).unwrap(), data_digest(&sparse).unwrap(), "holes read as zeros");
        bytes[2 * BLOCK] = 1;
        std::fs::write(&dense, &bytes).unwrap();
        assert_ne!(data_digest(&dense).unwrap(), data_digest(&sparse).unwrap());
        bytes.push(0);
        std::fs::write(&sparse, &bytes[..]).unwrap();
        bytes.pop();
        std::fs::write(&dense, &bytes).unwrap();
        assert_ne!(data_digest(&dense).unwrap(), data_digest(&sparse).unwrap(), "a longer disk differs");
    }

    #[test]
    fn reader_skips_holes_and_zero_blocks_and_pads_the_tail() {
        let mut f = tempfile::tempfile().unwrap();
        f.seek(SeekFrom::Start(3 * BLOCK as u64 + 5)).unwrap();
        f.write_all(b"data").unwrap(); // block 3; blocks 0-2 are a hole
        f.seek(SeekFrom::Start(5 * BLOCK as u64)).unwrap();
        f.write_all(&vec![0u8; BLOCK]).unwrap(); // block 5: written zeros
        f.write_all(b"tail").unwrap(); // block 6, partial
        let size = f.metadata().unwrap().len();
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        read_blocks(f, size, &tx).unwrap();
        drop(tx);
        let mut got = Vec::new();
        while let Ok(b) = rx.try_recv() {
            got.push(b);
        }
        assert_eq!(got.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [3, 6]);
        assert!(got.iter().all(|(_, d)| d.len() == BLOCK));
        assert_eq!(&got[0].1[5..9], b"data");
        assert_eq!(&got[1].1[..4], b"tail");
        assert!(got[1].1[4..].iter().all(|b| *b == 0));
    }
}
