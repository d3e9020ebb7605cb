//! The shape of provisioner/src, read from the source: imports (`use`
//! trees and inline `crate::`/`super::` paths, through `mod.rs`
//! re-exports to the file that defines a name) form no cycle between
//! files or between top-level folders; no file is over 450 lines; a
//! `mod.rs` only declares, re-exports and dispatches (at most 80 lines).
//! Unit tests (`#[cfg(test)]` onwards) are left out: they may reach
//! anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use workstation_tests::repo_root;

const MAX_LINES: usize = 450;
const MAX_MOD_LINES: usize = 80;

/// One source file: its module path and its code without unit tests.
struct Source {
    rel: String,
    module: Vec<String>,
    code: String,
    lines: usize,
}

fn sources() -> Vec<Source> {
    let root = repo_root().join("provisioner/src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .filter(|p| !p.ends_with("main.rs"))
        .map(|path| {
            let rel = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(at) => &text[..at],
                None => &text,
            };
            // Comments name paths they do not import.
            let code: String = code.lines().map(|l| l.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
            let mut module: Vec<String> = rel.trim_end_matches(".rs").split('/').map(String::from).collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            Source { rel, module, code, lines: text.lines().count() }
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The full paths of `use` trees and inline paths (`a::b`) in `code`, and
/// whether each came from a `pub use` (a re-export).
fn paths(code: &str) -> Vec<(Vec<String>, bool)> {
    let mut out = Vec::new();
    let mut rest = code;
    // `use` statements, trees expanded.
    while let Some(at) = find_use(rest) {
        let start = at + rest[at..].find("use ").unwrap() + 4;
        let end = start + rest[start..].find(';').unwrap();
        let reexport = rest[..at + 4].trim_end().ends_with("pub") || rest[at..start].contains("pub");
        for p in expand(&rest[start..end].split_whitespace().collect::<String>()) {
            out.push((p, reexport));
        }
        rest = &rest[end..];
    }
    // Inline paths outside `use`.
    let inline: String = code.lines().filter(|l| !l.trim_start().starts_with("use ") && !l.trim_start().starts_with("pub use ")).collect::<Vec<_>>().join("\n");
    for word in inline.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
        if word.contains("::") && !word.starts_with("::") {
            out.push((word.split("::").filter(|s| !s.is_empty()).map(String::from).collect(), false));
        }
    }
    out
}

fn find_use(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = text[from..].find("use ") {
        let at = from + at;
        let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
        let before = text[line_start..at].trim();
        if before.is_empty() || before == "pub" || before.starts_with("pub(") {
            return Some(line_start);
        }
        from = at + 4;
    }
    None
}

/// `a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e] (`self` -> the prefix).
fn expand(tree: &str) -> Vec<Vec<String>> {
    let Some(open) = tree.find('{') else {
        let p: Vec<String> = tree.split(" as ").next().unwrap().split("::").filter(|s| !s.is_empty()).map(String::from).collect();
        return vec![p];
    };
    let prefix: Vec<String> = tree[..open].split("::").filter(|s| !s.is_empty()).map(String::from).collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            expand(p).into_iter().map(|tail| {
                let tail: Vec<String> = tail.into_iter().filter(|s| s != "self").collect();
                [prefix.clone(), tail].concat()
            })
        })
        .collect()
}

struct Tree {
    /// Module path -> file.
    files: BTreeMap<Vec<String>, String>,
    /// mod.rs module -> re-exported name -> defining child module.
    reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>,
}

impl Tree {
    fn new(sources: &[Source]) -> Tree {
        let files = sources.iter().map(|s| (s.module.clone(), s.rel.clone())).collect();
        let mut reexports: BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        for s in sources.iter().filter(|s| s.rel.ends_with("mod.rs")) {
            for line in s.code.lines().filter(|l| l.trim_start().starts_with("pub use ")) {
                let tree = line.trim_start().trim_start_matches("pub use ").trim_end_matches(';');
                for p in expand(&tree.split_whitespace().collect::<String>()) {
                    if let (Some(name), false) = (p.last(), p.first().is_some_and(|f| f == "crate" || f == "super")) {
                        let child = [s.module.clone(), p[..p.len() - 1].to_vec()].concat();
                        reexports.entry(s.module.clone()).or_default().insert(name.clone(), child);
                    }
                }
            }
        }
        Tree { files, reexports }
    }

    /// The file `path` (absolute, from the crate root) names.
    fn resolve(&self, path: &[String]) -> Option<String> {
        let mut module: Vec<String> = Vec::new();
        for seg in path {
            let mut next = module.clone();
            next.push(seg.clone());
            if self.files.contains_key(&next) {
                module = next;
                continue;
            }
            // A name a mod.rs re-exports lives in its child.
            if let Some(child) = self.reexports.get(&module).and_then(|r| r.get(seg)) {
                if self.files.contains_key(child) {
                    module = child.clone();
                }
            }
            break;
        }
        self.files.get(&module).cloned()
    }
}

/// `path` from the crate root, for a use in `module` (a file's own
/// module: `super` is its parent, whether the file is `x.rs` or `x/mod.rs`).
fn absolute(path: &[String], module: &[String]) -> Vec<String> {
    if path.first().is_some_and(|s| s == "crate") {
        return path[1..].to_vec();
    }
    let mut base = module.to_vec();
    let mut rest = path;
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    [base, rest.to_vec()].concat()
}

fn edges(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let tree = Tree::new(sources);
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in sources {
        let is_mod = s.rel.ends_with("mod.rs") || s.rel == "lib.rs";
        for (path, reexport) in paths(&s.code) {
            // A mod.rs's own re-exports are its interface, not a use.
            if is_mod && reexport {
                continue;
            }
            // From the crate root, from this module, or a child module by
            // its bare name; anything else is another crate's.
            let path = match path.first().map(String::as_str) {
                Some("crate" | "super") => absolute(&path, &s.module),
                Some("self") => [s.module.clone(), path[1..].to_vec()].concat(),
                Some(first) if tree.files.contains_key(&[s.module.clone(), vec![first.to_owned()]].concat()) => [s.module.clone(), path].concat(),
                _ => continue,
            };
            if let Some(target) = tree.resolve(&path) {
                if target != s.rel && target != "lib.rs" {
                    out.entry(s.rel.clone()).or_default().insert(target);
                }
            }
        }
    }
    out
}

/// Strongly connected components of more than one node (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(v: &'a str, st: &mut State<'a>) {
        let i = st.index.len();
        st.index.insert(v, i);
        st.low.insert(v, i);
        st.stack.push(v);
        st.on.insert(v);
        for w in st.graph.get(v).into_iter().flatten() {
            if !st.index.contains_key(w.as_str()) {
                visit(w, st);
                let lw = st.low[w.as_str()];
                st.low.insert(v, st.low[v].min(lw));
            } else if st.on.contains(w.as_str()) {
                let iw = st.index[w.as_str()];
                st.low.insert(v, st.low[v].min(iw));
            }
        }
        if st.low[v] == st.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = st.stack.pop() {
                st.on.remove(w);
                scc.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                st.out.push(scc);
            }
        }
    }
    let mut st = State { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), on: BTreeSet::new(), out: Vec::new() };
    for v in graph.keys() {
        if !st.index.contains_key(v.as_str()) {
            visit(v, &mut st);
        }
    }
    st.out
}

/// The top-level folder (or file) a file belongs to.
fn folder(rel: &str) -> String {
    rel.split('/').next().unwrap().trim_end_matches(".rs").to_owned()
}

#[test]
fn the_parser_sees_trees_and_reexports() {
    assert_eq!(
        expand("crate::a::{b,c::{d,self},e as f}"),
        [["crate", "a", "b"].as_slice(), &["crate", "a", "c", "d"], &["crate", "a", "c"], &["crate", "a", "e"]]
    );
    let found = paths("use super::{Context, LifecycleError};\npub use power::{Started};\nfn f() { crate::poll::until(x) }\n");
    assert!(found.contains(&(vec!["super".into(), "Context".into()], false)), "{found:?}");
    assert!(found.contains(&(vec!["power".into(), "Started".into()], true)), "{found:?}");
    assert!(found.contains(&(vec!["crate".into(), "poll".into(), "until".into()], false)), "{found:?}");
    assert_eq!(absolute(&["super".into(), "x".into()], &["boxes".into(), "power".into()]), ["boxes", "x"]);
    assert_eq!(absolute(&["super".into(), "x".into()], &["boxes".into()]), ["x"]);
    // Through a re-export, to the defining file.
    let sources = sources();
    let tree = Tree::new(&sources);
    assert_eq!(tree.resolve(&["boxes".into(), "Context".into()]).as_deref(), Some("boxes/context.rs"));
    let graph = edges(&sources);
    assert!(graph["boxes/create.rs"].contains("boxes/access.rs") && graph["boxes/create.rs"].contains("boxes/context.rs"), "{:?}", graph["boxes/create.rs"]);
}

#[test]
fn no_module_or_folder_depends_on_itself() {
    let sources = sources();
    let files = edges(&sources);
    let file_cycles = cycles(&files);
    let mut folders: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &files {
        for to in tos {
            if folder(from) != folder(to) {
                folders.entry(folder(from)).or_default().insert(folder(to));
            }
        }
    }
    let folder_cycles = cycles(&folders);
    let why = |c: &Vec<String>, g: &BTreeMap<String, BTreeSet<String>>| {
        c.iter().flat_map(|a| g.get(a).into_iter().flatten().filter(|b| c.contains(b)).map(move |b| format!("{a} -> {b}"))).collect::<Vec<_>>()
    };
    assert!(folder_cycles.is_empty(), "folders in a cycle: {:#?}", folder_cycles.iter().map(|c| why(c, &folders)).collect::<Vec<_>>());
    assert!(file_cycles.is_empty(), "modules in a cycle: {:#?}", file_cycles.iter().map(|c| why(c, &files)).collect::<Vec<_>>());
}

#[test]
fn files_are_small_and_mod_rs_only_declares() {
    let mut over = Vec::new();
    for s in sources() {
        let limit = if s.rel.ends_with("mod.rs") { MAX_MOD_LINES } else { MAX_LINES };
        if s.lines > limit {
            over.push(format!("{}: {} lines (limit {limit})", s.rel, s.lines));
        }
    }
    assert!(over.is_empty(), "{over:#?}");
}
