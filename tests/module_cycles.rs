//! No module cycles in `src/`: construction runs one way (transports return
//! parts, only `port` assembles), and so does everything else.
//!
//! The check reads the sources, not the compiler's view: for every module
//! with children (the crate root and each directory module) it draws an
//! edge from child A to sibling B when code in A (or below it) names an
//! item of B (or below it) through a `crate::`, `super::` or `self::` path,
//! a `use` tree included; names re-exported by a parent are followed to the
//! child that defines them. Comments and `#[cfg(test)] mod tests` blocks at
//! the end of a file are left out (a unit test may reach anywhere). Then it
//! looks for a cycle among the siblings of each parent and prints the graph
//! it checked, so `cargo test --test module_cycles -- --nocapture` shows it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root: `["transport", "usb"]`.
type ModPath = Vec<String>;

/// Every module file: its path, and its code without comments and unit tests.
fn modules(src: &Path) -> BTreeMap<ModPath, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src/") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("below src/");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read a source file");
            out.insert(parts, code_of(&text));
        }
    }
    out
}

/// The text without `//` comments and without a trailing `#[cfg(test)] mod tests`.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal would cut it short; the crate
            // has none on a line that also holds a module path.
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands `prefix::{a::B, c, d::{e, F}}` use trees into plain paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = tree[..open].trim().trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
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
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| match p.as_str() {
            "self" => prefix.to_string(),
            _ => format!("{prefix}::{p}"),
        })
        .collect()
}

/// Every `crate::`/`super::`/`self::` path the code names, use trees expanded.
fn paths_in(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(at) = code[from..].find(start) {
            let at = from + at;
            from = at + start.len();
            // Not the tail of a longer identifier (`my_crate::`).
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let rest = &code[at..];
            let (mut depth, mut end) = (0, rest.len());
            for (i, c) in rest.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        end = i;
                        break;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = i + 1;
                            break;
                        }
                    }
                    c if c.is_alphanumeric() || c == '_' || c == ':' => {}
                    c if depth > 0 && (c == ',' || c == '*' || c.is_whitespace()) => {}
                    _ => {
                        end = i;
                        break;
                    }
                }
            }
            found.extend(expand(&rest[..end]));
        }
    }
    found
}

/// The module `path` (written in module `here`) points into:
/// `crate::port::Writer` -> `["port", "Writer"]`.
fn resolve(here: &ModPath, path: &str) -> Option<ModPath> {
    let segments: Vec<&str> = path
        .split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let (mut base, rest) = match *segments.first()? {
        "crate" => (Vec::new(), &segments[1..]),
        "self" => (here.clone(), &segments[1..]),
        "super" => {
            let mut base = here.clone();
            let mut i = 0;
            while segments.get(i) == Some(&"super") {
                base.pop()?;
                i += 1;
            }
            (base, &segments[i..])
        }
        _ => return None,
    };
    base.extend(rest.iter().map(|s| s.to_string()));
    Some(base)
}

/// `name` -> the child that defines it, from the parent's `use child::...`
/// lines (`pub use`, `pub(crate) use` and plain `use` alike).
fn reexports(code: &str, children: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut statement = String::new();
    for line in code.lines() {
        let line = line.trim();
        let is_use = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .any(|p| line.starts_with(p));
        if statement.is_empty() && !is_use {
            continue;
        }
        statement.push_str(line);
        statement.push(' ');
        if !line.ends_with(';') {
            continue;
        }
        let tree = &statement[statement.find("use ").unwrap_or(0) + 4..];
        for path in expand(tree.trim().trim_end_matches(';')) {
            let path = path.trim_start_matches("self::");
            let first = path.split("::").next().unwrap_or("").trim();
            if !children.contains(first) {
                continue;
            }
            let last = path.rsplit("::").next().unwrap_or("");
            let name = last.rsplit(" as ").next().unwrap_or(last).trim();
            map.insert(name.to_string(), first.to_string());
        }
        statement.clear();
    }
    map
}

/// A cycle in `edges`, if any (depth-first search).
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(from) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[from..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

/// The sibling graph under `parent`: child -> children it names.
fn sibling_graph(
    mods: &BTreeMap<ModPath, String>,
    parent: &ModPath,
) -> BTreeMap<String, BTreeSet<String>> {
    let children: BTreeSet<String> = mods
        .keys()
        .filter(|c| c.len() == parent.len() + 1 && c.starts_with(parent))
        .map(|c| c[parent.len()].clone())
        .collect();
    let exports = reexports(&mods[parent], &children);
    let mut edges: BTreeMap<String, BTreeSet<String>> = children
        .iter()
        .map(|c| (c.clone(), BTreeSet::new()))
        .collect();
    for (module, code) in mods {
        if module.len() <= parent.len() || !module.starts_with(parent) {
            continue;
        }
        let from = &module[parent.len()];
        for path in paths_in(code) {
            let Some(target) = resolve(module, &path) else {
                continue;
            };
            if target.len() <= parent.len() || !target.starts_with(parent) {
                continue; // outside this parent
            }
            let named = &target[parent.len()];
            let to = if children.contains(named) {
                named
            } else {
                match exports.get(named) {
                    Some(child) => child,
                    None => continue, // an item of the parent itself
                }
            };
            if to != from
                && let Some(out) = edges.get_mut(from)
            {
                out.insert(to.clone());
            }
        }
    }
    edges
}

#[test]
fn no_module_depends_on_a_sibling_that_depends_back_on_it() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    assert!(
        mods.len() > 40,
        "found only {} modules under src/",
        mods.len()
    );
    let parents: Vec<&ModPath> = mods
        .keys()
        .filter(|m| {
            mods.keys()
                .any(|c| c.len() == m.len() + 1 && c.starts_with(m))
        })
        .collect();
    let mut failures = Vec::new();
    for parent in &parents {
        let edges = sibling_graph(&mods, parent);
        let name = match parent.is_empty() {
            true => "crate".to_string(),
            false => format!("crate::{}", parent.join("::")),
        };
        println!("{name}:");
        for (from, to) in &edges {
            let to: Vec<&str> = to.iter().map(String::as_str).collect();
            println!("  {from} -> {}", to.join(", "));
        }
        if let Some(cycle) = find_cycle(&edges) {
            failures.push(format!("{name}: {}", cycle.join(" -> ")));
        }
    }
    assert!(
        parents.len() >= 8,
        "checked only {} parent modules",
        parents.len()
    );
    assert!(
        failures.is_empty(),
        "module cycles:\n{}",
        failures.join("\n")
    );
}

/// The check itself finds the cycles it is meant to find.
#[test]
fn the_check_sees_a_cycle_through_a_use_tree_and_a_reexport() {
    let mut mods = BTreeMap::new();
    mods.insert(vec![], "mod a;\nmod b;\npub use b::Thing;\n".to_string());
    mods.insert(vec!["a".into()], "use crate::{Thing, c::D};\n".to_string());
    mods.insert(vec!["b".into()], "fn f() { super::a::g() }\n".to_string());
    let edges = sibling_graph(&mods, &vec![]);
    assert_eq!(edges["a"], BTreeSet::from(["b".to_string()]));
    assert_eq!(edges["b"], BTreeSet::from(["a".to_string()]));
    assert!(find_cycle(&edges).is_some());
    mods.insert(vec!["b".into()], "fn f() {}\n".to_string());
    assert!(find_cycle(&sibling_graph(&mods, &vec![])).is_none());
}
