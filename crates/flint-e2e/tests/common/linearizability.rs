//! Linearizability checker for single-register histories (Jepsen-style).
//!
//! A test records every read and write of one resource (a "register") done by concurrent
//! clients, with invocation and completion times, and [`check`] decides whether some total
//! order of the operations, consistent with real time, explains every observed read.
//!
//! The search is the Wing & Gong algorithm with Lowe's memoisation, as used by the Porcupine
//! and Knossos checkers: the call/return events are kept in an index-based doubly-linked list,
//! the first pending calls are tentatively linearized, and backtracking uses an explicit stack.
//! Visited configurations (set of linearized operations, register value) are memoised. The set
//! is stored in a canonical compact form instead of a full bitset: "every operation before
//! `end` in call order, except the `holes`", hashed incrementally with Zobrist keys. The holes
//! are the operations still in flight, so a memo entry stays small even for very long
//! histories. A write with an unknown outcome may only be linearized right before a read
//! (otherwise it is equivalent to "never happened"), which keeps timeouts cheap.
//!
//! Only the standard library is used so that the module can be included in any test binary.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

/// Register value: None = the resource does not exist (read answered 404).
pub type Value = Option<u64>;

/// An operation on the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Write of a value (a PUT). Whether it took effect is given by the outcome.
    Write(u64),
    /// Read of the register.
    Read,
}

/// How an operation ended, as seen by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The write was acknowledged (value ignored), or the read returned this value.
    Ok(Value),
    /// The operation definitely did not take effect (e.g. a 4xx on a write). Dropped from the check.
    Failed,
    /// Unknown whether it took effect (timeout, 503, connection reset): it may take effect at any
    /// time after its invocation, or never.
    Unknown,
}

/// One recorded operation of the history.
#[derive(Debug, Clone)]
pub struct Event {
    /// Client id (informational, used in explanations).
    pub process: usize,
    /// Register id; the history is partitioned by key and each key is checked alone.
    pub key: u64,
    /// What the client did.
    pub op: Op,
    /// Monotonic nanoseconds when the request was sent.
    pub invoke_ns: u64,
    /// Monotonic nanoseconds when the answer arrived (ignored for `Outcome::Unknown`).
    pub complete_ns: u64,
    /// How the operation ended.
    pub outcome: Outcome,
}

/// Result of the check.
#[derive(Debug)]
pub enum Verdict {
    /// Every key's sub-history is linearizable; `ops_checked` counts the operations that took
    /// part (failed operations and reads with an unknown outcome excluded).
    Linearizable {
        /// Number of operations that took part in the check, over all keys.
        ops_checked: usize,
    },
    /// Not linearizable: a human-readable explanation naming the key, the operations of the
    /// longest linearizable prefix found, and the operation(s) that could not be placed.
    NotLinearizable {
        /// The first key (in ascending order) whose sub-history is not linearizable.
        key: u64,
        /// Multi-line explanation for the test failure message.
        explanation: String,
    },
    /// The search exceeded the step budget: cannot tell (the test treats this as a failure).
    Unknown {
        /// The first key whose search ran out of steps.
        key: u64,
        /// Number of search steps spent on that key.
        steps: u64,
    },
}

/// Checks the history; `initial` is the register value before the history (usually None).
///
/// Keys are checked independently, in ascending order, each with a budget of `max_steps`
/// search steps. A key proven non-linearizable is reported at once; a key whose search runs
/// out of budget is reported only if no other key is proven non-linearizable.
pub fn check(history: &[Event], initial: Value, max_steps: u64) -> Verdict {
    let mut by_key: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, event) in history.iter().enumerate() {
        by_key.entry(event.key).or_default().push(i);
    }
    let mut ops_checked = 0;
    let mut undecided: Option<(u64, u64)> = None;
    for (&key, indices) in &by_key {
        let (ops, counted) = prepare(history, indices);
        ops_checked += counted;
        match search(&ops, initial, max_steps) {
            SearchResult::Linearizable => {}
            SearchResult::NotLinearizable { prefix, state } => {
                let explanation = explain(key, history, &ops, counted, &prefix, state, initial);
                return Verdict::NotLinearizable { key, explanation };
            }
            SearchResult::OutOfSteps(steps) => {
                undecided.get_or_insert((key, steps));
            }
        }
    }
    match undecided {
        Some((key, steps)) => Verdict::Unknown { key, steps },
        None => Verdict::Linearizable { ops_checked },
    }
}

/// What an operation does to the register, for the search.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Write(u64),
    Read(Value),
}

/// An operation of one key's sub-history, ready for the search.
#[derive(Debug, Clone)]
struct LinOp {
    /// Index of the event in the caller's history.
    event: usize,
    kind: Kind,
    invoke: u64,
    /// `None` = never returned (write with an unknown outcome).
    complete: Option<u64>,
}

/// Keeps the operations of one key that constrain the register, sorted by invocation time.
///
/// Returns them with the number of operations that took part in the check. Writes with an
/// unknown outcome whose value no read observed are counted but not searched: they can
/// always be taken as "never happened" without changing what any read sees.
fn prepare(history: &[Event], indices: &[usize]) -> (Vec<LinOp>, usize) {
    let observed: HashSet<u64> = indices
        .iter()
        .filter_map(|&i| match (&history[i].op, &history[i].outcome) {
            (Op::Read, Outcome::Ok(Some(v))) => Some(*v),
            _ => None,
        })
        .collect();
    let mut ops = Vec::with_capacity(indices.len());
    let mut counted = 0;
    for &i in indices {
        let event = &history[i];
        let finished = Some(event.complete_ns.max(event.invoke_ns));
        let (kind, complete) = match (&event.op, &event.outcome) {
            (_, Outcome::Failed) | (Op::Read, Outcome::Unknown) => continue,
            (Op::Read, Outcome::Ok(v)) => (Kind::Read(*v), finished),
            (Op::Write(v), Outcome::Ok(_)) => (Kind::Write(*v), finished),
            (Op::Write(v), Outcome::Unknown) => {
                if !observed.contains(v) {
                    counted += 1;
                    continue;
                }
                (Kind::Write(*v), None)
            }
        };
        counted += 1;
        ops.push(LinOp {
            event: i,
            kind,
            invoke: event.invoke_ns,
            complete,
        });
    }
    ops.sort_by_key(|op| (op.invoke, op.event));
    (ops, counted)
}

/// Applies an operation to the register: the new value, or `None` if the read is impossible.
fn apply_op(state: Value, kind: Kind) -> Option<Value> {
    match kind {
        Kind::Write(v) => Some(Some(v)),
        Kind::Read(seen) => (seen == state).then_some(state),
    }
}

/// Zobrist key of an operation index (splitmix64 finaliser).
fn zobrist(op: usize) -> u64 {
    let mut z = (op as u64)
        .wrapping_add(1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A search configuration: the set of linearized operations and the register value.
///
/// The set is `{0, 1, .., end - 1} \ holes` (operation indices are in call order), which is
/// canonical: `end - 1` is the largest linearized index and `holes` is sorted.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Config {
    /// XOR of the Zobrist keys of the linearized operations.
    zobrist: u64,
    end: usize,
    holes: Vec<usize>,
    state: Value,
    /// The last linearized operation is a write with an unknown outcome, so the next one
    /// must be a read (see `search`). Part of the memo key because it restricts the moves.
    after_unknown: bool,
}

impl Hash for Config {
    fn hash<H: Hasher>(&self, hasher: &mut H) {
        // Equal configurations have equal sets, hence equal Zobrist sums.
        self.zobrist.hash(hasher);
        self.state.hash(hasher);
        self.after_unknown.hash(hasher);
    }
}

impl Config {
    /// Marks `op` linearized, leaving the register at `state`; returns how to undo it.
    fn push(&mut self, op: usize, state: Value, unknown_write: bool, forced: bool) -> Frame {
        let frame = Frame {
            op,
            forced,
            prev_end: self.end,
            prev_state: self.state,
            prev_after_unknown: self.after_unknown,
        };
        self.zobrist ^= zobrist(op);
        if op >= self.end {
            self.holes.extend(self.end..op);
            self.end = op + 1;
        } else {
            let pos = self
                .holes
                .binary_search(&op)
                .expect("a linearized operation below `end` must be a hole");
            self.holes.remove(pos);
        }
        self.state = state;
        self.after_unknown = unknown_write;
        frame
    }

    /// Undoes the `push` that returned `frame`.
    fn pop(&mut self, frame: &Frame) {
        let op = frame.op;
        self.zobrist ^= zobrist(op);
        if op >= frame.prev_end {
            let keep = self.holes.partition_point(|&h| h < frame.prev_end);
            self.holes.truncate(keep);
            self.end = frame.prev_end;
        } else {
            let pos = self.holes.binary_search(&op).unwrap_or_else(|p| p);
            self.holes.insert(pos, op);
        }
        self.state = frame.prev_state;
        self.after_unknown = frame.prev_after_unknown;
    }
}

/// A tentatively linearized operation on the backtracking stack.
#[derive(Debug, Clone, Copy)]
struct Frame {
    op: usize,
    /// Linearized as the only move of its parent configuration (a read matching the value).
    forced: bool,
    prev_end: usize,
    prev_state: Value,
    prev_after_unknown: bool,
}

/// Outcome of the search for one key.
#[derive(Debug)]
enum SearchResult {
    Linearizable,
    /// Longest linearized prefix found (operation indices in order) and the value after it.
    NotLinearizable {
        prefix: Vec<usize>,
        state: Value,
    },
    OutOfSteps(u64),
}

/// Index-based doubly-linked list of call and return entries in time order.
///
/// Operation `i` has its call entry at node `2 i` and its return entry at node `2 i + 1`;
/// nodes `2 n` and `2 n + 1` are the head and tail sentinels.
struct EntryList {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EntryList {
    fn new(ops: &[LinOp]) -> Self {
        let n = ops.len();
        let (head, tail) = (2 * n, 2 * n + 1);
        // (time, 0 = call / 1 = return, node): calls sort before returns at equal times, so
        // operations whose intervals touch are treated as concurrent.
        let mut entries: Vec<(u64, u8, usize)> = Vec::with_capacity(2 * n);
        for (i, op) in ops.iter().enumerate() {
            entries.push((op.invoke, 0, 2 * i));
            entries.push((op.complete.unwrap_or(u64::MAX), 1, 2 * i + 1));
        }
        entries.sort_unstable();
        let mut next = vec![tail; 2 * n + 2];
        let mut prev = vec![head; 2 * n + 2];
        let mut last = head;
        for &(_, _, node) in &entries {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        next[last] = tail;
        prev[tail] = last;
        Self { next, prev }
    }

    /// Whether a (non-sentinel) node is a call entry.
    fn is_call(node: usize) -> bool {
        node.is_multiple_of(2)
    }

    /// Unlinks the call and return entries of `op`.
    fn lift(&mut self, op: usize) {
        for node in [2 * op, 2 * op + 1] {
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = n;
            self.prev[n] = p;
        }
    }

    /// Relinks the entries of `op`; lifts must be undone in reverse order.
    fn unlift(&mut self, op: usize) {
        for node in [2 * op + 1, 2 * op] {
            let (p, n) = (self.prev[node], self.next[node]);
            self.next[p] = node;
            self.prev[n] = node;
        }
    }
}

/// Wing & Gong search with Lowe's memoisation over one key's operations (sorted by call).
///
/// Two reductions are added, both of which keep at least one linearization if any exists
/// (the brute-force test below cross-checks them):
/// - a pending read that matches the register value is linearized at once, with no
///   alternative tried at that point: it has no real-time predecessor left and does not
///   change the register, so any linearization can be rearranged to start with it;
/// - a write with an unknown outcome must be followed directly by a read: in any
///   linearization, an unknown write followed by a write (or by nothing) can be dropped
///   ("never happened") without changing any read's result. Without this rule a timed-out
///   write would be tried at every position after its invocation, each attempt exploring a
///   doomed subtree.
fn search(ops: &[LinOp], initial: Value, max_steps: u64) -> SearchResult {
    /// What the search loop does next.
    enum Mode {
        /// A new configuration: look for a read that can be linearized at once.
        Fresh,
        /// Try the call entries from this one on.
        Continue(usize),
        /// The current configuration leads nowhere: undo the last linearized operation.
        Backtrack,
    }

    let head = 2 * ops.len();
    let mut search = Search {
        ops,
        list: EntryList::new(ops),
        required: ops.iter().filter(|op| op.complete.is_some()).count(),
        config: Config {
            zobrist: 0,
            end: 0,
            holes: Vec::new(),
            state: initial,
            after_unknown: false,
        },
        cache: HashSet::new(),
        stack: Vec::new(),
        best: Vec::new(),
        best_state: initial,
        agree: 0,
    };
    let mut steps: u64 = 0;
    let mut mode = Mode::Fresh;
    while search.required > 0 {
        if steps >= max_steps {
            return SearchResult::OutOfSteps(steps);
        }
        steps += 1;
        mode = match mode {
            Mode::Fresh => {
                let state = search.config.state;
                let mut entry = search.list.next[head];
                // Call entries come first; the first return entry ends the pending calls.
                // While an operation that returned is pending, one is found before the tail.
                while EntryList::is_call(entry)
                    && !matches!(ops[entry / 2].kind, Kind::Read(v) if v == state)
                {
                    entry = search.list.next[entry];
                }
                debug_assert!(entry < head, "walked off the entry list");
                if !EntryList::is_call(entry) {
                    Mode::Continue(search.list.next[head])
                } else if search.try_push(entry / 2, true) {
                    Mode::Fresh
                } else {
                    Mode::Backtrack
                }
            }
            Mode::Continue(entry) if !EntryList::is_call(entry) => Mode::Backtrack,
            Mode::Continue(entry) => {
                if search.try_push(entry / 2, false) {
                    Mode::Fresh
                } else {
                    Mode::Continue(search.list.next[entry])
                }
            }
            Mode::Backtrack => match search.pop() {
                None => {
                    return SearchResult::NotLinearizable {
                        prefix: search.best,
                        state: search.best_state,
                    };
                }
                // A forced read was the only move of its parent configuration.
                Some(frame) if frame.forced => Mode::Backtrack,
                Some(frame) => Mode::Continue(search.list.next[2 * frame.op]),
            },
        };
    }
    SearchResult::Linearizable
}

/// State of the search over one key's operations.
struct Search<'a> {
    ops: &'a [LinOp],
    list: EntryList,
    /// Operations still to linearize that returned (unknown writes never have to be).
    required: usize,
    config: Config,
    /// Configurations already reached; none of them leads to a full linearization.
    cache: HashSet<Config>,
    stack: Vec<Frame>,
    /// Longest linearized prefix seen and the register value after it.
    best: Vec<usize>,
    best_state: Value,
    /// Length of the common prefix of `best` and `stack`.
    agree: usize,
}

impl Search<'_> {
    /// Linearizes `op` next if the model allows it and the configuration is new.
    fn try_push(&mut self, op: usize, forced: bool) -> bool {
        let kind = self.ops[op].kind;
        let unknown_write = self.ops[op].complete.is_none();
        if self.config.after_unknown && matches!(kind, Kind::Write(_)) {
            return false;
        }
        let Some(state) = apply_op(self.config.state, kind) else {
            return false;
        };
        let frame = self.config.push(op, state, unknown_write, forced);
        if self.cache.contains(&self.config) {
            // Already explored from this configuration, without success.
            self.config.pop(&frame);
            return false;
        }
        self.cache.insert(self.config.clone());
        self.stack.push(frame);
        self.list.lift(op);
        if !unknown_write {
            self.required -= 1;
        }
        let depth = self.stack.len();
        if self.agree + 1 == depth && self.best.get(depth - 1) == Some(&op) {
            self.agree = depth;
        }
        if depth > self.best.len() {
            self.best.truncate(self.agree);
            let more = self.stack[self.agree..].iter().map(|f| f.op);
            self.best.extend(more);
            self.agree = depth;
            self.best_state = state;
        }
        true
    }

    /// Undoes the last linearized operation, if any.
    fn pop(&mut self) -> Option<Frame> {
        let frame = self.stack.pop()?;
        self.agree = self.agree.min(self.stack.len());
        self.config.pop(&frame);
        self.list.unlift(frame.op);
        if self.ops[frame.op].complete.is_some() {
            self.required += 1;
        }
        Some(frame)
    }
}

/// Formats a register value.
fn show(value: Value) -> String {
    match value {
        Some(v) => v.to_string(),
        None => "none".to_string(),
    }
}

/// Formats one event of the history, with its index.
fn describe(history: &[Event], index: usize) -> String {
    let e = &history[index];
    let op = match e.op {
        Op::Write(v) => format!("write({v})"),
        Op::Read => "read".to_string(),
    };
    let (p, t0, t1) = (e.process, e.invoke_ns, e.complete_ns);
    match (&e.op, &e.outcome) {
        (Op::Read, Outcome::Ok(v)) => format!("#{index} p{p} {op} [{t0}, {t1}] -> {}", show(*v)),
        (Op::Write(_), Outcome::Ok(_)) => format!("#{index} p{p} {op} [{t0}, {t1}] ok"),
        (_, Outcome::Failed) => format!("#{index} p{p} {op} [{t0}, {t1}] failed"),
        (_, Outcome::Unknown) => format!("#{index} p{p} {op} [{t0}, ?) unknown"),
    }
}

/// Builds the explanation of a failed search from the longest linearized prefix.
fn explain(
    key: u64,
    history: &[Event],
    ops: &[LinOp],
    counted: usize,
    prefix: &[usize],
    state: Value,
    initial: Value,
) -> String {
    const SHOWN: usize = 40;
    let mut lines = vec![
        format!("key {key}: history is not linearizable ({counted} operations checked)"),
        format!(
            "longest linearizable prefix found: {} operation(s) from initial value {}, \
             leaving the register at {}:",
            prefix.len(),
            show(initial),
            show(state)
        ),
    ];
    let skip = prefix.len().saturating_sub(SHOWN);
    if skip > 0 {
        lines.push(format!("  ... {skip} earlier operation(s) omitted"));
    }
    for (pos, &op) in prefix.iter().enumerate().skip(skip) {
        lines.push(format!(
            "  {:>6}. {}",
            pos + 1,
            describe(history, ops[op].event)
        ));
    }
    let mut placed = vec![false; ops.len()];
    for &op in prefix {
        placed[op] = true;
    }
    let deadline = (0..ops.len())
        .filter(|&op| !placed[op])
        .filter_map(|op| ops[op].complete.map(|t| (t, op)))
        .min();
    if let Some((t, due)) = deadline {
        lines.push(format!(
            "cannot place {} (it returned at {t}, so it must take effect by then); \
             none of the operations pending at that point can come next:",
            describe(history, ops[due].event)
        ));
        let pending: Vec<usize> = (0..ops.len())
            .filter(|&op| !placed[op] && ops[op].invoke <= t)
            .collect();
        for &op in pending.iter().take(SHOWN) {
            let reason = match ops[op].kind {
                Kind::Read(seen) if seen != state => {
                    format!("read {} but the register holds {}", show(seen), show(state))
                }
                _ => "could take effect here, but nothing consistent can follow it".to_string(),
            };
            lines.push(format!(
                "  - {}: {reason}",
                describe(history, ops[op].event)
            ));
        }
        if pending.len() > SHOWN {
            lines.push(format!("  ... {} more", pending.len() - SHOWN));
        }
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    const BUDGET: u64 = 10_000_000;
    /// Step budget for the 2,000-operation random histories (about 500 steps per operation;
    /// they need about 25 when linearizable and about 120 to refute a corrupted read).
    const RANDOM_BUDGET: u64 = 1_000_000;

    fn event(key: u64, op: Op, invoke_ns: u64, complete_ns: u64, outcome: Outcome) -> Event {
        Event {
            process: 0,
            key,
            op,
            invoke_ns,
            complete_ns,
            outcome,
        }
    }

    fn write(v: u64, invoke: u64, complete: u64) -> Event {
        event(0, Op::Write(v), invoke, complete, Outcome::Ok(None))
    }

    fn read(v: Value, invoke: u64, complete: u64) -> Event {
        event(0, Op::Read, invoke, complete, Outcome::Ok(v))
    }

    fn on_key(key: u64, mut e: Event) -> Event {
        e.key = key;
        e
    }

    fn assert_linearizable(history: &[Event]) -> usize {
        match check(history, None, BUDGET) {
            Verdict::Linearizable { ops_checked } => ops_checked,
            other => panic!("expected linearizable, got {other:?}"),
        }
    }

    /// Asserts a non-linearizable verdict and returns (key, explanation).
    fn assert_not_linearizable(history: &[Event]) -> (u64, String) {
        match check(history, None, BUDGET) {
            Verdict::NotLinearizable { key, explanation } => {
                assert!(explanation.contains(&format!("key {key}")), "{explanation}");
                (key, explanation)
            }
            other => panic!("expected not linearizable, got {other:?}"),
        }
    }

    #[test]
    fn empty_history_is_linearizable() {
        assert_eq!(assert_linearizable(&[]), 0);
    }

    #[test]
    fn sequential_write_then_read_is_linearizable() {
        let h = [write(1, 0, 10), read(Some(1), 20, 30)];
        assert_eq!(assert_linearizable(&h), 2);
    }

    #[test]
    fn stale_read_after_completed_write_is_not_linearizable() {
        let h = [write(1, 0, 10), write(2, 20, 30), read(Some(1), 40, 50)];
        let (key, explanation) = assert_not_linearizable(&h);
        assert_eq!(key, 0);
        // The prefix is both writes; the read of 1 is the operation that cannot be placed.
        assert!(explanation.contains("2 operation(s)"), "{explanation}");
        assert!(explanation.contains("cannot place #2 "), "{explanation}");
        assert!(
            explanation.contains("read 1 but the register holds 2"),
            "{explanation}"
        );
        // A read of the initial value after the first write completed is stale too.
        assert_not_linearizable(&[write(1, 0, 10), read(None, 20, 30)]);
    }

    #[test]
    fn concurrent_read_may_see_old_or_new_value() {
        assert_linearizable(&[write(1, 0, 100), read(None, 10, 20)]);
        assert_linearizable(&[write(1, 0, 100), read(Some(1), 10, 20)]);
        // Read invoked before the write, returning after it was invoked.
        assert_linearizable(&[read(Some(1), 0, 50), write(1, 40, 100)]);
        assert_linearizable(&[read(None, 0, 50), write(1, 40, 100)]);
    }

    #[test]
    fn touching_intervals_are_concurrent() {
        // The read is invoked exactly when the write completes: either order is allowed.
        assert_linearizable(&[write(1, 0, 10), read(None, 10, 20)]);
        assert_not_linearizable(&[write(1, 0, 10), read(None, 11, 20)]);
    }

    #[test]
    fn new_then_old_value_is_not_linearizable() {
        let h = [write(1, 0, 100), read(Some(1), 10, 20), read(None, 30, 40)];
        assert_not_linearizable(&h);
        // Overlapping reads may observe the values in either order.
        assert_linearizable(&[write(1, 0, 100), read(Some(1), 10, 40), read(None, 30, 50)]);
    }

    #[test]
    fn read_of_never_written_value_is_not_linearizable() {
        let h = [write(1, 0, 10), read(Some(7), 5, 30), write(2, 20, 40)];
        let (_, explanation) = assert_not_linearizable(&h);
        assert!(
            explanation.contains("#1 p0 read [5, 30] -> 7"),
            "{explanation}"
        );
    }

    #[test]
    fn unknown_write_read_later_is_linearizable() {
        let h = [
            event(0, Op::Write(5), 0, 10, Outcome::Unknown),
            read(Some(5), 1_000, 1_010),
            read(Some(5), 2_000, 2_010),
        ];
        assert_eq!(assert_linearizable(&h), 3);
        // An unknown write may also never take effect.
        let h = [
            event(0, Op::Write(5), 0, 10, Outcome::Unknown),
            read(None, 1_000, 1_010),
        ];
        assert_linearizable(&h);
        // It may take effect long after the client gave up, but then stays in effect.
        let h = [
            event(0, Op::Write(5), 0, 10, Outcome::Unknown),
            read(None, 1_000, 1_010),
            read(Some(5), 2_000, 2_010),
        ];
        assert_linearizable(&h);
        let h = [
            event(0, Op::Write(5), 0, 10, Outcome::Unknown),
            read(Some(5), 1_000, 1_010),
            read(None, 2_000, 2_010),
        ];
        assert_not_linearizable(&h);
    }

    #[test]
    fn unknown_write_read_before_its_invocation_is_not_linearizable() {
        let h = [
            read(Some(5), 0, 10),
            event(0, Op::Write(5), 20, 30, Outcome::Unknown),
        ];
        assert_not_linearizable(&h);
    }

    #[test]
    fn failed_write_read_is_not_linearizable() {
        let h = [
            event(0, Op::Write(5), 0, 10, Outcome::Failed),
            read(Some(5), 20, 30),
        ];
        assert_not_linearizable(&h);
        // Failed operations are dropped and unknown reads constrain nothing.
        let h = [
            event(0, Op::Write(5), 0, 10, Outcome::Failed),
            event(0, Op::Read, 0, 10, Outcome::Unknown),
            read(None, 20, 30),
        ];
        assert_eq!(assert_linearizable(&h), 1);
    }

    #[test]
    fn write_outcome_value_is_ignored() {
        let h = [
            event(0, Op::Write(1), 0, 10, Outcome::Ok(Some(99))),
            read(Some(1), 20, 30),
        ];
        assert_linearizable(&h);
    }

    #[test]
    fn initial_value_is_used() {
        assert!(matches!(
            check(&[read(Some(3), 0, 10)], Some(3), BUDGET),
            Verdict::Linearizable { ops_checked: 1 }
        ));
        assert!(matches!(
            check(&[read(None, 0, 10)], Some(3), BUDGET),
            Verdict::NotLinearizable { key: 0, .. }
        ));
    }

    #[test]
    fn only_the_broken_key_is_reported() {
        let h = [
            on_key(1, write(1, 0, 10)),
            on_key(2, write(1, 0, 10)),
            on_key(3, write(1, 0, 10)),
            on_key(1, read(Some(1), 20, 30)),
            // Key 2 sees the old value after the write completed.
            on_key(2, read(None, 20, 30)),
            on_key(3, read(Some(1), 20, 30)),
            // Key 3's value being read on key 1 would be fine: keys are separate registers.
            on_key(1, write(2, 40, 50)),
            on_key(3, read(Some(1), 40, 50)),
        ];
        let (key, explanation) = assert_not_linearizable(&h);
        assert_eq!(key, 2, "{explanation}");
        assert!(explanation.contains("#4 "), "{explanation}");
        let fixed: Vec<Event> = h.iter().filter(|e| e.key != 2).cloned().collect();
        assert_eq!(assert_linearizable(&fixed), 6);
    }

    #[test]
    fn exhausted_step_budget_yields_unknown() {
        let h = [write(1, 0, 10), read(Some(1), 20, 30), write(2, 40, 50)];
        for budget in [0, 1, 2] {
            match check(&h, None, budget) {
                Verdict::Unknown { key, steps } => {
                    assert_eq!(key, 0);
                    assert_eq!(steps, budget);
                }
                other => panic!("expected unknown, got {other:?}"),
            }
        }
        assert!(matches!(
            check(&h, None, 100),
            Verdict::Linearizable { ops_checked: 3 }
        ));
        // A key proven broken is reported even if another key ran out of budget.
        let mut h: Vec<Event> = (0..20)
            .flat_map(|i| {
                [
                    write(i, i * 100, i * 100 + 10),
                    read(Some(i), i * 100 + 20, i * 100 + 30),
                ]
            })
            .collect();
        assert!(matches!(
            check(&h, None, 10),
            Verdict::Unknown { key: 0, steps: 10 }
        ));
        h.push(on_key(9, write(1, 0, 10)));
        h.push(on_key(9, read(None, 20, 30)));
        match check(&h, None, 10) {
            Verdict::NotLinearizable { key, .. } => assert_eq!(key, 9),
            other => panic!("expected key 9 not linearizable, got {other:?}"),
        }
    }

    #[test]
    fn many_unknown_writes_stay_tractable() {
        // Timed-out writes whose values are never read are irrelevant; those that are read
        // stay pending forever and must not blow up the search.
        let mut h = Vec::new();
        for i in 0..500u64 {
            let t = i * 100;
            h.push(event(0, Op::Write(i), t, t + 10, Outcome::Unknown));
            if i % 5 == 0 {
                h.push(read(Some(i), t + 50, t + 60));
            }
        }
        let start = Instant::now();
        assert_eq!(assert_linearizable(&h), 600);
        println!("600 ops with 500 unknown writes: {:?}", start.elapsed());
    }

    /// Tiny deterministic PRNG (xorshift64).
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Exhaustive reference checker for tiny single-key histories: tries every order.
    fn brute_force(history: &[Event], initial: Value) -> bool {
        // (write value or None for a read, read result, invoke, complete or None = open)
        type Brute = (Option<u64>, Value, u64, Option<u64>);
        fn place(ops: &[Brute], placed: &mut [bool], state: Value) -> bool {
            let done = (0..ops.len()).all(|i| placed[i] || ops[i].3.is_none());
            if done {
                return true;
            }
            for i in 0..ops.len() {
                // Every operation that returned before `i` was invoked must come first.
                let blocked =
                    (0..ops.len()).any(|j| !placed[j] && ops[j].3.is_some_and(|c| c < ops[i].2));
                if placed[i] || blocked {
                    continue;
                }
                let next = match ops[i].0 {
                    Some(v) => Some(v),
                    None if ops[i].1 == state => state,
                    None => continue,
                };
                placed[i] = true;
                if place(ops, placed, next) {
                    return true;
                }
                placed[i] = false;
            }
            false
        }
        let ops: Vec<Brute> = history
            .iter()
            .filter_map(|e| match (&e.op, &e.outcome) {
                (Op::Write(v), Outcome::Ok(_)) => {
                    Some((Some(*v), None, e.invoke_ns, Some(e.complete_ns)))
                }
                (Op::Write(v), Outcome::Unknown) => Some((Some(*v), None, e.invoke_ns, None)),
                (Op::Read, Outcome::Ok(seen)) => {
                    Some((None, *seen, e.invoke_ns, Some(e.complete_ns)))
                }
                _ => None,
            })
            .collect();
        place(&ops, &mut vec![false; ops.len()], initial)
    }

    #[test]
    fn agrees_with_brute_force_on_small_histories() {
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        let (mut yes, mut no) = (0, 0);
        for round in 0..20_000u32 {
            let len = 1 + usize::try_from(rng.below(7)).expect("small");
            let history: Vec<Event> = (0..len)
                .map(|_| {
                    let invoke = rng.below(20);
                    let complete = invoke + rng.below(8);
                    // Small value domain: duplicate values and impossible reads are common.
                    let value = rng.below(3);
                    let (op, outcome) = match rng.below(10) {
                        0..=3 => (Op::Write(value), Outcome::Ok(None)),
                        4 => (Op::Write(value), Outcome::Unknown),
                        5 => (Op::Write(value), Outcome::Failed),
                        6 => (Op::Read, Outcome::Unknown),
                        _ => (Op::Read, Outcome::Ok(value.checked_sub(1))),
                    };
                    event(0, op, invoke, complete, outcome)
                })
                .collect();
            let initial = if round.is_multiple_of(2) {
                None
            } else {
                Some(0)
            };
            let expected = brute_force(&history, initial);
            let verdict = check(&history, initial, BUDGET);
            match (&verdict, expected) {
                (Verdict::Linearizable { .. }, true) => yes += 1,
                (Verdict::NotLinearizable { .. }, false) => no += 1,
                _ => {
                    panic!("brute force says {expected}, checker says {verdict:?} for {history:#?}")
                }
            }
        }
        println!("{yes} linearizable, {no} not linearizable");
        assert!(yes > 2_000 && no > 2_000, "{yes} / {no}");
    }

    /// Simulates a truly linearizable register shared by `procs` sequential clients.
    ///
    /// Every operation takes effect at a random point of its interval (an unknown write at a
    /// random time after its invocation, or never; a failed write never); read results are
    /// computed by applying the operations in that order. Written values are unique.
    fn simulate(seed: u64, procs: usize, ops_per_proc: usize, keys: u64) -> Vec<Event> {
        let mut rng = XorShift(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut planned: Vec<(Event, Option<u64>)> = Vec::new();
        let mut next_value = 1;
        for process in 0..procs {
            let mut t = rng.below(20);
            for _ in 0..ops_per_proc {
                let invoke = t + rng.below(30);
                let duration = 1 + rng.below(150);
                let complete = invoke + duration;
                let point = invoke + rng.below(duration + 1);
                let key = rng.below(keys);
                let dice = rng.below(100);
                let (op, outcome, effect) = if dice < 50 {
                    let (outcome, effect) = match dice {
                        0..=2 => (Outcome::Failed, None),
                        3..=4 => (Outcome::Unknown, Some(invoke + rng.below(1_000))),
                        5 => (Outcome::Unknown, None),
                        _ => (Outcome::Ok(None), Some(point)),
                    };
                    next_value += 1;
                    (Op::Write(next_value), outcome, effect)
                } else if dice < 53 {
                    (Op::Read, Outcome::Unknown, None)
                } else {
                    (Op::Read, Outcome::Ok(None), Some(point))
                };
                let e = Event {
                    process,
                    key,
                    op,
                    invoke_ns: invoke,
                    complete_ns: complete,
                    outcome,
                };
                planned.push((e, effect));
                t = complete;
            }
        }
        let mut order: Vec<(u64, usize)> = planned
            .iter()
            .enumerate()
            .filter_map(|(i, (_, effect))| effect.map(|at| (at, i)))
            .collect();
        order.sort_unstable();
        let mut registers: BTreeMap<u64, Value> = BTreeMap::new();
        for (_, i) in order {
            let e = &mut planned[i].0;
            let register = registers.entry(e.key).or_insert(None);
            match e.op {
                Op::Write(v) => *register = Some(v),
                Op::Read => e.outcome = Outcome::Ok(*register),
            }
        }
        let mut history: Vec<Event> = planned.into_iter().map(|(e, _)| e).collect();
        history.sort_by_key(|e| e.invoke_ns);
        history
    }

    fn expected_ops(history: &[Event]) -> usize {
        history
            .iter()
            .filter(|e| {
                !matches!(
                    (&e.op, &e.outcome),
                    (_, Outcome::Failed) | (Op::Read, Outcome::Unknown)
                )
            })
            .count()
    }

    fn timed_check(history: &[Event], budget: u64) -> Verdict {
        let start = Instant::now();
        let verdict = check(history, None, budget);
        println!(
            "checked {} ops in {:?}: {}",
            history.len(),
            start.elapsed(),
            match &verdict {
                Verdict::Linearizable { .. } => "linearizable",
                Verdict::NotLinearizable { .. } => "not linearizable",
                Verdict::Unknown { .. } => "unknown",
            }
        );
        verdict
    }

    #[test]
    fn random_linearizable_histories_pass() {
        for seed in 1..=5 {
            let h = simulate(seed, 8, 250, 1);
            assert_eq!(h.len(), 2_000);
            match timed_check(&h, RANDOM_BUDGET) {
                Verdict::Linearizable { ops_checked } => {
                    assert_eq!(ops_checked, expected_ops(&h));
                }
                other => panic!("seed {seed}: expected linearizable, got {other:?}"),
            }
        }
    }

    #[test]
    fn random_multi_key_history_passes() {
        let h = simulate(42, 8, 250, 4);
        match timed_check(&h, RANDOM_BUDGET) {
            Verdict::Linearizable { ops_checked } => assert_eq!(ops_checked, expected_ops(&h)),
            other => panic!("expected linearizable, got {other:?}"),
        }
    }

    #[test]
    fn large_random_history_passes_without_recursion() {
        let h = simulate(7, 8, 4_000, 1);
        assert!(matches!(
            timed_check(&h, BUDGET),
            Verdict::Linearizable { .. }
        ));
    }

    #[test]
    fn random_history_with_never_written_value_fails() {
        for seed in 1..=5 {
            let mut h = simulate(seed, 8, 250, 1);
            let victim = (h.len() * 2 / 3..h.len())
                .find(|&i| h[i].op == Op::Read && matches!(h[i].outcome, Outcome::Ok(_)))
                .expect("a read to corrupt");
            h[victim].outcome = Outcome::Ok(Some(u64::MAX));
            match timed_check(&h, RANDOM_BUDGET) {
                Verdict::NotLinearizable { key, explanation } => {
                    assert_eq!(key, 0);
                    let needle = format!("#{victim} ");
                    assert!(explanation.contains(&needle), "{explanation}");
                }
                other => panic!("seed {seed}: expected not linearizable, got {other:?}"),
            }
        }
    }

    #[test]
    fn random_history_with_stale_read_fails() {
        for seed in 1..=5 {
            let mut h = simulate(seed, 8, 250, 1);
            let acked = |e: &Event| matches!((&e.op, &e.outcome), (Op::Write(_), Outcome::Ok(_)));
            // A read R, and acknowledged writes W1 and W2 with W1 before W2 before R in real
            // time: R cannot return W1's (unique) value.
            let w1 = h.iter().position(acked).expect("an acknowledged write");
            let (victim, stale) = (h.len() / 2..h.len())
                .filter(|&r| h[r].op == Op::Read && matches!(h[r].outcome, Outcome::Ok(_)))
                .find_map(|r| {
                    h.iter().find(|w2| {
                        acked(w2)
                            && w2.invoke_ns > h[w1].complete_ns
                            && w2.complete_ns < h[r].invoke_ns
                    })?;
                    match h[w1].op {
                        Op::Write(v) => Some((r, v)),
                        Op::Read => None,
                    }
                })
                .expect("a read to corrupt");
            h[victim].outcome = Outcome::Ok(Some(stale));
            match timed_check(&h, RANDOM_BUDGET) {
                Verdict::NotLinearizable { key, explanation } => {
                    assert_eq!(key, 0);
                    if seed == 1 {
                        println!("{explanation}");
                    }
                }
                other => panic!("seed {seed}: expected not linearizable, got {other:?}"),
            }
        }
    }
}
