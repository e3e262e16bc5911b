//! The subsumption index of one CodeSystem: its parent/child edges read once into adjacency
//! lists in both directions, so a closure is one breadth-first walk with a visited set
//! (linear in the codes and edges it reaches) instead of a scan of every edge per step.
//!
//! Edges are what the CodeSystem states: a concept nested in another is its child, a
//! `property` with code `parent` (`valueCode`) names a parent and one with code `child`
//! names a child. Concepts without a `code` are skipped together with the concepts nested in
//! them. Codes only named by properties are part of the hierarchy too; cycles are harmless.
//!
//! ```
//! use flint_terminology::Hierarchy;
//! let cs = serde_json::json!({"resourceType": "CodeSystem", "concept": [
//!     {"code": "A", "concept": [{"code": "A1"}]},
//!     {"code": "A2", "property": [{"code": "parent", "valueCode": "A"}]}]});
//! let h = Hierarchy::of(&cs);
//! assert_eq!(h.descendants("A"), ["A", "A2", "A1"]);
//! assert_eq!(h.ancestors("A1"), ["A1", "A"]);
//! assert!(h.subsumes("A", "A2") && !h.subsumes("A1", "A"));
//! ```

use crate::Direction;
use serde_json::Value;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// The parent/child index of one CodeSystem.
#[derive(Debug, Clone, Default)]
pub struct Hierarchy {
    /// Code → its number.
    ids: HashMap<String, u32>,
    /// Number → its code.
    codes: Vec<String>,
    /// Number → numbers of its children, in the order the CodeSystem states them.
    children: Vec<Vec<u32>>,
    /// Number → numbers of its parents, in the order the CodeSystem states them.
    parents: Vec<Vec<u32>>,
}

impl Hierarchy {
    /// The index of a CodeSystem resource (its `concept` tree and `parent`/`child`
    /// properties).
    pub fn of(code_system: &Value) -> Hierarchy {
        let mut h = Hierarchy::default();
        // The same walk (and so the same edge order) as the closure always had: a stack of
        // (parent, concept), children pushed after their concept's properties.
        let mut stack: Vec<(Option<u32>, &Value)> = code_system["concept"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| (None, c))
            .collect();
        while let Some((parent, c)) = stack.pop() {
            let Some(code) = c["code"].as_str() else {
                continue;
            };
            let me = h.id(code);
            if let Some(p) = parent {
                h.edge(p, me);
            }
            for prop in c["property"].as_array().into_iter().flatten() {
                match (prop["code"].as_str(), prop["valueCode"].as_str()) {
                    (Some("parent"), Some(p)) => {
                        let p = h.id(p);
                        h.edge(p, me);
                    }
                    (Some("child"), Some(ch)) => {
                        let ch = h.id(ch);
                        h.edge(me, ch);
                    }
                    _ => {}
                }
            }
            for child in c["concept"].as_array().into_iter().flatten() {
                stack.push((Some(me), child));
            }
        }
        h
    }

    /// The number of `code`, adding it when new.
    fn id(&mut self, code: &str) -> u32 {
        match self.ids.entry(code.to_string()) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                let n = self.codes.len() as u32;
                e.insert(n);
                self.codes.push(code.to_string());
                self.children.push(Vec::new());
                self.parents.push(Vec::new());
                n
            }
        }
    }

    fn edge(&mut self, parent: u32, child: u32) {
        self.children[parent as usize].push(child);
        self.parents[child as usize].push(parent);
    }

    /// Number of codes in the hierarchy (concepts and codes named by properties).
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// Whether the CodeSystem has no codes.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Whether `code` is a concept of the CodeSystem or named by one of its properties.
    pub fn contains(&self, code: &str) -> bool {
        self.ids.contains_key(code)
    }

    /// `code` followed by every code reachable from it in `direction`, each once, in
    /// breadth-first order (edges in the order the CodeSystem states them); just `code` when
    /// the CodeSystem does not have it.
    pub fn closure(&self, code: &str, direction: Direction) -> Vec<String> {
        let Some(&start) = self.ids.get(code) else {
            return vec![code.to_string()];
        };
        let next = match direction {
            Direction::Descendants => &self.children,
            Direction::Ancestors => &self.parents,
        };
        let mut seen = vec![false; self.codes.len()];
        seen[start as usize] = true;
        let mut order = vec![start];
        let mut i = 0;
        while i < order.len() {
            for &n in &next[order[i] as usize] {
                if !seen[n as usize] {
                    seen[n as usize] = true;
                    order.push(n);
                }
            }
            i += 1;
        }
        order
            .into_iter()
            .map(|n| self.codes[n as usize].clone())
            .collect()
    }

    /// `code` and every code below it.
    pub fn descendants(&self, code: &str) -> Vec<String> {
        self.closure(code, Direction::Descendants)
    }

    /// `code` and every code above it.
    pub fn ancestors(&self, code: &str) -> Vec<String> {
        self.closure(code, Direction::Ancestors)
    }

    /// The direct parents of `code`, in the order the CodeSystem states them.
    pub fn parents(&self, code: &str) -> Vec<&str> {
        self.neighbours(code, &self.parents)
    }

    /// The direct children of `code`, in the order the CodeSystem states them.
    pub fn children(&self, code: &str) -> Vec<&str> {
        self.neighbours(code, &self.children)
    }

    fn neighbours<'a>(&'a self, code: &str, edges: &[Vec<u32>]) -> Vec<&'a str> {
        self.ids.get(code).map_or_else(Vec::new, |&n| {
            edges[n as usize]
                .iter()
                .map(|&m| self.codes[m as usize].as_str())
                .collect()
        })
    }

    /// Whether `a` subsumes `b`: `b` is `a` or below it.
    pub fn subsumes(&self, a: &str, b: &str) -> bool {
        if a == b {
            return true;
        }
        let (Some(&a), Some(&b)) = (self.ids.get(a), self.ids.get(b)) else {
            return false;
        };
        // Walk up from `b`: codes usually have fewer ancestors than descendants. The visited
        // set holds only the ancestors reached, so a test costs what `b`'s ancestry does, not
        // the size of the CodeSystem.
        let mut seen = std::collections::HashSet::new();
        seen.insert(b);
        let mut stack = vec![b];
        while let Some(n) = stack.pop() {
            for &p in &self.parents[n as usize] {
                if p == a {
                    return true;
                }
                if seen.insert(p) {
                    stack.push(p);
                }
            }
        }
        false
    }
}
