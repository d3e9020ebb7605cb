//! MySQL stores (Debian's MariaDB) on a local preview, through the
//! `workstation` binary: seeded from a mysqldump file (its rows on several
//! sessions, or on one when it turns autocommit off), then from a CSV
//! directory by `--reset` (a file bigger than a piece cut at record ends);
//! every bad snapshot (a duplicate key in either format, a dump that names
//! its own database, one that makes a view or a trigger, one with a client
//! command) leaves the live tables and the marker as they were; services
//! get the store's URL.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use workstation_tests::repo::{commit, init, read, write};
use workstation_tests::{wait_until, TestEnv};

const MANIFEST: &str = r#"
[box]
instance_type = "t3.medium"
disk_gib = 30
image_id = "ami-0123456789abcdef0"

[sync]
path = "src/app"

[services.api]
command = "sh -c 'cd \"$WORKSTATION_BOX_ROOT/src/app\" && env | grep ^WORKSTATION_MYSQL | sort > urls.env && exec sleep 100000'"

[stores.shop]
kind = "mysql"
seed = "SEED"
"#;

/// mysqldump's shape (one database, no `--databases`): its header, then per
/// table DROP, CREATE, and multi-row INSERTs between LOCK/UNLOCK.
fn write_dump(path: &Path, users: usize, orders_per_user: usize, extra: &str) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(f, "-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n--\n-- Host: 127.0.0.1    Database: shop").unwrap();
    writeln!(f, "/*!40101 SET NAMES utf8mb4 */;\n/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;").unwrap();
    writeln!(f, "/*!40014 SET @OLD_FOREIGN_KEY_CHECKS=@@FOREIGN_KEY_CHECKS, FOREIGN_KEY_CHECKS=0 */;\n{extra}").unwrap();
    let table = |f: &mut std::io::BufWriter<std::fs::File>, name: &str, create: &str, rows: Vec<String>| {
        writeln!(f, "DROP TABLE IF EXISTS `{name}`;\nCREATE TABLE `{name}` ({create}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;").unwrap();
        writeln!(f, "LOCK TABLES `{name}` WRITE;\n/*!40000 ALTER TABLE `{name}` DISABLE KEYS */;").unwrap();
        for chunk in rows.chunks(500) {
            writeln!(f, "INSERT INTO `{name}` VALUES {};", chunk.join(",")).unwrap();
        }
        writeln!(f, "/*!40000 ALTER TABLE `{name}` ENABLE KEYS */;\nUNLOCK TABLES;").unwrap();
    };
    table(
        &mut f,
        "users",
        "`id` int NOT NULL, `email` varchar(100) NOT NULL, PRIMARY KEY (`id`), UNIQUE KEY `email` (`email`)",
        (0..users).map(|i| format!("({i},'user{i}@example.test')")).collect(),
    );
    table(
        &mut f,
        "orders",
        "`id` int NOT NULL, `user_id` int NOT NULL, `note` text, PRIMARY KEY (`id`), KEY `user_id` (`user_id`), CONSTRAINT `orders_user` FOREIGN KEY (`user_id`) REFERENCES `users` (`id`)",
        (0..users * orders_per_user).map(|i| format!("({i},{},'dump')", i % users)).collect(),
    );
    writeln!(f, "/*!40014 SET FOREIGN_KEY_CHECKS=@OLD_FOREIGN_KEY_CHECKS */;").unwrap();
    f.flush().unwrap();
}

/// A CSV snapshot in MySQL's dialect: quoted fields with commas and
/// doubled quotes, two files for one table.
fn write_csv(dir: &Path, users: usize, orders_per_user: usize) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("schema.sql"),
        "CREATE TABLE users (id int PRIMARY KEY, email varchar(100) NOT NULL UNIQUE);\n\
         CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL, note text, CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id));\n",
    )
    .unwrap();
    let users_csv: String = (0..users).map(|i| format!("{i},user{i}@example.test\n")).collect();
    std::fs::write(dir.join("01-users.csv"), format!("id,email\n{users_csv}")).unwrap();
    let half = users * orders_per_user / 2;
    let orders = |from: usize, to: usize| -> String { (from..to).map(|i| format!("{i},{},\"csv, \"\"quoted\"\"\"\n", i % users)).collect() };
    std::fs::write(dir.join("02-orders.csv"), format!("id,user_id,note\n{}", orders(0, half))).unwrap();
    std::fs::write(dir.join("03-orders.csv"), format!("id,user_id,note\n{}", orders(half, users * orders_per_user))).unwrap();
}

#[test]
fn mysql_stores_load_dumps_and_csv_and_a_bad_snapshot_leaves_them_as_they_were() {
    let env = TestEnv::local();
    let seeds = env.root.path().join("seeds");
    std::fs::create_dir_all(&seeds).unwrap();
    write_dump(&seeds.join("shop.sql"), 1000, 3, "");
    let manifest = |seed: &str| env.write_manifest(&MANIFEST.replace("SEED", seed));
    manifest("seeds/shop.sql");
    let repo = env.root.path().join("repo");
    init(&repo);
    write(&repo.join("README"), "shop\n");
    let c1 = commit(&repo, &["."], "one");

    let up = env.json(&["preview", "up", "--pr", "1", "--ref", &c1, "--repo", repo.to_str().unwrap()]);
    assert_eq!(up["healthy"], true, "{up:#}");
    let sql = |query: &str| env.ok(&["ssh", "pr-1", "--", &format!("mariadb -h 127.0.0.1 -u root -N shop -e \"{query}\"")]).trim().to_string();
    let counts = || sql("SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM orders)");
    assert_eq!(counts(), "1000\t3000");
    let marker = || std::fs::read_to_string(env.box_root("pr-1").join("seeds/shop.loaded")).unwrap();
    let loaded = marker();
    assert!(loaded.starts_with("sha256:"), "{loaded}");

    // Services get the store's URL; `services` checks the store.
    let tree = std::path::PathBuf::from(up["path"].as_str().unwrap());
    wait_until(Duration::from_secs(30), || tree.join("urls.env").exists(), || "the service's environment".into());
    assert_eq!(read(tree.join("urls.env")), "WORKSTATION_MYSQL_SHOP_URL=mysql://root@127.0.0.1:3306/shop\n");
    let services = env.json(&["services", "--box", "pr-1"]);
    let shop = services.as_array().unwrap().iter().find(|p| p["name"] == "shop").unwrap_or_else(|| panic!("{services:#}"));
    assert_eq!((shop["kind"].as_str(), shop["state"].as_str(), shop["health"]["status"].as_str()), (Some("store"), Some("RUNNING"), Some("healthy")), "{shop}");

    // Each bad snapshot fails, names the cause, changes nothing.
    let refused = |why: &str, expected: &[&str]| {
        let err = env.fails(&["seed", "shop", "--reset", "--box", "pr-1"]);
        assert!(expected.iter().all(|e| err.contains(e)) && err.contains("left as it was"), "{why}: {err}");
        assert_eq!(counts(), "1000\t3000", "{why}");
        assert_eq!(marker(), loaded, "{why}");
    };
    write_dump(&seeds.join("shop.sql"), 1000, 3, "");
    // In a statement bigger than a pipe's 64 KiB: the client's error must
    // not wait on a full pipe.
    let many: Vec<String> = (5000..8000).map(|i| format!("({i},'more{i}@example.test')")).collect();
    let duplicate = format!("INSERT INTO `users` VALUES {},(1,'again@example.test');\n", many.join(","));
    std::fs::write(seeds.join("shop.sql"), read(seeds.join("shop.sql")) + &duplicate).unwrap();
    refused("a duplicate key in a dump", &["shop.sql", "Duplicate entry '1'"]);
    write_dump(&seeds.join("shop.sql"), 10, 1, "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`;\nUSE `shop`;");
    refused("a dump of --databases", &["names a database of its own", "--databases"]);
    write_dump(&seeds.join("shop.sql"), 10, 1, "");
    std::fs::write(seeds.join("shop.sql"), read(seeds.join("shop.sql")) + "CREATE VIEW recent AS SELECT * FROM orders;\n").unwrap();
    refused("a dump that makes a view", &["view recent", "base tables only"]);
    write_dump(&seeds.join("shop.sql"), 10, 1, "DELIMITER ;;\nCREATE TRIGGER t BEFORE INSERT ON users FOR EACH ROW SET NEW.id = NEW.id;;\nDELIMITER ;");
    refused("a dump that makes a trigger", &["DELIMITER", "base tables only"]);
    // A client command (`\!` runs a shell on the box) never reaches a client.
    let owned = env.root.path().join("owned");
    write_dump(&seeds.join("shop.sql"), 10, 1, &format!("\\! touch {}", owned.display()));
    refused("a dump with a client command", &["client command", "`\\!`"]);
    assert!(!owned.exists(), "the dump's shell command ran");

    // mariadb-dump's own output (its header, its session state saved and
    // restored around each table) of the live tables loads back whole.
    let real = seeds.join("real.sql");
    env.ok(&["ssh", "pr-1", "--", &format!("mariadb-dump --no-defaults -h 127.0.0.1 -u root shop > {}", real.display())]);
    std::fs::copy(&real, seeds.join("shop.sql")).unwrap();
    let reset = env.json(&["seed", "shop", "--reset", "--box", "pr-1"]);
    assert_eq!(reset[0]["outcome"], "loaded", "{reset:#}");
    assert_eq!(counts(), "1000\t3000");
    assert_eq!(sql("SELECT count(DISTINCT email), max(id) FROM users"), "1000\t999");

    // A dump that turns autocommit off (mysqldump --no-autocommit) runs
    // on one session, in order, and all of it is committed.
    write_dump(&seeds.join("shop.sql"), 200, 2, "SET autocommit=0;");
    std::fs::write(seeds.join("shop.sql"), read(seeds.join("shop.sql")).replace("UNLOCK TABLES;", "commit;\nUNLOCK TABLES;")).unwrap();
    let reset = env.json(&["seed", "shop", "--reset", "--box", "pr-1"]);
    assert_eq!(reset[0]["outcome"], "loaded", "{reset:#}");
    assert_eq!(counts(), "200\t400");

    // A CSV snapshot replaces the dump's data with --reset.
    let csv = seeds.join("shop");
    write_csv(&csv, 500, 4);
    manifest("seeds/shop");
    let reset = env.json(&["seed", "shop", "--reset", "--box", "pr-1"]);
    assert_eq!(reset[0]["outcome"], "loaded", "{reset:#}");
    assert_eq!(counts(), "500\t2000");
    assert_eq!(sql("SELECT note FROM orders WHERE id = 1999"), "csv, \"quoted\"");
    // The foreign key moved with the tables: it refers to the live users.
    let err = env.fails(&["ssh", "pr-1", "--", "mariadb -h 127.0.0.1 -u root shop -e 'INSERT INTO orders VALUES (99999, 77777, NULL)'"]);
    assert!(err.contains("foreign key constraint fails"), "{err}");
    let again = env.json(&["seed", "--box", "pr-1"]);
    assert_eq!(again[0]["outcome"], "already-loaded", "{again:#}");
    // Nothing staged or replaced is left behind (dropped in the background).
    let leftovers = || sql("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'shop\\\\_\\\\_ws%'");
    wait_until(Duration::from_secs(15), || leftovers() == "0", || format!("{} staging or replaced databases left", leftovers()));

    // A file bigger than a piece (4 MiB) is cut at record ends, never
    // inside a quoted field with a newline, and loads whole.
    let note = format!("line one\nline \"\"two\"\", {}", "x".repeat(60));
    let big: String = (1000..61000).map(|i| format!("{i},{},\"{note}\"\n", i % 500)).collect();
    std::fs::write(csv.join("03-orders.csv"), format!("id,user_id,note\n{big}")).unwrap();
    assert!(big.len() > 5 << 20, "{} bytes", big.len());
    let reset = env.json(&["seed", "shop", "--reset", "--box", "pr-1"]);
    assert_eq!(reset[0]["outcome"], "loaded", "{reset:#}");
    assert_eq!(counts(), "500\t61000");
    assert_eq!(sql("SELECT count(*) FROM orders WHERE LOCATE(CHAR(10), note) = 9 AND LENGTH(note) = 81"), "60000");
    let loaded = marker();

    // A duplicate key in the second file of a table: LOAD DATA LOCAL takes
    // it as a warning, which fails the load.
    std::fs::write(csv.join("03-orders.csv"), "id,user_id,note\n5,1,twice\n").unwrap();
    let err = env.fails(&["seed", "shop", "--reset", "--box", "pr-1"]);
    assert!(err.contains("03-orders.csv") && err.contains("Duplicate entry '5'") && err.contains("left as it was"), "{err}");
    assert_eq!(counts(), "500\t61000");
    assert_eq!(marker(), loaded);

    env.ok(&["preview", "down", "1"]);
}
