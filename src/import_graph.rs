//! The workspace's import graph, file by file, and its circles.
//!
//! Each `.rs` file of a crate is a node; an edge goes from a file to the
//! file of every module its `use crate::…`, `use super::…` and
//! `use self::…` lines (and inline `crate::…` paths) name, taking the
//! longest module path that exists. A circle is a set of files that reach
//! each other (a strongly connected component of more than one file). A
//! `mod.rs` that re-exports is a node like any other, so a circle through
//! re-exports counts too. Unit-test modules (`#[cfg(test)] mod …` to the
//! end of the file) are left out: a test may import what it tests.
//!
//! What this does not do: resolve `use` of items that a glob re-exports
//! from another crate, or macros; it reads text, not the compiler's
//! resolution, which is enough for a house where every file says what it
//! imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's modules: module path (`["guest", "kinds"]`) → file.
#[derive(Debug, Default)]
pub struct Graph {
    files: BTreeMap<Vec<String>, PathBuf>,
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

impl Graph {
    /// Builds the graph of the crate whose root source folder is `src`
    /// (holding `lib.rs` or `main.rs`).
    pub fn of_crate(src: &Path) -> std::io::Result<Self> {
        let mut sources = Vec::new();
        collect(src, src, &mut sources)?;
        let mut texts = Vec::new();
        for (module, path) in &sources {
            texts.push((module.clone(), std::fs::read_to_string(path)?));
        }
        let mut g = Graph::from_sources(texts.iter().map(|(m, t)| (m.clone(), t.as_str())));
        g.files = sources.into_iter().collect();
        Ok(g)
    }

    /// Builds the graph from `(module path, source text)` pairs.
    pub fn from_sources<'a>(sources: impl Iterator<Item = (Vec<String>, &'a str)>) -> Self {
        let sources: Vec<(Vec<String>, &str)> = sources.collect();
        let modules: BTreeSet<Vec<String>> = sources.iter().map(|(m, _)| m.clone()).collect();
        let mut g = Graph::default();
        for (module, text) in &sources {
            g.files.insert(module.clone(), PathBuf::from(module.join("/")));
            let mut targets = BTreeSet::new();
            for path in imported_paths(strip_tests(text)) {
                if let Some(abs) = absolute(module, &path) {
                    if let Some(t) = longest_module(&abs, &modules) {
                        if t != *module {
                            targets.insert(t);
                        }
                    }
                }
            }
            g.edges.insert(module.clone(), targets);
        }
        g
    }

    /// The circles: each a sorted list of the files that reach each other.
    pub fn circles(&self) -> Vec<Vec<String>> {
        let nodes: Vec<&Vec<String>> = self.edges.keys().collect();
        let index: BTreeMap<&Vec<String>, usize> = nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let adj: Vec<Vec<usize>> =
            nodes.iter().map(|n| self.edges[*n].iter().filter_map(|t| index.get(t).copied()).collect()).collect();
        let mut out: Vec<Vec<String>> = strongly_connected(&adj)
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut names: Vec<String> = c.iter().map(|&i| self.name(nodes[i])).collect();
                names.sort();
                names
            })
            .collect();
        out.sort();
        out
    }

    fn name(&self, module: &[String]) -> String {
        self.files.get(module).map_or_else(|| module.join("::"), |p| p.display().to_string())
    }
}

/// `.rs` files under `dir`, with their module paths.
fn collect(root: &Path, dir: &Path, out: &mut Vec<(Vec<String>, PathBuf)>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        if e.file_type()?.is_dir() {
            collect(root, &path, out)?;
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let mut module: Vec<String> =
                rel.iter().map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
            if matches!(module.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                module.pop();
            }
            out.push((module, path));
        }
    }
    Ok(())
}

/// The text before a file's unit-test module.
fn strip_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(i) = text[from..].find("#[cfg(test)]") {
        let at = from + i;
        let rest = text[at + "#[cfg(test)]".len()..].trim_start();
        if rest.starts_with("mod ") || rest.starts_with("pub mod ") || rest.starts_with("pub(crate) mod ") {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

/// Removes `//` comments (doc comments included) from each line.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module-relative path a text names: the trees of its `use`
/// declarations, expanded, and inline `crate::` paths.
fn imported_paths(text: &str) -> Vec<Vec<String>> {
    let code = without_comments(text);
    let mut out = Vec::new();
    let mut rest = code.as_str();
    while let Some(i) = find_use(rest) {
        let body_start = i + rest[i..].find("use ").map_or(0, |j| j + 4);
        let Some(end) = rest[body_start..].find(';') else { break };
        let body = rest[body_start..body_start + end].split_whitespace().collect::<Vec<_>>().join(" ");
        expand(&body, &mut Vec::new(), &mut out);
        rest = &rest[body_start + end..];
    }
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::") {
        let at = from + i;
        let boundary = at == 0 || !(bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_');
        if boundary {
            let path: Vec<String> = code[at..]
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or("")
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            out.push(path);
        }
        from = at + "crate::".len();
    }
    out
}

/// The next `use` declaration that starts at a statement boundary.
fn find_use(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("use ") {
        let at = from + i;
        let before = text[..at].trim_end_matches([' ', '\t']);
        let starts = before.is_empty()
            || before.ends_with(['\n', ';', '{', '}'])
            || before.ends_with("pub")
            || before.ends_with(')');
        if starts {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// Expands one use tree (`a::{b, c::{d}}`) into full paths.
fn expand(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let tree = tree.trim().trim_start_matches("::");
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim();
        let depth = prefix.len();
        prefix.extend(head.split("::").filter(|s| !s.is_empty()).map(str::to_owned));
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        for part in split_top(inner) {
            expand(part, prefix, out);
        }
        prefix.truncate(depth);
    } else {
        let mut p = prefix.clone();
        let path = tree.split(" as ").next().unwrap_or(tree);
        p.extend(path.split("::").map(str::trim).filter(|s| !s.is_empty() && *s != "*").map(str::to_owned));
        if p.last().is_some_and(|s| s == "self") {
            p.pop();
        }
        out.push(p);
    }
}

/// Splits `a, b::{c, d}, e` at the commas outside braces.
fn split_top(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// `path` from the crate root, for a file whose module is `module`; `None`
/// for paths outside the crate (other crates, `std`). In Rust a file's
/// `self` is its own module and `super` its parent, for `mod.rs` and
/// plain files alike.
fn absolute(module: &[String], path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    // The module a relative path starts from: a directory module is its
    // own `self`; a file's `self` is itself, its `super` the folder.
    let mut base: Vec<String> = module.to_vec();
    let mut rest = path;
    match first.as_str() {
        "crate" => {
            base.clear();
            rest = &path[1..];
        }
        "self" => rest = &path[1..],
        "super" => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

/// The longest prefix of `path` that is a module.
fn longest_module(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (0..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p))
}

/// Tarjan's strongly connected components of `adj`.
fn strongly_connected(adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct State<'a> {
        adj: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        for i in 0..s.adj[v].len() {
            let w = s.adj[v][i];
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            s.out.push(comp);
        }
    }
    let n = adj.len();
    let mut s = State {
        adj,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str) -> Vec<String> {
        p.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    #[test]
    fn a_circle_it_is_shown_is_found() {
        let g = Graph::from_sources(
            [
                (m(""), "pub mod a;\npub mod b;\npub mod c;"),
                (m("a"), "use crate::b::Thing;\n"),
                (m("b"), "use crate::{c::{self, Other}};\n"),
                (m("c"), "fn f() { let _ = crate::a::make(); }\n"),
            ]
            .into_iter(),
        );
        assert_eq!(g.circles(), vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    }

    #[test]
    fn super_self_and_reexports_resolve_and_tests_are_left_out() {
        let g = Graph::from_sources(
            [
                (m(""), "pub mod k;"),
                (m("k"), "mod kind;\nmod spec;\npub use self::kind::Kind;\n"),
                (m("k/kind"), "use super::spec::Spec;\n#[cfg(test)]\nmod tests {\n use crate::k::Kind;\n}\n"),
                (m("k/spec"), "// use crate::k::kind::Kind;\npub struct Spec;\n"),
            ]
            .into_iter(),
        );
        assert!(g.circles().is_empty(), "{:?}", g.circles());
        // The same files with spec importing kind through the re-export.
        let g = Graph::from_sources(
            [
                (m(""), "pub mod k;"),
                (m("k"), "mod kind;\nmod spec;\npub use self::kind::Kind;\n"),
                (m("k/kind"), "use super::spec::Spec;\n"),
                (m("k/spec"), "use crate::k::Kind;\n"),
            ]
            .into_iter(),
        );
        assert_eq!(g.circles(), vec![vec!["k".to_string(), "k/kind".into(), "k/spec".into()]]);
    }

    #[test]
    fn the_workspace_has_no_import_circles() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let crates = [
            "guest-mm/src",
            "devices/src",
            "vmm/src",
            "vmm/cli/src",
            "vmm/cli/kut-cfg/src",
            "benches/suite/src",
            "src",
        ];
        let mut found = Vec::new();
        for c in crates {
            let dir = root.join(c);
            if !dir.exists() {
                continue;
            }
            let g = Graph::of_crate(&dir).unwrap();
            assert!(!g.edges.is_empty(), "{c}: no files read");
            for circle in g.circles() {
                let files: Vec<String> = circle
                    .iter()
                    .map(|f| Path::new(f).strip_prefix(root).map_or(f.clone(), |p| p.display().to_string()))
                    .collect();
                found.push(files.join(" ⇄ "));
            }
        }
        assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
    }
}
