//! The managed block: the lines of a hosts file between our BEGIN and END
//! marker lines. Everything here is a pure function of bytes, so the promise
//! "not one byte outside the block changes" is checked by unit tests over a
//! corpus of odd files, and the file-writing code never edits text itself.
//!
//! Invariant: `splice(splice(f, e), &[]) == f` for every file `f` without a
//! block, and `outside(splice(f, e)) == outside(f)`.

use std::net::IpAddr;

const BEGIN: &str = "# BEGIN workstation-hosts";
const END: &str = "# END workstation-hosts";
const NOTE: &str = " (managed by workstation-hosts; edits inside this block are replaced)";
/// Set on the BEGIN line when the file did not end with a newline: the line
/// break before the block is then ours, and removing the block removes it.
const JOINED: &str = " (+newline)";

/// Names per line. glibc has no limit, but Windows and some tools stop
/// reading aliases after nine names; eight keeps every reader happy.
pub const NAMES_PER_LINE: usize = 8;

/// One address and the names that resolve to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub address: IpAddr,
    pub names: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    #[error(
        "line {line}: a workstation-hosts BEGIN marker inside another block (the END line is missing); remove the workstation-hosts lines by hand and retry"
    )]
    Nested { line: usize },
    #[error("line {line}: a workstation-hosts END marker without a BEGIN; remove it by hand and retry")]
    StrayEnd { line: usize },
    #[error("line {line}: the workstation-hosts block has no END marker; remove the block's lines by hand and retry")]
    Unterminated { line: usize },
}

/// Where our blocks sit in a file.
struct Layout {
    /// Byte ranges of our blocks, marker lines and line breaks included.
    blocks: Vec<std::ops::Range<usize>>,
}

fn is_marker(line: &[u8], marker: &str) -> bool {
    let line = trim_eol(line);
    line.starts_with(marker.as_bytes()) && matches!(line.get(marker.len()), None | Some(b' ') | Some(b'\t'))
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Lines with their byte offsets; each line keeps its terminator.
fn lines(file: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= file.len() {
            return None;
        }
        let end = file[start..].iter().position(|&b| b == b'\n').map_or(file.len(), |i| start + i + 1);
        let line = (start, &file[start..end]);
        start = end;
        Some(line)
    })
}

fn layout(file: &[u8]) -> Result<Layout, BlockError> {
    let mut blocks = Vec::new();
    // (offset of the BEGIN line, its line number, length of the joined line break)
    let mut open: Option<(usize, usize, usize)> = None;
    for (n, (offset, line)) in lines(file).enumerate() {
        let number = n + 1;
        if is_marker(line, BEGIN) {
            if open.is_some() {
                return Err(BlockError::Nested { line: number });
            }
            let joined = trim_eol(line).windows(JOINED.len()).any(|w| w == JOINED.as_bytes());
            // We added a line break of the BEGIN line's own kind.
            let added = if !joined {
                0
            } else if line.ends_with(b"\r\n") {
                2
            } else {
                1
            };
            let ours: &[u8] = if added == 2 { b"\r\n" } else { b"\n" };
            let added = if added > 0 && offset >= added && &file[offset - added..offset] == ours { added } else { 0 };
            open = Some((offset, number, added));
        } else if is_marker(line, END) {
            let Some((start, _, added)) = open.take() else {
                return Err(BlockError::StrayEnd { line: number });
            };
            let end = offset + line.len();
            // The joined line break is ours only while the block ends the
            // file; once someone appended after it, it ends their line.
            let start = if end == file.len() { start - added } else { start };
            blocks.push(start..end);
        }
    }
    if let Some((_, line, _)) = open {
        return Err(BlockError::Unterminated { line });
    }
    Ok(Layout { blocks })
}

/// The file with our blocks removed: the bytes we promise not to change.
pub fn outside(file: &[u8]) -> Result<Vec<u8>, BlockError> {
    let layout = layout(file)?;
    let mut out = Vec::with_capacity(file.len());
    let mut at = 0;
    for range in layout.blocks {
        out.extend_from_slice(&file[at..range.start]);
        at = range.end;
    }
    out.extend_from_slice(&file[at..]);
    Ok(out)
}

/// The entries in our block(s), in file order; lines that do not parse
/// (padding, comments) are skipped.
pub fn entries(file: &[u8]) -> Result<Vec<Entry>, BlockError> {
    let layout = layout(file)?;
    let mut out: Vec<Entry> = Vec::new();
    for range in layout.blocks {
        for (_, line) in lines(&file[range]) {
            let text = String::from_utf8_lossy(trim_eol(line));
            let mut words = text.split_whitespace();
            let Some(address) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else { continue };
            let names: Vec<String> = words.map(str::to_owned).collect();
            match out.iter_mut().find(|e| e.address == address) {
                Some(e) => e.names.extend(names),
                None => out.push(Entry { address, names }),
            }
        }
    }
    Ok(out)
}

/// The file with our block replaced by one holding `entries` (or removed,
/// when there are none). The block stays where the first one was; a new
/// block goes at the end. Bytes outside the block are copied unchanged.
pub fn splice(file: &[u8], entries: &[Entry]) -> Result<Vec<u8>, BlockError> {
    Ok(splice_with(file, entries, false)?.0)
}

/// Like [`splice`], for an in-place rewrite that must not shrink the file
/// (a shrink needs a truncate, and between the write and the truncate a
/// reader would see leftovers): the block is kept even when empty, and its
/// BEGIN line is padded with spaces to make the result at least `len` bytes.
pub fn splice_padded(file: &[u8], entries: &[Entry], len: usize) -> Result<Vec<u8>, BlockError> {
    let (mut out, pad_at) = splice_with(file, entries, true)?;
    if out.len() < len {
        let pad_at = pad_at.expect("a forced block is rendered");
        out.splice(pad_at..pad_at, std::iter::repeat_n(b' ', len - out.len()));
    }
    Ok(out)
}

/// The spliced file, and where spaces may pad the BEGIN line.
fn splice_with(file: &[u8], entries: &[Entry], force_block: bool) -> Result<(Vec<u8>, Option<usize>), BlockError> {
    let layout = layout(file)?;
    let eol: &[u8] = if crlf(file) { b"\r\n" } else { b"\n" };
    let mut out = Vec::with_capacity(file.len() + 256);
    let mut at = 0;
    let mut pad_at = None;
    let mut placed = entries.is_empty() && !force_block;
    for range in &layout.blocks {
        out.extend_from_slice(&file[at..range.start]);
        if !placed {
            pad_at = Some(render(&mut out, entries, eol));
            placed = true;
        }
        at = range.end;
    }
    out.extend_from_slice(&file[at..]);
    if !placed {
        pad_at = Some(render(&mut out, entries, eol));
    }
    Ok((out, pad_at))
}

/// Whether the file's lines end in CRLF (judged by its first line break).
fn crlf(file: &[u8]) -> bool {
    file.iter().position(|&b| b == b'\n').is_some_and(|i| i > 0 && file[i - 1] == b'\r')
}

/// Appends the block to `out` (whose end is where the block goes); returns
/// the offset of the BEGIN line's end, where padding may go.
fn render(out: &mut Vec<u8>, entries: &[Entry], eol: &[u8]) -> usize {
    let joined = !out.is_empty() && !out.ends_with(b"\n");
    if joined {
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(BEGIN.as_bytes());
    if joined {
        out.extend_from_slice(JOINED.as_bytes());
    }
    out.extend_from_slice(NOTE.as_bytes());
    let pad_at = out.len();
    out.extend_from_slice(eol);
    for entry in entries {
        for chunk in entry.names.chunks(NAMES_PER_LINE) {
            out.extend_from_slice(format!("{}\t{}", entry.address, chunk.join(" ")).as_bytes());
            out.extend_from_slice(eol);
        }
    }
    out.extend_from_slice(END.as_bytes());
    out.extend_from_slice(eol);
    pad_at
}

/// Groups (name, address) pairs into entries, in first-seen address order.
pub fn group<'a>(pairs: impl IntoIterator<Item = (&'a str, IpAddr)>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for (name, address) in pairs {
        match out.iter_mut().find(|e| e.address == address) {
            Some(e) => e.names.push(name.to_owned()),
            None => out.push(Entry { address, names: vec![name.to_owned()] }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Odd but real hosts files: each must survive byte for byte.
    pub(crate) const CORPUS: &[&[u8]] = &[
        b"",
        b"127.0.0.1 localhost\n",
        b"127.0.0.1 localhost",
        b"127.0.0.1\tlocalhost localhost.localdomain\r\n::1\tlocalhost ip6-localhost ip6-loopback\r\n",
        b"127.0.0.1 localhost\r\n10.0.0.1 noeol",
        b"# comment with words api.dev 10.0.0.1\n   \n\t\n10.1.2.3\tfoo   bar\t baz # trailing comment\n",
        b"fe80::1%lo0 localhost\n2001:db8::1 v6.example v6alias\n",
        b"# BEGIN docker-desktop\n192.168.65.2 host.docker.internal\n# END docker-desktop\n",
        b"# Added by Docker Desktop\n# BEGIN workstation-hostsX not ours\n1.1.1.1 a\n",
        b"\n\n\n",
        b"\xef\xbb\xbf127.0.0.1 bom\n\xff\xfe binary junk \x00\n",
        b"#\n#\n# END workstation-hosts-other\n",
    ];

    fn entries_a() -> Vec<Entry> {
        vec![Entry { address: "10.79.0.5".parse().unwrap(), names: vec!["api.dev".into(), "web.dev".into()] }]
    }

    fn entries_b() -> Vec<Entry> {
        let names = (0..20).map(|i| format!("n{i}.dev")).collect();
        vec![Entry { address: "2001:db8::7".parse().unwrap(), names }]
    }

    #[test]
    fn corpus_round_trips_byte_for_byte() {
        for (i, file) in CORPUS.iter().enumerate() {
            let a = splice(file, &entries_a()).unwrap();
            assert_eq!(outside(&a).unwrap(), *file, "case {i}: outside changed");
            assert_eq!(entries(&a).unwrap(), entries_a(), "case {i}");
            let b = splice(&a, &entries_b()).unwrap();
            assert_eq!(outside(&b).unwrap(), *file, "case {i}: outside changed after a rewrite");
            assert_eq!(entries(&b).unwrap(), entries_b(), "case {i}");
            assert_eq!(splice(&b, &[]).unwrap(), *file, "case {i}: clearing did not restore the file");
            assert_eq!(splice(&a, &entries_a()).unwrap(), a, "case {i}: not idempotent");
        }
    }

    #[test]
    fn block_keeps_its_place_and_line_endings() {
        let file = b"127.0.0.1 a\r\n# BEGIN workstation-hosts\r\n1.2.3.4 old.dev\r\n# END workstation-hosts\r\n10.0.0.9 after\r\n";
        let out = splice(file, &entries_a()).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("127.0.0.1 a\r\n# BEGIN workstation-hosts"), "{text}");
        assert!(text.ends_with("# END workstation-hosts\r\n10.0.0.9 after\r\n"), "{text}");
        assert!(text.contains("10.79.0.5\tapi.dev web.dev\r\n"), "{text}");
        assert!(!text.contains("old.dev"));
    }

    #[test]
    fn long_name_lists_are_split() {
        let out = String::from_utf8(splice(b"", &entries_b()).unwrap()).unwrap();
        let lines: Vec<_> = out.lines().filter(|l| l.starts_with("2001:db8::7")).collect();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.split_whitespace().count() <= NAMES_PER_LINE + 1));
    }

    #[test]
    fn appended_lines_after_a_joined_block_survive() {
        let joined = splice(b"127.0.0.1 a", &entries_a()).unwrap();
        let mut appended = joined.clone();
        appended.extend_from_slice(b"10.0.0.1 theirs\n");
        let cleared = splice(&appended, &[]).unwrap();
        assert_eq!(cleared, b"127.0.0.1 a\n10.0.0.1 theirs\n");
        assert_eq!(splice(&joined, &[]).unwrap(), b"127.0.0.1 a");
    }

    #[test]
    fn several_blocks_merge_into_the_first() {
        let file =
            b"# BEGIN workstation-hosts\n1.1.1.1 x.dev\n# END workstation-hosts\nmid\n# BEGIN workstation-hosts\n2.2.2.2 y.dev\n# END workstation-hosts\n";
        assert_eq!(entries(file).unwrap().len(), 2);
        let out = splice(file, &entries_a()).unwrap();
        assert_eq!(outside(&out).unwrap(), b"mid\n");
        assert_eq!(entries(&out).unwrap(), entries_a());
    }

    #[test]
    fn padded_splices_never_shrink_and_keep_the_outside() {
        for file in CORPUS {
            let big = splice(file, &entries_b()).unwrap();
            for entries in [entries_a(), vec![]] {
                let padded = splice_padded(&big, &entries, big.len()).unwrap();
                assert_eq!(padded.len(), big.len());
                assert_eq!(outside(&padded).unwrap(), *file);
                assert_eq!(super::entries(&padded).unwrap(), entries);
                assert_eq!(splice(&padded, &entries_a()).unwrap(), splice(file, &entries_a()).unwrap(), "padding does not stick");
            }
        }
    }

    #[test]
    fn broken_markers_are_refused_not_guessed() {
        let unterminated = b"a\n# BEGIN workstation-hosts\n1.1.1.1 x\n";
        assert_eq!(splice(unterminated, &[]), Err(BlockError::Unterminated { line: 2 }));
        assert_eq!(splice(b"# END workstation-hosts\n", &[]), Err(BlockError::StrayEnd { line: 1 }));
        let nested = b"# BEGIN workstation-hosts\n# BEGIN workstation-hosts\n# END workstation-hosts\n";
        assert_eq!(splice(nested, &[]), Err(BlockError::Nested { line: 2 }));
    }

    /// Random files built from awkward pieces: the invariants hold for all.
    #[test]
    fn random_files_keep_their_outside() {
        const PIECES: &[&[u8]] = &[b"\n", b"\r\n", b"127.0.0.1 a", b"\t", b" ", b"# c", b"::1 b", b"#BEGIN", b"x"];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut file = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut s = seed;
            for _ in 0..(s % 12) {
                file.extend_from_slice(PIECES[(s % PIECES.len() as u64) as usize]);
                s /= 7;
            }
            let a = splice(&file, &entries_a()).unwrap();
            assert_eq!(outside(&a).unwrap(), file, "{:?}", String::from_utf8_lossy(&file));
            assert_eq!(splice(&a, &[]).unwrap(), file, "{:?}", String::from_utf8_lossy(&file));
        }
    }
}
