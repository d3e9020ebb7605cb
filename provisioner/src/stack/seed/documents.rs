//! MongoDB and OpenSearch: the commands that load an archive
//! (`mongorestore`) and bulk NDJSON (`_bulk`). Neither server is installable
//! here, so these are unit-tested as commands.

use super::Snapshot;
use crate::manifest::Store;
use crate::stack::layout::sh;

/// `mongorestore` reading an archive from stdin, dropping each collection
/// before restoring it.
pub fn mongorestore_command(name: &str, store: &Store, snap: &Snapshot) -> String {
    let gzip = if snap.describe().ends_with(".gz") { " --gzip" } else { "" };
    format!(
        "mongorestore --host 127.0.0.1 --port {} --archive{gzip} --drop --numParallelCollections=4 --nsInclude={}",
        store.port(),
        sh(&format!("{}.*", store.database(name)))
    )
}

/// Splits bulk NDJSON into requests of 5,000 action/document pairs, each
/// posted to `_bulk`; a response with item errors fails the load.
pub fn bulk_command(store: &Store) -> String {
    let post =
        format!("curl -fsS -H 'Content-Type: application/x-ndjson' --data-binary @- 'http://127.0.0.1:{}/_bulk' | grep -q '\"errors\":false'", store.port());
    format!("split -l 10000 --filter={} -", sh(&post))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::SeedFormat;
    use crate::stack::seed::snapshot::{Identity, Location};

    // Not installable here: pin the command lines (see docs/services.md).
    #[test]
    fn mongodb_and_opensearch_loaders() {
        let mongo: Store = toml::from_str("kind = \"mongodb\"\nseed = \"s.archive.gz\"").unwrap();
        let snap = Snapshot {
            format: SeedFormat::MongoArchive,
            identity: Identity::Known("sha256:x".into()),
            size: 1,
            location: Location::Local("seeds/s.archive.gz".into()),
        };
        assert_eq!(
            mongorestore_command("docs", &mongo, &snap),
            "mongorestore --host 127.0.0.1 --port 27017 --archive --gzip --drop --numParallelCollections=4 --nsInclude='docs.*'"
        );
        let os: Store = toml::from_str("kind = \"opensearch\"\nport = 9201").unwrap();
        let cmd = bulk_command(&os);
        assert!(cmd.starts_with("split -l 10000 --filter=\"curl -fsS -H 'Content-Type: application/x-ndjson' --data-binary @-"), "{cmd}");
        assert!(cmd.contains("http://127.0.0.1:9201/_bulk") && cmd.ends_with(" -"), "{cmd}");
    }
}
