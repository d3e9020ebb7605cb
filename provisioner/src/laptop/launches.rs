//! A launch's own nonce, kept on the laptop from a create's first launch
//! until the box is seen running (`~/.local/state/workstation/launches/
//! OWNER--NAME`). It goes into RunInstances' ClientToken: the same across
//! a killed create and its re-run (EC2 answers the first launch instead of
//! making a second box), and new for the next box of that name after this
//! one is running (a token EC2 has seen with a terminated instance is
//! refused, so tokens derived from the name alone ran out after a few
//! create/destroy rounds).

use std::io::Write;
use std::path::PathBuf;

use super::paths::Paths;
use crate::manifest::name::{BoxName, Owner};

fn file(paths: &Paths, owner: &Owner, name: &BoxName) -> PathBuf {
    paths.state_dir.join("launches").join(format!("{owner}--{name}"))
}

/// The nonce of the launch of `owner`'s box `name` under way, or a new one
/// (written before it is used, so a re-run finds it).
pub fn nonce(paths: &Paths, owner: &Owner, name: &BoxName) -> std::io::Result<String> {
    let path = file(paths, owner, name);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim();
        // Ours to read, but checked: anything else is replaced.
        if text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(text.to_owned());
        }
    }
    let dir = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(dir)?;
    let nonce = fresh()?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    writeln!(tmp, "{nonce}")?;
    tmp.as_file().sync_all()?;
    tmp.persist(&path).map_err(|e| e.error)?;
    Ok(nonce)
}

/// The launch is over (the box runs, and EC2 lists it by its tags).
pub fn done(paths: &Paths, owner: &Owner, name: &BoxName) {
    let _ = std::fs::remove_file(file(paths, owner, name));
}

/// 16 random bytes from the kernel, as hex.
fn fresh() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_lasts_until_the_launch_is_done_and_a_bad_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let paths =
            Paths { home: dir.path().into(), config_dir: dir.path().join("cfg"), state_dir: dir.path().join("state"), cache_dir: dir.path().join("cache") };
        let (o, n): (Owner, BoxName) = ("alice".parse().unwrap(), "dev".parse().unwrap());
        let first = nonce(&paths, &o, &n).unwrap();
        assert_eq!(nonce(&paths, &o, &n).unwrap(), first, "a re-run reuses it");
        assert_ne!(nonce(&paths, &o, &"dev2".parse().unwrap()).unwrap(), first, "each box its own");
        done(&paths, &o, &n);
        assert_ne!(nonce(&paths, &o, &n).unwrap(), first, "the next launch gets a new one");
        std::fs::write(file(&paths, &o, &n), "not a nonce\n").unwrap();
        assert_eq!(nonce(&paths, &o, &n).unwrap().len(), 32);
    }
}
