//! Every verb safe to interrupt: each verb is killed (kill -9) or
//! interrupted (Ctrl-C) at seeded points across a clean run's duration,
//! then run again, which must give what a clean run gives, with nothing
//! left behind and no data lost (tests/src/interrupt.rs). The suite runs 20
//! points per verb; `WORKSTATION_KILL_POINTS=N` runs more (bench/faults.sh).
//! `intercept` has its sweep in intercept.rs, the AWS ones (under EC2's
//! faults) in faults.rs.

use std::path::Path;

use workstation_tests::interrupt::{points, rerun, timed, Left, Points, Sweep};
use workstation_tests::{write_csv_snapshot, write_resp_snapshot, TestEnv};

/// The re-run is healthy and dev is one running box; a second box named
/// dev is a leak.
fn one_healthy_box(env: &TestEnv, args: &[&str]) -> Result<Left, String> {
    let out = rerun(env, args)?;
    let healthy = if out.get("up").is_some() { &out["up"]["healthy"] } else { &out["healthy"] };
    if healthy != true {
        return Err(format!("the re-run is not healthy: {out:#}"));
    }
    let listed = env.json(&["list"]);
    let boxes: Vec<&serde_json::Value> = listed.as_array().unwrap().iter().filter(|b| b["name"] == "dev").collect();
    if boxes.iter().any(|b| b["state"] != "running") || boxes.is_empty() {
        return Err(format!("dev is not one running box: {listed:#}"));
    }
    Ok(Left { leaked: boxes.len() - 1, lost: 0 })
}

/// The manifest with api's environment naming `round`, so that each `up`
/// has a change to make.
fn manifest(round: usize) -> String {
    "hostnames = [\"api.dev.test\"]\n[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n\
     [services.api]\ncommand = \"sh -c 'echo $ROUND > \\\"$WORKSTATION_BOX_ROOT/round\\\"; exec python3 -m http.server 8080'\"\nports = [8080]\n\
     environment = { ROUND = \"ROUNDNUMBER\" }\n"
        .replace("ROUNDNUMBER", &round.to_string())
}

/// `create`, `start`, `up` (with a change to make each time) and
/// `destroy --purge`.
#[test]
fn create_start_up_and_destroy_interrupted_anywhere_converge_when_run_again() {
    let env = TestEnv::local();
    env.write_manifest(&manifest(0));
    let n = points(20);

    // The first create makes what later ones reuse (keys, the image's
    // files): the second is the clean run the points span.
    one_healthy_box(&env, &["create", "dev"]).unwrap();
    env.ok(&["destroy", "dev", "--yes"]);
    let clean = timed(|| drop(env.ok(&["create", "dev"])));
    env.ok(&["destroy", "dev", "--yes"]);
    let mut sweep = Sweep::new("create");
    sweep.run(
        &env,
        &["create", "dev"],
        Points { clean, seed: 0x5eed_c0de, n },
        |_| {},
        || {
            let left = one_healthy_box(&env, &["create", "dev"]);
            env.ok(&["destroy", "dev", "--yes"]);
            left
        },
    );
    sweep.finish();

    one_healthy_box(&env, &["create", "dev"]).unwrap();
    env.ok(&["stop", "dev"]);
    let clean = timed(|| one_healthy_box(&env, &["start", "dev"]).map(|_| ()).unwrap());
    let mut sweep = Sweep::new("start");
    sweep.run(&env, &["start", "dev"], Points { clean, seed: 0x57a7_5eed, n }, |_| drop(env.ok(&["stop", "dev"])), || one_healthy_box(&env, &["start", "dev"]));
    sweep.finish();

    let round = |env: &TestEnv| std::fs::read_to_string(env.box_root("dev").join("round")).unwrap_or_default().trim().to_string();
    env.write_manifest(&manifest(1));
    let clean = timed(|| one_healthy_box(&env, &["up", "dev"]).map(|_| ()).unwrap());
    assert_eq!(round(&env), "1", "a clean up runs api with the new environment");
    let wanted = std::cell::Cell::new(1);
    let mut sweep = Sweep::new("up");
    let next = |i: usize| {
        wanted.set(i + 2);
        env.write_manifest(&manifest(i + 2));
    };
    sweep.run(&env, &["up", "dev"], Points { clean, seed: 0x0bad_5eed, n }, next, || {
        let left = one_healthy_box(&env, &["up", "dev"])?;
        let (now, wanted) = (round(&env), wanted.get().to_string());
        if now != wanted {
            return Err(format!("api runs round {now:?}, the manifest says {wanted}"));
        }
        Ok(left)
    });
    sweep.finish();

    // destroy --purge: no box and no data volume left.
    let destroy = ["destroy", "dev", "--purge", "--yes"];
    let clean = timed(|| drop(env.ok(&destroy)));
    let mut sweep = Sweep::new("destroy");
    let create = |_| drop(one_healthy_box(&env, &["create", "dev"]));
    sweep.run(&env, &destroy, Points { clean, seed: 0xde57_5eed, n }, create, || {
        // Run again whether or not the first got to the end: a destroy
        // that finds nothing says so (exit 1), the state is what counts.
        let _ = env.run(&destroy);
        let boxes = env.json(&["list"]).as_array().unwrap().iter().filter(|b| b["name"] == "dev").count();
        let volumes = env.json(&["list", "--volumes"]).as_array().unwrap().iter().filter(|v| v["name"] == "dev").count();
        Ok(Left { leaked: boxes + volumes, lost: 0 })
    });
    sweep.finish();
}

const KEYS: usize = 20_000;

/// Redis's keys on box dev by tag: a store is never half-loaded.
fn redis_tags(env: &TestEnv) -> Result<String, String> {
    let size = env.ok(&["ssh", "dev", "--", "redis-cli -p 6379 dbsize"]).trim().to_string();
    let first = env.ok(&["ssh", "dev", "--", "redis-cli -p 6379 get key:0"]).trim().to_string();
    let last = env.ok(&["ssh", "dev", "--", &format!("redis-cli -p 6379 get key:{}", KEYS - 1)]).trim().to_string();
    let tag = |v: &str| v.split("-value-").next().unwrap_or_default().to_string();
    // KEYS, and the engineer's own key until a reset replaces it.
    if ![KEYS.to_string(), (KEYS + 1).to_string()].contains(&size) || tag(&first) != tag(&last) {
        return Err(format!("redis is half-loaded: {size} keys, key:0 = {first:?}, the last = {last:?}"));
    }
    Ok(tag(&first))
}

/// `seed --reset` (stores are never seen half-loaded, before or after the
/// re-run), `sync --once` (the box mirrors the checkout; the laptop's files
/// untouched) and `upgrade` (the data on the data volume survives).
#[test]
fn seed_sync_and_upgrade_interrupted_anywhere_keep_the_data_and_converge() {
    let env = TestEnv::local();
    let seeds = env.root.path().join("seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    write_resp_snapshot(&seeds.join("cache.resp"), KEYS, "v0");
    write_csv_snapshot(&seeds.join("main"), 200, 2);
    let checkout = env.root.path().join("app");
    std::fs::create_dir_all(&checkout).unwrap();
    env.write_manifest(
        "[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\ndata_gib = 20\nimage_id = \"ami-0123456789abcdef0\"\n\
         [sync]\npath = \"src/app\"\n\
         [stores.cache]\nkind = \"redis\"\nseed = \"seeds/cache.resp\"\n\
         [stores.main]\nkind = \"postgres\"\ndatabase = \"app\"\nseed = \"seeds/main\"\n\
         [services.api]\ncommand = \"python3 -m http.server 8080\"\nports = [8080]\n",
    );
    let n = points(20);
    assert_eq!(env.json(&["create", "dev"])["up"]["healthy"], true);
    // One key that is not the snapshot's: seed --reset replaces it, upgrade keeps it.
    env.ok(&["ssh", "dev", "--", "redis-cli -p 6379 set mine kept"]);

    let reset = ["seed", "--reset", "--box", "dev"];
    let clean = timed(|| drop(env.ok(&reset)));
    let snapshot = std::cell::Cell::new(0);
    let next = |i: usize| {
        snapshot.set(i + 1);
        write_resp_snapshot(&seeds.join("cache.resp"), KEYS, &format!("v{}", i + 1));
    };
    let mut sweep = Sweep::new("seed-reset");
    sweep.run(&env, &reset, Points { clean, seed: 0x5eed_5eed, n }, next, || {
        redis_tags(&env)?;
        let again = rerun(&env, &reset)?;
        if !again.as_array().unwrap().iter().all(|s| s["outcome"] == "loaded") {
            return Err(format!("the re-run did not load every store: {again:#}"));
        }
        let wanted = format!("v{}", snapshot.get());
        let tag = redis_tags(&env)?;
        (tag == wanted).then_some(Left::default()).ok_or(format!("redis holds {tag}, the snapshot is {wanted}"))
    });
    sweep.finish();
    env.ok(&["ssh", "dev", "--", "redis-cli -p 6379 set mine kept"]);

    let files = |round: usize| {
        let _ = std::fs::remove_dir_all(checkout.join("tree"));
        for i in 0..2_000 {
            let file = checkout.join(format!("tree/d{}/f{i}.txt", i % 40));
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, format!("round {round} file {i}\n")).unwrap();
        }
    };
    files(0);
    let sync = ["sync", "dev", "--once", "--dir", checkout.to_str().unwrap()];
    let clean = timed(|| drop(env.ok(&sync)));
    let mut sweep = Sweep::new("sync");
    sweep.run(
        &env,
        &sync,
        Points { clean, seed: 0x5ec5_5eed, n },
        |i| files(i + 1),
        || {
            let out = rerun(&env, &sync)?;
            let remote = Path::new(out["remote"].as_str().unwrap()).to_path_buf();
            let lost = (0..2_000).filter(|i| !checkout.join(format!("tree/d{}/f{i}.txt", i % 40)).exists()).count();
            match differs(&checkout, &remote) {
                Some(d) => Err(format!("the box's copy differs after the re-run: {d}")),
                None => Ok(Left { leaked: 0, lost }),
            }
        },
    );
    sweep.finish();

    let upgrade = ["upgrade", "dev"];
    let clean = timed(|| assert_eq!(env.json(&upgrade)["up"]["healthy"], true));
    let mut sweep = Sweep::new("upgrade");
    sweep.run(
        &env,
        &upgrade,
        Points { clean, seed: 0x0096_5eed, n },
        |_| {},
        || {
            let again = rerun(&env, &upgrade)?;
            if again["up"]["healthy"] != true {
                return Err(format!("the re-run is not healthy: {again:#}"));
            }
            let kept = env.ok(&["ssh", "dev", "--", "redis-cli -p 6379 get mine"]).trim() == "kept";
            let tree = env.ok(&["ssh", "dev", "--", "ls \"$WORKSTATION_BOX_ROOT/src/app/tree\" | wc -l"]).trim() == "40";
            Ok(Left { leaked: 0, lost: usize::from(!kept) + usize::from(!tree) })
        },
    );
    sweep.finish();
    env.ok(&["destroy", "dev", "--yes"]);
}

/// The first difference between the checkout's tree and the box's copy.
fn differs(local: &Path, remote: &Path) -> Option<String> {
    let out = std::process::Command::new("diff").args(["-rq"]).arg(local.join("tree")).arg(remote.join("tree")).output().unwrap();
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stdout).lines().take(3).collect::<Vec<_>>().join("; "))
}

/// `preview up` of a new commit each time (every fifth run from no box):
/// the re-run gives one healthy pr-1 box running the commit's tree.
#[test]
fn preview_up_interrupted_anywhere_converges_when_run_again() {
    use workstation_tests::repo::{commit, init, write};
    let env = TestEnv::local();
    env.write_manifest(
        "[box]\ninstance_type = \"t3.medium\"\ndisk_gib = 30\nimage_id = \"ami-0123456789abcdef0\"\n[sync]\npath = \"src/app\"\n\
         [services.api]\ncommand = \"python3 -m http.server 8080\"\nports = [8080]\ninstall = \"cat version.txt >> installs.log\"\ninstall_on = [\"version.txt\"]\n",
    );
    let repo = env.root.path().join("repo");
    init(&repo);
    let files = |round: usize| {
        write(&repo.join("version.txt"), &format!("v{round}\n"));
        for i in 0..300 {
            write(&repo.join(format!("src/f{i}.txt")), &format!("round {round} file {i}\n"));
        }
        commit(&repo, &["."], &format!("round {round}"))
    };
    let head = std::cell::RefCell::new(files(0));
    let up = |commit: &str| env.run(&["preview", "up", "--pr", "1", "--ref", commit, "--repo", repo.to_str().unwrap(), "-o", "json"]);
    assert!(up(&head.borrow()).status.success());
    let next = files(1);
    let clean = timed(|| assert!(up(&next).status.success()));
    // One command line for every round: `HEAD` is each round's new commit.
    let mut sweep = Sweep::new("preview-up");
    let args = ["preview", "up", "--pr", "1", "--ref", "HEAD", "--repo", repo.to_str().unwrap()];
    sweep.run(
        &env,
        &args,
        Points { clean, seed: 0x9e71_5eed, n: points(20) },
        |i| {
            if i % 5 == 0 {
                env.ok(&["preview", "down", "1"]);
            }
            *head.borrow_mut() = files(i + 2);
        },
        || {
            let out = up("HEAD");
            let up: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| String::from_utf8_lossy(&out.stderr).into_owned())?;
            if up["healthy"] != true || up["commit"] != head.borrow().as_str() {
                return Err(format!("the re-run is not the commit's healthy preview: {up:#}"));
            }
            let tree = Path::new(up["path"].as_str().unwrap()).to_path_buf();
            let version = std::fs::read_to_string(tree.join("version.txt")).unwrap_or_default();
            let stale = (0..300)
                .filter(|i| {
                    std::fs::read_to_string(tree.join(format!("src/f{i}.txt"))).unwrap_or_default()
                        != format!("round {} file {i}\n", version.trim().trim_start_matches('v'))
                })
                .count();
            if stale > 0 {
                return Err(format!("{stale} files of the preview's tree are not its commit's"));
            }
            let listed = env.json(&["preview", "list"]);
            Ok(Left { leaked: listed.as_array().unwrap().len().saturating_sub(1), lost: 0 })
        },
    );
    sweep.finish();
    env.ok(&["preview", "down", "1"]);
}
