//! The synchronization's decisions, as pure logic (no MPI): the collective
//! synchronization of the patent (Fig. 7, the global superstep) and when the
//! point-to-point synchronization (Fig. 9) may start.
//!
//! The initiator reads every process's window: for each communicator the
//! process is in, its global id and superstep (collectives entered), plus
//! where the process is ([`Status`]). From the first read it takes the
//! **target** of each communicator, the largest superstep any member has
//! reached. Each process then runs on, asynchronously, and enters a
//! collective only while its superstep stays within the target; at a
//! collective beyond it, it stops. A process already inside a collective
//! is met by the others, because they run up to its superstep.
//!
//! Stopping at collective entries alone can deadlock through
//! point-to-point dependencies across communicators (Q stopped before a
//! collective on `c'`, P blocked receiving what Q sends only after it, R
//! inside a collective on `c` waiting for P). So the initiator keeps
//! reading: when nobody can move and targets are not met, it **releases**
//! stopped processes by raising the targets of their communicators, the
//! ones others depend on first. Once every member of every communicator
//! stands exactly at the target, the state is consistent: no collective is
//! half-entered and none will be, and the point-to-point synchronization
//! and drain may start ([`Decision::Freeze`]).
//!
//! `tests::model_check` explores every interleaving of small programs
//! (collectives on overlapping communicators, sends and receives) with the
//! synchronization started at every reachable point, with synchronizing and
//! non-synchronizing collectives: it always ends frozen, consistent, and
//! nobody ever passes a target.
use crate::core::state::Status;
use std::collections::BTreeMap;

/// A communicator's global id: the same in every member (see `core::comms::gid_of`).
pub type Gid = u64;

/// Targets: per communicator, the superstep every member must reach.
pub type Targets = BTreeMap<Gid, u64>;

/// One process, as the initiator read it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct View {
    pub status: Option<Status>,
    /// With `Status::Stopped`: the communicator it stopped in front of.
    pub stop_gid: Option<Gid>,
    /// With `Status::Blocked`: the world rank it waits on (-1: any).
    pub blocked_world: i32,
    /// Inside a collective (entered, not yet returned).
    pub in_collective: bool,
    pub calls: u64,
    /// (communicator, superstep) for every synchronized communicator.
    pub steps: Vec<(Gid, u64)>,
    /// Inside (or stopped at the entry of) a group collective
    /// (`MPI_Comm_create_group`): its id and its members, as world ranks.
    pub group: Option<(Gid, Vec<u32>)>,
}

impl View {
    fn status(&self) -> Status {
        self.status.unwrap_or(Status::Running)
    }
    /// Whether every superstep stands at its target.
    pub fn at_targets(&self, t: &Targets) -> bool {
        self.steps
            .iter()
            .all(|(g, s)| *s == t.get(g).copied().unwrap_or(0))
    }
    /// Whether some superstep is below its target.
    pub fn behind(&self, t: &Targets) -> bool {
        self.steps
            .iter()
            .any(|(g, s)| *s < t.get(g).copied().unwrap_or(0))
    }
    fn step_of(&self, g: Gid) -> Option<u64> {
        self.steps.iter().find(|(x, _)| *x == g).map(|(_, s)| *s)
    }
    /// Whether the process can only be moving because something else
    /// moves first (so an unchanged reading means it waits).
    fn waiting(&self) -> bool {
        match self.status() {
            Status::Running => self.in_collective,
            _ => true,
        }
    }
}

/// The world ranks whose bits are set in a bitmap (bit `r % 64` of word
/// `r / 64` for rank `r`).
pub fn bitmap_ranks(words: &[u64]) -> Vec<u32> {
    words
        .iter()
        .enumerate()
        .flat_map(|(w, &bits)| {
            (0..64u32)
                .filter(move |b| bits & (1u64 << b) != 0)
                .map(move |b| w as u32 * 64 + b)
        })
        .collect()
}

/// A group collective is collective over its group only: a member that
/// has not made its first one yet has no superstep there, and would seem
/// not to be concerned. So, while a process is inside one, each of its
/// members without that id is counted at superstep 0 there: the group's
/// target then holds the whole job until every member came (and the
/// release rules move a member stopped elsewhere on the way).
pub fn count_group_members(views: &mut [View]) {
    let groups: Vec<(Gid, Vec<u32>)> = views.iter().filter_map(|v| v.group.clone()).collect();
    for (gid, members) in groups {
        for &m in &members {
            if let Some(v) = views.get_mut(m as usize) {
                if v.step_of(gid).is_none() {
                    v.steps.push((gid, 0));
                }
            }
        }
    }
}

/// The targets of a first reading: the largest superstep of each
/// communicator over its members.
pub fn initial_targets(views: &[View]) -> Targets {
    let mut t = Targets::new();
    absorb(&mut t, views);
    t
}

/// Raises targets to any superstep read above them (communicators made
/// after the first reading appear here). Returns whether one changed.
pub fn absorb(t: &mut Targets, views: &[View]) -> bool {
    let mut changed = false;
    for v in views {
        for (g, s) in &v.steps {
            let e = t.entry(*g).or_insert(0);
            if *s > *e {
                *e = *s;
                changed = true;
            }
        }
    }
    changed
}

/// What the initiator does after a reading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every member of every communicator stands at its target: wake the
    /// blocked, stop everybody, drain (the point-to-point synchronization).
    Freeze,
    /// Keep reading.
    Wait,
    /// New targets (raised); send them.
    Release(Targets),
}

/// Whether a reading shows nobody able to move by itself: every process
/// waits (stopped, blocked, finalizing or inside a collective) and nothing
/// changed since the previous reading.
pub fn stuck(prev: &[View], now: &[View]) -> bool {
    prev.len() == now.len() && prev == now && now.iter().all(View::waiting)
}

/// Decides from a reading. `stuck` says that nothing moved since the
/// previous reading (see [`stuck`]).
pub fn decide(views: &[View], targets: &Targets, stuck: bool) -> Decision {
    let mut t = targets.clone();
    if absorb(&mut t, views) {
        return Decision::Release(t);
    }
    if views.iter().all(|v| v.at_targets(&t)) {
        return Decision::Freeze;
    }
    if !stuck {
        return Decision::Wait;
    }
    let raise = |t: &mut Targets, v: &View| -> bool {
        match (v.status(), v.stop_gid) {
            (Status::Stopped, Some(g)) => {
                let s = v.step_of(g).unwrap_or(0);
                let e = t.entry(g).or_insert(0);
                if *e <= s {
                    *e = s + 1;
                    return true;
                }
                false
            }
            _ => false,
        }
    };
    // 1. A stopped process that is behind elsewhere must pass the
    //    collective it stopped at to catch up.
    let mut changed = false;
    for v in views.iter().filter(|v| v.behind(targets)) {
        changed |= raise(&mut t, v);
    }
    // 2. A process that is behind and blocked on a stopped one.
    if !changed {
        for v in views.iter().filter(|v| v.behind(targets)) {
            if v.status() != Status::Blocked {
                continue;
            }
            match v.blocked_world {
                w if w >= 0 => {
                    if let Some(peer) = views.get(w as usize) {
                        changed |= raise(&mut t, peer);
                    }
                }
                _ => {}
            }
        }
    }
    // 3. Anybody stopped.
    if !changed {
        for v in views {
            changed |= raise(&mut t, v);
        }
    }
    if changed {
        Decision::Release(t)
    } else {
        Decision::Wait
    }
}

/// The rule a process applies at the entry of its `k`-th collective on a
/// communicator while a synchronization runs.
#[inline]
pub fn may_enter(k: u64, target: u64) -> bool {
    k <= target
}

/// The leader's own rule on top of [`may_enter`]: it is the one process
/// that raises targets, and inside a blocking collective it cannot, so a
/// member that must pass a collective elsewhere before it comes to this
/// one would ask in vain (and the leader would wait inside for it
/// forever). So the leader (world rank `me`) enters its `k`-th collective
/// on `gid` only once every other member has entered it (its superstep
/// there reads `k` or more): the collective then completes without
/// anybody else doing anything. It also enters when a member waits on the
/// leader itself in a point-to-point operation (`blocked_world` is `me`,
/// or any source): what that member waits for may come after this
/// collective (a nonblocking collective, or a program that relies on a
/// collective not synchronizing), so waiting for it would never end.
pub fn leader_may_enter(views: &[View], me: usize, gid: Gid, k: u64) -> bool {
    let others = || {
        views
            .iter()
            .enumerate()
            .filter(move |(i, v)| *i != me && v.step_of(gid).is_some())
            .map(|(_, v)| v)
    };
    let waits_on_me = |v: &View| {
        v.status() == Status::Blocked && (v.blocked_world < 0 || v.blocked_world as usize == me)
    };
    others().all(|v| v.step_of(gid).is_some_and(|s| s >= k)) || others().any(waits_on_me)
}

/// [`leader_may_enter`] when the collective is a group collective the
/// leader stands at, whose `members` it knows itself: every other member
/// must have entered it (one with no count there has not), whatever the
/// reading shows; a reading taken before the leader came to it need not
/// list the members at all, and an empty list of others would let the
/// leader in alone, where it would wait for them and never lead again.
pub fn leader_may_enter_group(
    views: &[View],
    me: usize,
    gid: Gid,
    k: u64,
    members: &[u32],
) -> bool {
    let waits_on_me = |v: &View| {
        v.status() == Status::Blocked && (v.blocked_world < 0 || v.blocked_world as usize == me)
    };
    let others = members.iter().map(|&m| m as usize).filter(|&m| m != me);
    let all_in = others.clone().all(|m| {
        views
            .get(m)
            .and_then(|v| v.step_of(gid))
            .is_some_and(|s| s >= k)
    });
    all_in || others.filter_map(|m| views.get(m)).any(waits_on_me)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashSet, VecDeque};

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    enum Op {
        Coll(usize),
        Send(usize),
        Recv(usize),
    }

    /// Programs made from a global order of events (each collective on a
    /// communicator appended to all its members, each message to its two
    /// ends), so that they are correct MPI programs whether collectives
    /// synchronize or not.
    fn programs(events: &[(bool, usize, usize)], comms: &[Vec<usize>], n: usize) -> Vec<Vec<Op>> {
        let mut p = vec![Vec::new(); n];
        for &(coll, a, b) in events {
            if coll {
                for &m in &comms[a] {
                    p[m].push(Op::Coll(a));
                }
            } else {
                p[a].push(Op::Send(b));
                p[b].push(Op::Recv(a));
            }
        }
        p
    }

    #[derive(Clone, PartialEq, Eq, Hash, Debug)]
    struct S {
        pc: Vec<usize>,
        inside: Vec<bool>,
        steps: Vec<Vec<u64>>, // [proc][comm]
        msgs: Vec<Vec<u32>>,  // [from][to]
        targets: Vec<u64>,    // per comm (only while synchronizing)
        syncing: bool,
    }

    struct Model<'a> {
        progs: &'a [Vec<Op>],
        comms: &'a [Vec<usize>],
        sync_colls: bool,
        /// Which communicators are group collectives
        /// (`MPI_Comm_create_group`): a member knows one only from its
        /// first entry on, and publishes the members while at it.
        groups: &'a [bool],
    }

    impl Model<'_> {
        fn member(&self, c: usize, p: usize) -> bool {
            self.comms[c].contains(&p)
        }
        /// The moves of process p (None: it cannot move).
        fn step(&self, s: &S, p: usize) -> Option<S> {
            let mut t = s.clone();
            if s.inside[p] {
                let Op::Coll(c) = self.progs[p][s.pc[p]] else {
                    unreachable!()
                };
                let k = s.steps[p][c];
                if self.sync_colls && !self.comms[c].iter().all(|&m| s.steps[m][c] >= k) {
                    return None;
                }
                t.inside[p] = false;
                t.pc[p] += 1;
                return Some(t);
            }
            let op = *self.progs[p].get(s.pc[p])?;
            match op {
                Op::Coll(c) => {
                    let k = s.steps[p][c] + 1;
                    if s.syncing && !may_enter(k, s.targets[c]) {
                        return None; // stopped at the entry
                    }
                    t.steps[p][c] = k;
                    t.inside[p] = true;
                }
                Op::Send(q) => {
                    t.msgs[p][q] += 1;
                    t.pc[p] += 1;
                }
                Op::Recv(q) => {
                    if s.msgs[q][p] == 0 {
                        return None;
                    }
                    t.msgs[q][p] -= 1;
                    t.pc[p] += 1;
                }
            }
            Some(t)
        }
        fn views(&self, s: &S) -> Vec<View> {
            let mut views = (0..s.pc.len())
                .map(|p| {
                    let op = self.progs[p].get(s.pc[p]).copied();
                    let (status, stop_gid, blocked_world) = match op {
                        None => (Status::Finalizing, None, -1),
                        Some(_) if s.inside[p] => (Status::Running, None, -1),
                        Some(Op::Coll(c)) if self.step(s, p).is_none() => {
                            (Status::Stopped, Some(c as Gid + 1), -1)
                        }
                        Some(Op::Recv(q)) if s.msgs[q][p] == 0 => (Status::Blocked, None, q as i32),
                        Some(_) => (Status::Running, None, -1),
                    };
                    // The group collective the process is at (inside, or
                    // stopped at its entry, when it has its slot).
                    let at_group = match op {
                        Some(Op::Coll(c)) if self.is_group(c) && stop_gid.is_some() => Some(c),
                        Some(Op::Coll(c)) if self.is_group(c) && s.inside[p] => Some(c),
                        _ => None,
                    };
                    View {
                        status: Some(status),
                        stop_gid,
                        blocked_world,
                        in_collective: s.inside[p],
                        calls: s.pc[p] as u64,
                        steps: (0..self.comms.len())
                            .filter(|&c| self.member(c, p))
                            .filter(|&c| {
                                !self.is_group(c) || s.steps[p][c] > 0 || at_group == Some(c)
                            })
                            .map(|c| (c as Gid + 1, s.steps[p][c]))
                            .collect(),
                        group: at_group.map(|c| {
                            (
                                c as Gid + 1,
                                self.comms[c].iter().map(|&m| m as u32).collect(),
                            )
                        }),
                    }
                })
                .collect::<Vec<View>>();
            count_group_members(&mut views);
            views
        }
        fn is_group(&self, c: usize) -> bool {
            self.groups.get(c).copied().unwrap_or(false)
        }
        fn targets_of(&self, t: &Targets) -> Vec<u64> {
            (0..self.comms.len())
                .map(|c| t.get(&(c as Gid + 1)).copied().unwrap_or(0))
                .collect()
        }
        fn as_targets(&self, s: &S) -> Targets {
            s.targets
                .iter()
                .enumerate()
                .map(|(c, &v)| (c as Gid + 1, v))
                .collect()
        }

        /// Every interleaving of the synchronization started in state `s0`:
        /// returns the number of states explored.
        fn check_sync_from(&self, s0: &S) -> usize {
            let mut s0 = s0.clone();
            s0.syncing = true;
            s0.targets = self.targets_of(&initial_targets(&self.views(&s0)));
            let mut seen = HashSet::new();
            let mut todo = vec![s0];
            while let Some(s) = todo.pop() {
                if !seen.insert(s.clone()) {
                    continue;
                }
                // Nobody ever passes a target.
                for p in 0..s.pc.len() {
                    for c in 0..self.comms.len() {
                        assert!(s.steps[p][c] <= s.targets[c], "passed a target: {s:?}");
                    }
                }
                let views = self.views(&s);
                let moves: Vec<S> = (0..s.pc.len()).filter_map(|p| self.step(&s, p)).collect();
                match decide(&views, &self.as_targets(&s), moves.is_empty()) {
                    Decision::Freeze => {
                        // Consistent: every member at the same superstep;
                        // whoever is inside a collective can finish it.
                        for c in 0..self.comms.len() {
                            let v: HashSet<u64> =
                                self.comms[c].iter().map(|&m| s.steps[m][c]).collect();
                            assert_eq!(v.len(), 1, "inconsistent freeze: {s:?}");
                        }
                        for p in 0..s.pc.len() {
                            if s.inside[p] {
                                let mut t = s.clone();
                                t.syncing = false;
                                assert!(self.step(&t, p).is_some());
                            }
                        }
                        continue;
                    }
                    Decision::Release(t) => {
                        let mut n = s.clone();
                        n.targets = self.targets_of(&t);
                        assert!(n.targets.iter().zip(&s.targets).all(|(a, b)| a >= b));
                        assert_ne!(n.targets, s.targets, "release without a change");
                        todo.push(n);
                    }
                    Decision::Wait => {
                        assert!(
                            !moves.is_empty(),
                            "stuck and not released: {s:?}\n{views:?}"
                        );
                    }
                }
                todo.extend(moves);
            }
            seen.len()
        }

        /// Every state the program reaches without synchronization.
        fn reachable(&self, n: usize) -> Vec<S> {
            let s0 = S {
                pc: vec![0; n],
                inside: vec![false; n],
                steps: vec![vec![0; self.comms.len()]; n],
                msgs: vec![vec![0; n]; n],
                targets: vec![0; self.comms.len()],
                syncing: false,
            };
            let mut seen = HashSet::new();
            let mut q = VecDeque::from([s0]);
            while let Some(s) = q.pop_front() {
                if !seen.insert(s.clone()) {
                    continue;
                }
                for p in 0..n {
                    if let Some(t) = self.step(&s, p) {
                        q.push_back(t);
                    }
                }
            }
            seen.into_iter().collect()
        }
    }

    /// A tiny deterministic generator (tests must not depend on a crate).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, m: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % m as u64) as usize
        }
    }

    /// A short random program: `(collective?, communicator or sender,
    /// receiver)` events of `n` processes over `comms` communicators.
    fn random_events(rng: &mut Rng, n: usize, comms: usize) -> Vec<(bool, usize, usize)> {
        let len = 3 + rng.next(4);
        (0..len)
            .map(|_| {
                if rng.next(2) == 0 {
                    (true, rng.next(comms), 0)
                } else {
                    let a = rng.next(n);
                    let b = (a + 1 + rng.next(n - 1)) % n;
                    (false, a, b)
                }
            })
            .collect()
    }

    impl Model<'_> {
        /// The synchronization started from every reachable state: the
        /// states explored in all.
        fn check_all(&self, n: usize) -> usize {
            self.reachable(n)
                .iter()
                .map(|s| self.check_sync_from(s))
                .sum()
        }
    }

    #[test]
    fn model_check() {
        let layouts: Vec<(usize, Vec<Vec<usize>>)> = vec![
            (2, vec![vec![0, 1]]),
            (3, vec![vec![0, 1, 2], vec![0, 1], vec![1, 2]]),
            (3, vec![vec![0, 1], vec![1, 2], vec![0, 2]]),
            (
                4,
                vec![vec![0, 1, 2, 3], vec![0, 1], vec![2, 3], vec![1, 2]],
            ),
        ];
        let mut rng = Rng(0x5eed_f3e7);
        let mut total = 0;
        let mut programs_checked = 0;
        for (n, comms) in &layouts {
            for _ in 0..60 {
                let events = random_events(&mut rng, *n, comms.len());
                let progs = programs(&events, comms, *n);
                for sync_colls in [true, false] {
                    let m = Model {
                        progs: &progs,
                        comms,
                        sync_colls,
                        groups: &[],
                    };
                    total += m.check_all(*n);
                    programs_checked += 1;
                }
            }
        }
        assert!(
            programs_checked >= 400 && total > 10_000,
            "{programs_checked} programs, {total} states"
        );
    }

    /// Group collectives (`MPI_Comm_create_group`) among communicators and
    /// messages: a member that has not made its first one has no superstep
    /// there, and the synchronization must still never freeze while
    /// another member waits inside for it. Every interleaving, from every
    /// reachable state, as `model_check`.
    #[test]
    fn model_check_group_collectives() {
        // (processes, communicators, which are group collectives)
        let layouts: Vec<(usize, Vec<Vec<usize>>, Vec<bool>)> = vec![
            (2, vec![vec![0, 1]], vec![true]),
            (
                3,
                vec![vec![0, 1, 2], vec![0, 1], vec![1, 2]],
                vec![false, true, true],
            ),
            (
                3,
                vec![vec![0, 1], vec![0, 1, 2], vec![0, 2]],
                vec![true, true, false],
            ),
            (
                4,
                vec![vec![0, 1, 2, 3], vec![0, 1, 2], vec![2, 3], vec![1, 3]],
                vec![false, true, true, true],
            ),
        ];
        let mut rng = Rng(0x9a0c_011e);
        let mut total = 0;
        let mut programs_checked = 0;
        for (n, comms, groups) in &layouts {
            for _ in 0..50 {
                let events = random_events(&mut rng, *n, comms.len());
                let progs = programs(&events, comms, *n);
                // A group collective synchronizes (its members agree on a
                // context id), whatever the MPI does with other collectives.
                let m = Model {
                    progs: &progs,
                    comms,
                    sync_colls: true,
                    groups,
                };
                total += m.check_all(*n);
                programs_checked += 1;
            }
        }
        assert!(
            programs_checked >= 200 && total > 5_000,
            "{programs_checked} programs, {total} states"
        );
    }

    /// The leader at its group collective, with a reading from before it
    /// came there (nobody else has the id): it must not go in alone.
    #[test]
    fn leader_waits_for_its_group() {
        let running = |steps: Vec<(Gid, u64)>| View {
            status: Some(Status::Running),
            steps,
            ..View::default()
        };
        let stale = vec![
            running(vec![(1, 3)]),
            running(vec![(1, 3)]),
            running(vec![(1, 3)]),
        ];
        assert!(
            leader_may_enter(&stale, 0, 9, 1),
            "the rule without members"
        );
        assert!(!leader_may_enter_group(&stale, 0, 9, 1, &[0, 2]));
        let came = vec![
            running(vec![(1, 3)]),
            running(vec![(1, 3)]),
            running(vec![(9, 1)]),
        ];
        assert!(leader_may_enter_group(&came, 0, 9, 1, &[0, 2]));
        let mut waits = stale.clone();
        waits[2].status = Some(Status::Blocked);
        waits[2].blocked_world = 0;
        assert!(leader_may_enter_group(&waits, 0, 9, 1, &[0, 2]));
        waits[2].blocked_world = 1;
        assert!(!leader_may_enter_group(&waits, 0, 9, 1, &[0, 2]));
    }

    /// Without counting the members that have not come yet, the same
    /// synchronization would freeze with a member inside, waiting forever.
    #[test]
    fn group_members_counted() {
        // P=0 inside its first group collective {0, 1}; Q=1 not there yet.
        let mut views = vec![
            View {
                status: Some(Status::Running),
                in_collective: true,
                steps: vec![(1, 0), (7, 1)],
                group: Some((7, vec![0, 1])),
                ..View::default()
            },
            View {
                status: Some(Status::Running),
                steps: vec![(1, 0)],
                ..View::default()
            },
            View {
                status: Some(Status::Running),
                steps: vec![(1, 0)],
                ..View::default()
            },
        ];
        let t = initial_targets(&views);
        assert_eq!(
            decide(&views, &t, false),
            Decision::Freeze,
            "the trap itself"
        );
        count_group_members(&mut views);
        assert_eq!(views[1].steps, vec![(1, 0), (7, 0)]);
        assert_eq!(views[2].steps, vec![(1, 0)], "not a member");
        assert_eq!(decide(&views, &t, false), Decision::Wait);
        assert_eq!(bitmap_ranks(&[0b1010, 1]), vec![1, 3, 64]);
    }

    /// The trap beyond the trap (see the module note): R inside a
    /// collective on c waits for P, P waits for a message Q sends only
    /// after a collective on c' with S, which nobody had entered.
    #[test]
    fn releases_across_communicators() {
        // procs: P=0, Q=1, R=2, S=3; c = {P, R} (gid 1), c' = {Q, S} (gid 2)
        let comms = vec![vec![0, 2], vec![1, 3]];
        let progs = vec![
            vec![Op::Recv(1), Op::Coll(0)],
            vec![Op::Coll(1), Op::Send(0)],
            vec![Op::Coll(0)],
            vec![Op::Coll(1)],
        ];
        let m = Model {
            progs: &progs,
            comms: &comms,
            sync_colls: true,
            groups: &[],
        };
        // R has entered its collective; nobody else has done anything.
        let n = 4;
        let mut s = S {
            pc: vec![0; n],
            inside: vec![false; n],
            steps: vec![vec![0; 2]; n],
            msgs: vec![vec![0; n]; n],
            targets: vec![0; 2],
            syncing: false,
        };
        s.steps[2][0] = 1;
        s.inside[2] = true;
        assert!(m.check_sync_from(&s) > 3);
    }

    #[test]
    fn decisions() {
        let v = |steps: Vec<(Gid, u64)>, status| View {
            status: Some(status),
            steps,
            ..View::default()
        };
        let views = vec![
            v(vec![(1, 3), (2, 1)], Status::Running),
            v(vec![(1, 2)], Status::Running),
        ];
        let t = initial_targets(&views);
        assert_eq!(t.get(&1), Some(&3));
        assert_eq!(decide(&views, &t, false), Decision::Wait);
        let done = vec![
            v(vec![(1, 3), (2, 1)], Status::Running),
            v(vec![(1, 3)], Status::Blocked),
        ];
        assert_eq!(decide(&done, &t, false), Decision::Freeze);
        assert!(!stuck(&views, &views), "running processes are not stuck");
    }

    #[test]
    fn leader_enters_last() {
        // World (gid 1) of 3; the leader is rank 0, in front of its 4th
        // world collective; a sub-communicator (gid 2) holds ranks 1 and 2.
        let v = |steps: Vec<(Gid, u64)>, status, blocked_world| View {
            status: Some(status),
            steps,
            blocked_world,
            ..View::default()
        };
        let leader = v(vec![(1, 3)], Status::Stopped, -1);
        // Ranks 1 and 2 are still in their sub-communicator barrier: the
        // leader must not block in the world collective yet (it could not
        // raise a target they may need next).
        let sub = vec![
            leader.clone(),
            v(vec![(1, 3), (2, 5)], Status::Running, -1),
            v(vec![(1, 3), (2, 5)], Status::Running, -1),
        ];
        assert!(!leader_may_enter(&sub, 0, 1, 4));
        // The leader may enter a collective of a communicator it shares
        // with nobody, and one every other member has entered.
        assert!(leader_may_enter(&sub, 0, 7, 1));
        let inside = vec![
            leader.clone(),
            v(vec![(1, 4), (2, 5)], Status::Running, -1),
            v(vec![(1, 4), (2, 6)], Status::Running, -1),
        ];
        assert!(leader_may_enter(&inside, 0, 1, 4));
        // One member is blocked receiving from the leader: it may be
        // waiting for what the leader sends after this collective.
        let on_leader = vec![
            leader.clone(),
            v(vec![(1, 4), (2, 5)], Status::Running, -1),
            v(vec![(1, 3), (2, 5)], Status::Blocked, 0),
        ];
        assert!(leader_may_enter(&on_leader, 0, 1, 4));
        // Blocked on another member: that one comes by itself.
        let on_other = vec![
            leader,
            v(vec![(1, 3), (2, 5)], Status::Running, -1),
            v(vec![(1, 3), (2, 5)], Status::Blocked, 1),
        ];
        assert!(!leader_may_enter(&on_other, 0, 1, 4));
    }
}
