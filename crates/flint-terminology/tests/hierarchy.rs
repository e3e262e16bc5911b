//! The CodeSystem index: closures equal those of the quadratic edge scan search used before
//! (kept here as the reference), order included, on irregular hierarchies; and correct on a
//! generated CodeSystem of 20,000 concepts (wide by nesting, deep by `parent` properties),
//! checked against its generator's parent function.

use flint_terminology::{Direction, Hierarchy};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The closure as search computed it before the index: rebuild the (parent, child) pairs,
/// then scan all of them for every code reached.
fn reference_closure(cs: &Value, code: &str, up: bool) -> Vec<String> {
    let edges = reference_hierarchy(cs);
    let mut out = vec![code.to_string()];
    let mut i = 0;
    while i < out.len() {
        let from = out[i].clone();
        for (p, c) in &edges {
            let (a, b) = if up { (c, p) } else { (p, c) };
            if *a == from && !out.contains(b) {
                out.push(b.clone());
            }
        }
        i += 1;
    }
    out
}

fn reference_hierarchy(cs: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack: Vec<(Option<String>, &Value)> = cs["concept"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| (None, c))
        .collect();
    while let Some((parent, c)) = stack.pop() {
        let Some(code) = c["code"].as_str() else {
            continue;
        };
        if let Some(p) = parent {
            out.push((p, code.to_string()));
        }
        for prop in c["property"].as_array().into_iter().flatten() {
            match (prop["code"].as_str(), prop["valueCode"].as_str()) {
                (Some("parent"), Some(p)) => out.push((p.to_string(), code.to_string())),
                (Some("child"), Some(ch)) => out.push((code.to_string(), ch.to_string())),
                _ => {}
            }
        }
        for child in c["concept"].as_array().into_iter().flatten() {
            stack.push((Some(code.to_string()), child));
        }
    }
    out
}

/// A small deterministic generator (xorshift), so the irregular CodeSystems are reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// An irregular CodeSystem: nesting, several parents, `parent` and `child` properties, cycles,
/// codes only properties name, concepts without a code (hiding what is nested in them),
/// properties of other kinds and duplicate edges.
fn irregular(seed: u64, n: usize) -> Value {
    let mut rng = Rng(seed);
    fn concept(i: usize, rng: &mut Rng, n: usize, depth: usize) -> Value {
        let mut c = json!({"code": format!("c{i}")});
        let mut props = Vec::new();
        for _ in 0..rng.below(3) {
            let other = format!("c{}", rng.below(n + 5));
            match rng.below(4) {
                0 | 1 => props.push(json!({"code": "parent", "valueCode": other})),
                2 => props.push(json!({"code": "child", "valueCode": other})),
                _ => props.push(json!({"code": "inactive", "valueBoolean": true})),
            }
        }
        if !props.is_empty() {
            c["property"] = Value::Array(props);
        }
        if depth < 4 && rng.below(3) == 0 {
            let kids: Vec<Value> = (0..1 + rng.below(3))
                .map(|_| concept(rng.below(n + 5), rng, n, depth + 1))
                .collect();
            c["concept"] = Value::Array(kids);
        }
        if rng.below(25) == 0 {
            c.as_object_mut().unwrap().remove("code");
        }
        c
    }
    let concepts: Vec<Value> = (0..n).map(|i| concept(i, &mut rng, n, 0)).collect();
    json!({"resourceType": "CodeSystem", "concept": concepts})
}

#[test]
fn closures_equal_the_edge_scan_order_included() {
    let (mut largest, mut cyclic, mut hidden) = (0, 0, 0);
    for seed in 1..=20 {
        let cs = irregular(seed * 7919, 60);
        let h = Hierarchy::of(&cs);
        hidden += cs["concept"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c.get("code").is_none())
            .count();
        // Every code of the system, some it lacks, and the empty code.
        let codes: Vec<String> = (0..66)
            .map(|i| format!("c{i}"))
            .chain(["nope".to_string(), String::new()])
            .collect();
        for c in &codes {
            let below = reference_closure(&cs, c, false);
            largest = largest.max(below.len());
            // `c` below one of its own descendants: a cycle through `c`.
            if below[1..]
                .iter()
                .any(|d| reference_closure(&cs, d, false).contains(c))
            {
                cyclic += 1;
            }
            assert_eq!(h.descendants(c), below, "seed {seed}, below {c}");
            assert_eq!(
                h.ancestors(c),
                reference_closure(&cs, c, true),
                "seed {seed}, above {c}"
            );
            for d in &codes {
                assert_eq!(
                    h.subsumes(c, d),
                    below.contains(d),
                    "seed {seed}: {c} subsumes {d}"
                );
            }
        }
    }
    // The generated systems are not trivial.
    assert!(
        largest > 20 && cyclic > 0 && hidden > 0,
        "{largest} {cyclic} {hidden}"
    );
}

/// 20,000 concepts: a 4-ary tree of 15,000 (the first 1,365 nested in their parents, the
/// others at the top level naming their parent by a `parent` property, or named by their
/// parent's `child` property), and a chain of 5,000 below a leaf of the tree (each link a
/// `parent` property): wide and deep.
fn large() -> (Value, Vec<Option<usize>>) {
    const TREE: usize = 15_000;
    const CHAIN: usize = 5_000;
    const NESTED: usize = 1_365; // levels 0..=5 of the 4-ary tree
    let n = TREE + CHAIN;
    let leaf = TREE - 1;
    let parent: Vec<Option<usize>> = (0..n)
        .map(|i| match i {
            0 => None,
            i if i < TREE => Some((i - 1) / 4),
            i if i == TREE => Some(leaf),
            i => Some(i - 1),
        })
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = p {
            children.entry(*p).or_default().push(i);
        }
    }
    // Tree codes below NESTED whose parent names them by `child`: every third one.
    let by_child = |i: usize| (NESTED..TREE).contains(&i) && i.is_multiple_of(3);
    fn nested(
        i: usize,
        children: &HashMap<usize, Vec<usize>>,
        nested_below: usize,
        by_child: &dyn Fn(usize) -> bool,
    ) -> Value {
        let mut c = json!({"code": format!("k{i}")});
        let kids: Vec<Value> = children
            .get(&i)
            .into_iter()
            .flatten()
            .filter(|&&k| k < nested_below)
            .map(|&k| nested(k, children, nested_below, by_child))
            .collect();
        if !kids.is_empty() {
            c["concept"] = Value::Array(kids);
        }
        let named: Vec<Value> = children
            .get(&i)
            .into_iter()
            .flatten()
            .filter(|&&k| by_child(k))
            .map(|&k| json!({"code": "child", "valueCode": format!("k{k}")}))
            .collect();
        if !named.is_empty() {
            c["property"] = Value::Array(named);
        }
        c
    }
    let mut concepts = vec![nested(0, &children, NESTED, &by_child)];
    for (i, p) in parent.iter().enumerate().skip(NESTED) {
        let mut c = json!({"code": format!("k{i}")});
        let mut props = Vec::new();
        if !by_child(i) {
            props.push(json!({"code": "parent", "valueCode": format!("k{}", p.unwrap())}));
        }
        let named: Vec<Value> = children
            .get(&i)
            .into_iter()
            .flatten()
            .filter(|&&k| by_child(k))
            .map(|&k| json!({"code": "child", "valueCode": format!("k{k}")}))
            .collect();
        props.extend(named);
        if !props.is_empty() {
            c["property"] = Value::Array(props);
        }
        concepts.push(c);
    }
    (
        json!({"resourceType": "CodeSystem", "url": "http://x/large", "concept": concepts}),
        parent,
    )
}

#[test]
fn large_code_system_closures() {
    let (cs, parent) = large();
    let n = parent.len();
    assert_eq!(cs["concept"].as_array().unwrap().len(), 1 + (n - 1_365));
    let h = Hierarchy::of(&cs);
    assert_eq!(h.len(), 20_000);
    // The expected closures from the generator's parent function: ancestors are the path to
    // the root, descendants the codes whose path passes through.
    let path = |mut i: usize| {
        let mut out = vec![i];
        while let Some(p) = parent[i] {
            out.push(p);
            i = p;
        }
        out
    };
    let mut below: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut depth_sum = 0;
    for j in 0..n {
        let p = path(j);
        depth_sum += p.len();
        for a in p {
            below[a].push(j);
        }
    }
    let code = |i: usize| format!("k{i}");
    let parse = |c: &str| c[1..].parse::<usize>().unwrap();
    // Every code, both directions: each closure starts with the code, has no repeats and is
    // the expected set. (Quadratic scans could not do this in a test's time.)
    let mut total = 0;
    for (i, expected) in below.iter().enumerate() {
        let down = h.descendants(&code(i));
        assert_eq!(down[0], code(i));
        let mut got: Vec<usize> = down.iter().map(|c| parse(c)).collect();
        got.sort_unstable();
        assert_eq!(&got, expected, "below k{i}");
        total += got.len();
        let up = h.ancestors(&code(i));
        assert_eq!(up[0], code(i));
        // A single-parent hierarchy: breadth-first upwards is the path itself.
        assert_eq!(
            up.iter().map(|c| parse(c)).collect::<Vec<_>>(),
            path(i),
            "above k{i}"
        );
    }
    // Each code is below each of its ancestors once.
    assert_eq!(total, depth_sum);
    assert_eq!(h.descendants("k0").len(), n);
    assert_eq!(h.ancestors(&code(n - 1)).len(), 5_000 + path(14_999).len());
    assert!(h.subsumes("k0", &code(n - 1)) && !h.subsumes(&code(n - 1), "k0"));
    assert!(h.subsumes("k3", "k3") && !h.subsumes("k1", "k2"));
    // The reference edge scan agrees on sampled codes (a few: it is quadratic).
    for i in [19_000, 19_990, 3_750, 14_999 - 3] {
        let mut a = h.descendants(&code(i));
        let mut b = reference_closure(&cs, &code(i), false);
        a.sort();
        b.sort();
        assert_eq!(a, b, "below k{i}");
    }
    for i in [17, 15_010] {
        assert_eq!(
            h.ancestors(&code(i)),
            reference_closure(&cs, &code(i), true),
            "above k{i}"
        );
    }
    assert_eq!(h.closure("unknown", Direction::Descendants), ["unknown"]);
}
