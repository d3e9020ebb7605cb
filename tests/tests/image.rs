//! `workstation image publish` against moto's EC2 and EBS direct APIs, and
//! `create` selecting the published image by its tag.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use aws_sdk_ec2::types::Filter;
use workstation::image::BLOCK;
use workstation_tests::moto::block_on;
use workstation_tests::TestEnv;

/// A sparse disk of `blocks` blocks: data in a few blocks (one of them
/// partial at the end), one block of written zeros, the rest holes.
/// Returns its path and the indices that hold data.
fn disk(dir: &Path, blocks: u64) -> (PathBuf, Vec<u64>) {
    let path = dir.join("disk.raw");
    let mut f = std::fs::File::create(&path).unwrap();
    let data_blocks = vec![0, 1, 7, blocks / 2];
    for &i in &data_blocks {
        f.seek(SeekFrom::Start(i * BLOCK as u64)).unwrap();
        let bytes: Vec<u8> = (0..BLOCK).map(|j| ((j as u64 * 31 + i * 7) % 251) as u8).collect();
        f.write_all(&bytes).unwrap();
    }
    f.seek(SeekFrom::Start(9 * BLOCK as u64)).unwrap();
    f.write_all(&vec![0u8; BLOCK]).unwrap();
    // The last block is partial: the disk is not a whole number of blocks.
    f.seek(SeekFrom::Start((blocks - 1) * BLOCK as u64)).unwrap();
    f.write_all(b"the end").unwrap();
    let mut all = data_blocks;
    all.push(blocks - 1);
    (path, all)
}

fn publish(env: &TestEnv, disk: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["image", "publish", disk.to_str().unwrap()];
    args.extend_from_slice(extra);
    env.json(&args)
}

/// Reads the snapshot back through GetSnapshotBlock, block by block; a
/// block never put reads as zeros. (moto's ListSnapshotBlocks returns block
/// indices as strings, which the SDK rightly refuses, so every index is
/// asked for; moto answers an absent one with an error.) Returns the image
/// and how many blocks EBS holds.
fn download(env: &TestEnv, snapshot: &str, blocks: u64) -> (Vec<u8>, usize) {
    let ebs = env.moto.as_ref().unwrap().ebs_client();
    block_on(async {
        let mut image = vec![0u8; blocks as usize * BLOCK];
        let mut stored = 0;
        for index in 0..blocks as usize {
            let got = ebs.get_snapshot_block().snapshot_id(snapshot).block_index(index as i32).block_token("any").send().await;
            let Ok(got) = got else { continue };
            let bytes = got.block_data.collect().await.unwrap().into_bytes();
            assert_eq!(bytes.len(), BLOCK, "block {index} is a whole block");
            image[index * BLOCK..(index + 1) * BLOCK].copy_from_slice(&bytes);
            stored += 1;
        }
        (image, stored)
    })
}

#[test]
fn publish_uploads_only_data_blocks_and_is_idempotent_on_what_was_built() {
    let env = TestEnv::aws_api_only();
    let blocks = 130; // 65 MiB minus a bit: two GiB-rounding edge cases at once
    let (disk, data) = disk(env.root.path(), blocks);

    let first = publish(&env, &disk, &["--arch", "x86_64"]);
    assert_eq!(first["existing"], false, "{first}");
    let upload = &first["upload"];
    assert_eq!(upload["blocks"], blocks, "{first}");
    assert_eq!(upload["uploaded"], data.len() as u64, "only the blocks holding data: {first}");
    assert_eq!(upload["skipped_zero"], blocks - data.len() as u64);
    let snapshot = first["snapshot_id"].as_str().unwrap().to_string();
    let image_id = first["image_id"].as_str().unwrap().to_string();

    // What EBS holds is the disk, byte for byte (zero-padded to the block).
    let (downloaded, stored) = download(&env, &snapshot, blocks);
    assert_eq!(stored, data.len());
    let mut expected = std::fs::read(&disk).unwrap();
    expected.resize(blocks as usize * BLOCK, 0);
    assert!(downloaded == expected, "snapshot content differs from the disk");

    // The AMI says what it is; a bare disk says nothing about a manifest
    // (the one on the command line is not what was baked in).
    let client = env.moto.as_ref().unwrap().client();
    let tags = image_tags(&env, &image_id);
    assert_eq!(tags["workstation:image"], "workstation");
    assert_eq!(tags["workstation:image-content"], workstation::image::data_digest(&disk).unwrap());
    assert!(!tags.contains_key("workstation:manifest-hash"), "{tags:?}");

    // The same image again: the same AMI, nothing uploaded.
    let second = publish(&env, &disk, &["--arch", "x86_64"]);
    assert_eq!((second["existing"].clone(), second["image_id"].as_str()), (serde_json::json!(true), Some(image_id.as_str())), "{second}");
    assert!(second["upload"].is_null());

    // One changed byte is a new image.
    let mut f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
    f.seek(SeekFrom::Start(3 * BLOCK as u64)).unwrap();
    f.write_all(b"changed").unwrap();
    drop(f);
    let third = publish(&env, &disk, &["--arch", "x86_64"]);
    assert_eq!(third["existing"], false);
    assert_ne!(third["image_id"].as_str(), Some(image_id.as_str()));
    let count = block_on(async {
        let out = client
            .describe_images()
            .owners("self")
            .filters(Filter::builder().name("tag:workstation:image").values("workstation").build())
            .send()
            .await
            .unwrap();
        out.images().len()
    });
    assert_eq!(count, 2);
}

fn image_tags(env: &TestEnv, image_id: &str) -> std::collections::BTreeMap<String, String> {
    let client = env.moto.as_ref().unwrap().client();
    block_on(async {
        let out = client.describe_images().image_ids(image_id).send().await.unwrap();
        let image = &out.images()[0];
        image.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap().to_string())).collect()
    })
}

/// A build result says what it baked in (our flake's `ami` writes
/// nix-support/workstation-image.json): those are the AMI's tags, checked.
#[test]
fn a_build_result_tags_what_it_baked_in() {
    let env = TestEnv::aws_api_only();
    let (disk, _) = disk(env.root.path(), 8);
    let result = env.root.path().join("result-ami");
    std::fs::create_dir_all(result.join("nix-support")).unwrap();
    let info = serde_json::json!({"file": disk, "system": "aarch64-linux", "label": "26.05"});
    std::fs::write(result.join("nix-support/image-info.json"), info.to_string()).unwrap();
    let baked = result.join("nix-support/workstation-image.json");
    let manifest_hash = "ab".repeat(32);
    std::fs::write(&baked, serde_json::json!({"manifest_hash": manifest_hash, "nixpkgs": "9fbb54b3"}).to_string()).unwrap();

    let published = publish(&env, &result, &[]);
    assert!(published["name"].as_str().unwrap().starts_with("workstation-aarch64-linux-"), "the build's system: {published}");
    let tags = image_tags(&env, published["image_id"].as_str().unwrap());
    assert_eq!((tags["workstation:manifest-hash"].as_str(), tags["workstation:nixpkgs"].as_str()), (manifest_hash.as_str(), "9fbb54b3"));

    // A tag value is read by others: what the file says is checked.
    std::fs::write(&baked, r#"{"manifest_hash": "not a hash"}"#).unwrap();
    let err = env.fails(&["image", "publish", result.to_str().unwrap()]);
    assert!(err.contains("manifest_hash") && err.contains("image build"), "{err}");
}

#[test]
fn publish_explains_an_empty_disk() {
    let env = TestEnv::aws_api_only();
    let empty = env.root.path().join("empty.raw");
    std::fs::write(&empty, b"").unwrap();
    let err = env.fails(&["image", "publish", empty.to_str().unwrap(), "--arch", "x86_64"]);
    assert!(err.contains("is empty") && err.contains("image build"), "{err}");
}

/// A name is not an identity: moto's public AMIs belong to another account,
/// so `image_name` must not pick one unless the manifest trusts its owner.
#[test]
fn image_names_resolve_only_to_this_accounts_images() {
    let env = TestEnv::aws_api_only();
    let client = env.moto.as_ref().unwrap().client();
    let foreign = block_on(client.describe_images().filters(Filter::builder().name("name").values("amzn*").build()).send()).unwrap();
    let image = foreign.images().first().expect("moto ships public AMIs").clone();
    let name = image.name().unwrap();
    env.write_manifest(&workstation_tests::manifest_text(&format!("image_name = \"{name}\""), ""));
    let err = env.fails(&["create", "--name", "dev"]);
    assert!(err.contains(name) && err.contains("owned by this account"), "{err}");
    let launched = block_on(client.describe_instances().send()).unwrap();
    assert_eq!(launched.reservations().len(), 0, "nothing is launched");
    // A bad owner is a manifest error naming the field.
    env.write_manifest(&workstation_tests::manifest_text(&format!("image_name = \"{name}\""), "image_owners = [\"someone\"]\n"));
    assert!(env.fails(&["create", "--name", "dev"]).contains("box.image_owners[0]"));
}

#[test]
fn create_launches_the_newest_image_of_its_tag() {
    let env = TestEnv::aws();
    let (disk, _) = disk(env.root.path(), 16);
    let ours = publish(&env, &disk, &["--arch", "x86_64"]);
    root_snapshot_is_the_upload(&env, ours["image_id"].as_str().unwrap());
    // Another image line published later must not be picked.
    publish(&env, &disk, &["--arch", "x86_64", "--image", "experimental"]);

    let manifest = std::fs::read_to_string(&env.manifest).unwrap();
    let image_line = manifest.lines().find(|l| l.starts_with("image_")).unwrap().to_string();
    env.write_manifest(&manifest.replace(&image_line, "image_tag = \"workstation\""));
    let report = env.json(&["create", "--name", "dev"]);
    let id = report["box"]["id"].as_str().unwrap().to_string();
    let client = env.moto.as_ref().unwrap().client();
    let launched = block_on(async {
        let out = client.describe_instances().instance_ids(&id).send().await.unwrap();
        out.reservations()[0].instances()[0].image_id().unwrap().to_string()
    });
    assert_eq!(Some(launched.as_str()), ours["image_id"].as_str());

    env.write_manifest(&manifest.replace(&image_line, "image_tag = \"nothing-published\""));
    let err = env.fails(&["create", "--name", "other"]);
    assert!(err.contains("nothing-published") && err.contains("workstation image publish"), "{err}");
}

/// moto's RegisterImage ignores the block device mapping and boots the AMI
/// from a snapshot of its own: give that snapshot the upload's inputs, as
/// on AWS the registered image boots from the upload itself.
fn root_snapshot_is_the_upload(env: &TestEnv, image_id: &str) {
    let client = env.moto.as_ref().unwrap().client();
    block_on(async {
        let image = client.describe_images().image_ids(image_id).send().await.unwrap().images()[0].clone();
        let inputs = image.tags().iter().find(|t| t.key() == Some("workstation:image-inputs")).unwrap().clone();
        let root = image.block_device_mappings().iter().find(|b| b.device_name() == image.root_device_name()).unwrap();
        client.create_tags().resources(root.ebs().unwrap().snapshot_id().unwrap()).tags(inputs).send().await.unwrap();
    });
}

/// An image of this account that merely carries the line's tag is not
/// launched: it must name what was built, and its root snapshot must carry
/// the publisher's inputs (only the publisher tags snapshots).
#[test]
fn create_refuses_an_image_that_was_only_tagged() {
    let env = TestEnv::aws_api_only();
    let client = env.moto.as_ref().unwrap().client();
    let tag = |k: &str, v: &str| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build();
    let (image, snapshot) = block_on(async {
        let volume = client.create_volume().availability_zone("us-east-1a").size(8).send().await.unwrap();
        let snapshot = client.create_snapshot().volume_id(volume.volume_id().unwrap()).send().await.unwrap();
        let snapshot = snapshot.snapshot_id().unwrap().to_string();
        let image = client
            .register_image()
            .name("handmade")
            .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
            .root_device_name("/dev/xvda")
            .block_device_mappings(
                aws_sdk_ec2::types::BlockDeviceMapping::builder()
                    .device_name("/dev/xvda")
                    .ebs(aws_sdk_ec2::types::EbsBlockDevice::builder().snapshot_id(&snapshot).build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let image = image.image_id().unwrap().to_string();
        client.create_tags().resources(&image).tags(tag("workstation:image", "workstation")).send().await.unwrap();
        (image, snapshot)
    });
    let manifest = std::fs::read_to_string(&env.manifest).unwrap();
    let image_line = manifest.lines().find(|l| l.starts_with("image_")).unwrap().to_string();
    env.write_manifest(&manifest.replace(&image_line, "image_tag = \"workstation\""));
    let err = env.fails(&["create", "--name", "dev"]);
    assert!(err.contains(&image) && err.contains("workstation:image-content") && err.contains("image publish"), "{err}");

    // Content and inputs copied onto it, and even a snapshot of the account
    // carrying those inputs: its root disk is still not that snapshot.
    block_on(client.create_tags().resources(&image).tags(tag("workstation:image-content", "/nix/store/x")).tags(tag("workstation:image-inputs", "abc")).send())
        .unwrap();
    block_on(client.create_tags().resources(&snapshot).tags(tag("workstation:image-inputs", "abc")).send()).unwrap();
    let err = env.fails(&["create", "--name", "dev"]);
    assert!(err.contains("was not uploaded by `workstation image publish`") && err.contains("the image says abc"), "{err}");
    let launched = block_on(client.describe_instances().send()).unwrap();
    assert_eq!(launched.reservations().len(), 0, "nothing is launched");
}

/// Debian's Nix (2.8, what CI has) cannot evaluate current nixpkgs: `image
/// build` says so, and what to install, instead of a nixpkgs stack trace.
#[test]
fn image_build_explains_an_old_nix() {
    let env = TestEnv::aws_api_only();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let err = env.fails(&["image", "build", "--flake", repo.to_str().unwrap()]);
    assert!(err.contains("2.8") && err.contains("Nix 2.18 or newer"), "{err}");
    let err = env.fails(&["image", "build", "--flake", env.root.path().to_str().unwrap()]);
    assert!(err.contains("no flake.nix") && err.contains("--flake"), "{err}");
}
