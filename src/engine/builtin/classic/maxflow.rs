//! Boykov-Kolmogorov max-flow / min-cut.
//!
//! Why BK: on image grids it is much faster than push-relabel because the two
//! search trees are reused between augmentations. The graph topology is stored
//! in CSR form (arcs grouped by tail node) so it can be built once per image in
//! `prepare` and only the capacities are copied per click.

const NONE: u32 = u32::MAX;
const TERMINAL: u32 = u32::MAX - 1;
const ORPHAN: u32 = u32::MAX - 2;
const INF_D: u32 = u32::MAX;

/// Fixed graph topology: for node `i`, out-arcs are `start[i]..start[i+1]`.
/// Arc `a` goes to `head[a]`; `sister[a]` is the reverse arc.
#[derive(Clone, Debug, Default)]
pub struct Topology {
    pub start: Vec<u32>,
    pub head: Vec<u32>,
    pub sister: Vec<u32>,
}

impl Topology {
    pub fn num_nodes(&self) -> usize {
        self.start.len().saturating_sub(1)
    }
    pub fn heap_bytes(&self) -> usize {
        (self.start.capacity() + self.head.capacity() + self.sister.capacity()) * 4
    }
}

/// Per-node search state, kept together for cache locality.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// The arc to the parent in its search tree (from this node to the parent), or
    /// `TERMINAL` at a tree root, `ORPHAN` while it awaits a new parent, `NONE` when free.
    parent: u32,
    /// The time `dist` was last known valid; adoption prefers recently checked paths.
    ts: u32,
    /// Distance to the terminal along parents (an upper bound when `ts` is stale).
    dist: u32,
    /// Terminal residual: >0 means capacity from the source, <0 to the sink.
    tr_cap: f32,
    /// Which tree the node is in (meaningful while `parent != NONE`).
    is_sink: bool,
    in_active: bool,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            parent: NONE,
            ts: 0,
            dist: 0,
            tr_cap: 0.0,
            is_sink: false,
            in_active: false,
        }
    }
}

/// One max-flow problem on a shared topology.
///
/// The search code is written once for both trees, with a `SINK` const parameter: the
/// source tree grows along residual arcs leaving it, the sink tree along residual arcs
/// entering it, so the two differ only in which of an arc and its sister carries the flow.
/// Monomorphising keeps the two copies as fast as hand-written mirrors.
pub struct MaxFlow<'a> {
    topo: &'a Topology,
    /// Residual capacity per arc.
    r_cap: Vec<f32>,
    nodes: Vec<Node>,
    active: std::collections::VecDeque<u32>,
    orphans: std::collections::VecDeque<u32>,
    time: u32,
    flow: f64,
}

impl<'a> MaxFlow<'a> {
    /// `r_cap` are the per-arc capacities (same indexing as the topology).
    pub fn new(topo: &'a Topology, r_cap: Vec<f32>) -> Self {
        let n = topo.num_nodes();
        assert_eq!(r_cap.len(), topo.head.len());
        MaxFlow {
            topo,
            r_cap,
            nodes: vec![Node::default(); n],
            active: Default::default(),
            orphans: Default::default(),
            time: 0,
            flow: 0.0,
        }
    }

    /// Add terminal capacities: `to_source` is paid when `i` ends on the sink
    /// side, `to_sink` when it ends on the source side. Negative values lower
    /// capacities added before; the cut stays right as long as each total is >= 0.
    pub fn add_tweights(&mut self, i: usize, to_source: f32, to_sink: f32) {
        let mut cs = to_source;
        let mut ck = to_sink;
        let d = self.nodes[i].tr_cap;
        if d > 0.0 {
            cs += d;
        } else {
            ck -= d;
        }
        self.flow += cs.min(ck) as f64;
        self.nodes[i].tr_cap = cs - ck;
    }

    /// Prepares a second `run` after terminal capacities were changed with
    /// [`MaxFlow::add_tweights`] (deltas): the residual graph keeps the flow
    /// already found, only the search trees are rebuilt. Much cheaper than a
    /// fresh solve when the unaries change moderately (GrabCut iterations).
    pub fn restart(&mut self) {
        for nd in self.nodes.iter_mut() {
            nd.parent = NONE;
            nd.in_active = false;
            nd.ts = 0;
        }
        self.active.clear();
        self.orphans.clear();
        self.time += 1;
    }

    #[inline]
    fn set_active(&mut self, i: u32) {
        if !self.nodes[i as usize].in_active {
            self.nodes[i as usize].in_active = true;
            self.active.push_back(i);
        }
    }

    #[inline]
    fn arcs(&self, i: u32) -> std::ops::Range<usize> {
        self.topo.start[i as usize] as usize..self.topo.start[i as usize + 1] as usize
    }

    fn next_active(&mut self) -> Option<u32> {
        while let Some(i) = self.active.pop_front() {
            self.nodes[i as usize].in_active = false;
            if self.nodes[i as usize].parent != NONE {
                return Some(i);
            }
        }
        None
    }

    /// Runs max-flow and returns the total flow (the minimum cut's capacity, including
    /// what earlier runs and [`MaxFlow::add_tweights`] accounted); afterwards use
    /// [`MaxFlow::is_source`].
    pub fn run(&mut self) -> f64 {
        self.plant_trees();
        // A node keeps growing its tree after an augmentation while it stays in a tree.
        let mut current: Option<u32> = None;
        loop {
            let i = match current {
                Some(i) if self.nodes[i as usize].parent != NONE => i,
                _ => match self.next_active() {
                    Some(i) => i,
                    None => break,
                },
            };
            current = None;
            let bridge = if self.nodes[i as usize].is_sink {
                self.grow::<true>(i as usize)
            } else {
                self.grow::<false>(i as usize)
            };
            self.time += 1;
            if bridge != NONE {
                current = Some(i);
                self.augment(bridge as usize);
                self.adopt_orphans();
            }
        }
        self.flow
    }

    /// Every node with terminal residual becomes an active root of its tree.
    fn plant_trees(&mut self) {
        for i in 0..self.topo.num_nodes() {
            let t = self.nodes[i].tr_cap;
            if t != 0.0 {
                self.nodes[i].is_sink = t < 0.0;
                self.nodes[i].parent = TERMINAL;
                self.nodes[i].ts = 0;
                self.nodes[i].dist = 1;
                self.set_active(i as u32);
            }
        }
    }

    /// Grows node `i`'s tree (the sink tree when `SINK`) over its residual arcs: free
    /// neighbours join it, closer parents are taken over. Returns the first arc that
    /// reaches the other tree, directed from the source side to the sink side (the
    /// bridge of an augmenting path), or `NONE`.
    fn grow<const SINK: bool>(&mut self, i: usize) -> u32 {
        let topo: &'a Topology = self.topo;
        let (head, sister) = (&topo.head, &topo.sister);
        for a in self.arcs(i as u32) {
            // The direction flow would take between i and its neighbour.
            let along = if SINK { sister[a] as usize } else { a };
            if self.r_cap[along] > 0.0 {
                let j = head[a] as usize;
                if self.nodes[j].parent == NONE {
                    self.nodes[j].is_sink = SINK;
                    self.nodes[j].parent = sister[a];
                    self.nodes[j].ts = self.nodes[i].ts;
                    self.nodes[j].dist = self.nodes[i].dist + 1;
                    self.set_active(j as u32);
                } else if self.nodes[j].is_sink != SINK {
                    return along as u32;
                } else if self.nodes[j].ts <= self.nodes[i].ts
                    && self.nodes[j].dist > self.nodes[i].dist
                {
                    self.nodes[j].parent = sister[a];
                    self.nodes[j].ts = self.nodes[i].ts;
                    self.nodes[j].dist = self.nodes[i].dist + 1;
                }
            }
        }
        NONE
    }

    fn adopt_orphans(&mut self) {
        while let Some(o) = self.orphans.pop_front() {
            if self.nodes[o as usize].is_sink {
                self.process_orphan::<true>(o as usize);
            } else {
                self.process_orphan::<false>(o as usize);
            }
        }
    }

    #[inline]
    fn set_orphan_front(&mut self, i: usize) {
        self.nodes[i].parent = ORPHAN;
        self.orphans.push_front(i as u32);
    }

    #[inline]
    fn set_orphan(&mut self, i: usize) {
        self.nodes[i].parent = ORPHAN;
        self.orphans.push_back(i as u32);
    }

    /// Pushes the bottleneck flow along the path source tree -> `bridge` -> sink tree;
    /// nodes whose parent link saturates become orphans.
    fn augment(&mut self, bridge: usize) {
        let topo: &'a Topology = self.topo;
        let (head, sister) = (&topo.head, &topo.sister);
        let source_end = head[sister[bridge] as usize] as usize;
        let sink_end = head[bridge] as usize;
        let mut bottleneck = self.r_cap[bridge];
        bottleneck = self.path_bottleneck::<false>(source_end, bottleneck);
        bottleneck = self.path_bottleneck::<true>(sink_end, bottleneck);

        self.r_cap[sister[bridge] as usize] += bottleneck;
        self.r_cap[bridge] -= bottleneck;
        self.push_to_root::<false>(source_end, bottleneck);
        self.push_to_root::<true>(sink_end, bottleneck);
        self.flow += bottleneck as f64;
    }

    /// `bottleneck` lowered to the smallest residual on the tree path from `i` to its
    /// root and on the root's terminal link.
    fn path_bottleneck<const SINK: bool>(&self, mut i: usize, mut bottleneck: f32) -> f32 {
        let (head, sister) = (&self.topo.head, &self.topo.sister);
        loop {
            let pa = self.nodes[i].parent;
            if pa == TERMINAL {
                break;
            }
            // Flow runs parent -> i in the source tree, i -> parent in the sink tree.
            let along = if SINK { pa } else { sister[pa as usize] };
            bottleneck = bottleneck.min(self.r_cap[along as usize]);
            i = head[pa as usize] as usize;
        }
        let terminal = if SINK {
            -self.nodes[i].tr_cap
        } else {
            self.nodes[i].tr_cap
        };
        bottleneck.min(terminal)
    }

    /// Pushes `amount` along the tree path from `i` to its root and its terminal link.
    fn push_to_root<const SINK: bool>(&mut self, mut i: usize, amount: f32) {
        let topo: &'a Topology = self.topo;
        let (head, sister) = (&topo.head, &topo.sister);
        loop {
            let pa = self.nodes[i].parent;
            if pa == TERMINAL {
                break;
            }
            let pa = pa as usize;
            let sp = sister[pa] as usize;
            let (along, back) = if SINK { (pa, sp) } else { (sp, pa) };
            self.r_cap[back] += amount;
            self.r_cap[along] -= amount;
            let next = head[pa] as usize;
            if self.r_cap[along] <= 0.0 {
                self.set_orphan_front(i);
            }
            i = next;
        }
        if SINK {
            self.nodes[i].tr_cap += amount;
            if self.nodes[i].tr_cap >= 0.0 {
                self.set_orphan_front(i);
            }
        } else {
            self.nodes[i].tr_cap -= amount;
            if self.nodes[i].tr_cap <= 0.0 {
                self.set_orphan_front(i);
            }
        }
    }

    /// Distance of `j` to its terminal through valid parents (INF_D if it hangs on an orphan).
    fn origin_dist(&mut self, j0: usize) -> u32 {
        let topo: &'a Topology = self.topo;
        let head = &topo.head;
        let mut d: u32 = 0;
        let mut j = j0;
        loop {
            if self.nodes[j].ts == self.time {
                d += self.nodes[j].dist;
                break;
            }
            let a = self.nodes[j].parent;
            d += 1;
            if a == TERMINAL {
                self.nodes[j].ts = self.time;
                self.nodes[j].dist = 1;
                break;
            }
            if a == ORPHAN {
                return INF_D;
            }
            j = head[a as usize] as usize;
        }
        // mark the path
        let mut dd = d;
        let mut j = j0;
        while self.nodes[j].ts != self.time {
            self.nodes[j].ts = self.time;
            self.nodes[j].dist = dd;
            dd -= 1;
            j = head[self.nodes[j].parent as usize] as usize;
        }
        d
    }

    /// Finds orphan `i` (of the sink tree when `SINK`) the nearest parent in its tree
    /// that still reaches the terminal; without one, `i` becomes free, its neighbours in
    /// the tree become active, and its children orphans.
    fn process_orphan<const SINK: bool>(&mut self, i: usize) {
        let topo: &'a Topology = self.topo;
        let (head, sister) = (&topo.head, &topo.sister);
        // The direction flow would take between a neighbour and i.
        let along = |a: usize| if SINK { a } else { sister[a] as usize };
        let mut d_min = INF_D;
        let mut a_min = NONE;
        for a in self.arcs(i as u32) {
            if self.r_cap[along(a)] > 0.0 {
                let j = head[a] as usize;
                if self.nodes[j].is_sink == SINK && self.nodes[j].parent != NONE {
                    let d = self.origin_dist(j);
                    if d < d_min {
                        d_min = d;
                        a_min = a as u32;
                    }
                }
            }
        }
        if a_min != NONE {
            self.nodes[i].parent = a_min;
            self.nodes[i].ts = self.time;
            self.nodes[i].dist = d_min + 1;
            return;
        }
        self.nodes[i].parent = NONE;
        for a in self.arcs(i as u32) {
            let j = head[a] as usize;
            let pj = self.nodes[j].parent;
            if self.nodes[j].is_sink == SINK && pj != NONE {
                if self.r_cap[along(a)] > 0.0 {
                    self.set_active(j as u32);
                }
                if pj != TERMINAL && pj != ORPHAN && head[pj as usize] as usize == i {
                    self.set_orphan(j);
                }
            }
        }
    }

    /// True when node `i` is on the source side of the minimum cut
    /// (reachable from the source in the residual graph).
    pub fn is_source(&self, i: usize) -> bool {
        self.nodes[i].parent != NONE && !self.nodes[i].is_sink
    }
}
