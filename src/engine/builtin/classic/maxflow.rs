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
    parent: u32,
    ts: u32,
    dist: u32,
    tr_cap: f32,
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
pub struct MaxFlow<'a> {
    topo: &'a Topology,
    /// Residual capacity per arc.
    pub r_cap: Vec<f32>,
    /// Terminal residual: >0 means capacity from source, <0 to sink.
    nodes: Vec<Node>,
    active: std::collections::VecDeque<u32>,
    orphans: std::collections::VecDeque<u32>,
    time: u32,
    pub flow: f64,
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
    /// side, `to_sink` when it ends on the source side.
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

    /// Runs max-flow; afterwards use [`MaxFlow::is_source`].
    pub fn run(&mut self) -> f64 {
        let n = self.topo.num_nodes();
        for i in 0..n {
            let t = self.nodes[i].tr_cap;
            if t != 0.0 {
                self.nodes[i].is_sink = t < 0.0;
                self.nodes[i].parent = TERMINAL;
                self.nodes[i].ts = 0;
                self.nodes[i].dist = 1;
                self.set_active(i as u32);
            }
        }
        let topo: &'a Topology = self.topo;
        let head = &topo.head;
        let sister = &topo.sister;
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
            let iu = i as usize;
            let mut found = NONE;
            if !self.nodes[iu].is_sink {
                for a in self.arcs(i) {
                    if self.r_cap[a] > 0.0 {
                        let j = head[a] as usize;
                        if self.nodes[j].parent == NONE {
                            self.nodes[j].is_sink = false;
                            self.nodes[j].parent = sister[a];
                            self.nodes[j].ts = self.nodes[iu].ts;
                            self.nodes[j].dist = self.nodes[iu].dist + 1;
                            self.set_active(j as u32);
                        } else if self.nodes[j].is_sink {
                            found = a as u32;
                            break;
                        } else if self.nodes[j].ts <= self.nodes[iu].ts
                            && self.nodes[j].dist > self.nodes[iu].dist
                        {
                            self.nodes[j].parent = sister[a];
                            self.nodes[j].ts = self.nodes[iu].ts;
                            self.nodes[j].dist = self.nodes[iu].dist + 1;
                        }
                    }
                }
            } else {
                for a in self.arcs(i) {
                    let sa = sister[a] as usize;
                    if self.r_cap[sa] > 0.0 {
                        let j = head[a] as usize;
                        if self.nodes[j].parent == NONE {
                            self.nodes[j].is_sink = true;
                            self.nodes[j].parent = sa as u32;
                            self.nodes[j].ts = self.nodes[iu].ts;
                            self.nodes[j].dist = self.nodes[iu].dist + 1;
                            self.set_active(j as u32);
                        } else if !self.nodes[j].is_sink {
                            found = sa as u32;
                            break;
                        } else if self.nodes[j].ts <= self.nodes[iu].ts
                            && self.nodes[j].dist > self.nodes[iu].dist
                        {
                            self.nodes[j].parent = sa as u32;
                            self.nodes[j].ts = self.nodes[iu].ts;
                            self.nodes[j].dist = self.nodes[iu].dist + 1;
                        }
                    }
                }
            }
            self.time += 1;
            if found != NONE {
                current = Some(i);
                self.augment(found as usize);
                while let Some(o) = self.orphans.pop_front() {
                    if self.nodes[o as usize].is_sink {
                        self.process_sink_orphan(o as usize);
                    } else {
                        self.process_source_orphan(o as usize);
                    }
                }
            }
        }
        self.flow
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

    fn augment(&mut self, mid: usize) {
        let topo: &'a Topology = self.topo;
        let head = &topo.head;
        let sister = &topo.sister;
        let mut b = self.r_cap[mid];
        // source side
        let mut i = head[sister[mid] as usize] as usize;
        loop {
            let pa = self.nodes[i].parent;
            if pa == TERMINAL {
                break;
            }
            b = b.min(self.r_cap[sister[pa as usize] as usize]);
            i = head[pa as usize] as usize;
        }
        b = b.min(self.nodes[i].tr_cap);
        // sink side
        let mut i = head[mid] as usize;
        loop {
            let pa = self.nodes[i].parent;
            if pa == TERMINAL {
                break;
            }
            b = b.min(self.r_cap[pa as usize]);
            i = head[pa as usize] as usize;
        }
        b = b.min(-self.nodes[i].tr_cap);

        self.r_cap[sister[mid] as usize] += b;
        self.r_cap[mid] -= b;
        let mut i = head[sister[mid] as usize] as usize;
        loop {
            let pa = self.nodes[i].parent;
            if pa == TERMINAL {
                break;
            }
            let pa = pa as usize;
            let sp = sister[pa] as usize;
            self.r_cap[pa] += b;
            self.r_cap[sp] -= b;
            let next = head[pa] as usize;
            if self.r_cap[sp] <= 0.0 {
                self.set_orphan_front(i);
            }
            i = next;
        }
        self.nodes[i].tr_cap -= b;
        if self.nodes[i].tr_cap <= 0.0 {
            self.set_orphan_front(i);
        }
        let mut i = head[mid] as usize;
        loop {
            let pa = self.nodes[i].parent;
            if pa == TERMINAL {
                break;
            }
            let pa = pa as usize;
            let sp = sister[pa] as usize;
            self.r_cap[sp] += b;
            self.r_cap[pa] -= b;
            let next = head[pa] as usize;
            if self.r_cap[pa] <= 0.0 {
                self.set_orphan_front(i);
            }
            i = next;
        }
        self.nodes[i].tr_cap += b;
        if self.nodes[i].tr_cap >= 0.0 {
            self.set_orphan_front(i);
        }
        self.flow += b as f64;
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

    fn process_source_orphan(&mut self, i: usize) {
        let topo: &'a Topology = self.topo;
        let head = &topo.head;
        let sister = &topo.sister;
        let mut d_min = INF_D;
        let mut a_min = NONE;
        for a in self.arcs(i as u32) {
            if self.r_cap[sister[a] as usize] > 0.0 {
                let j = head[a] as usize;
                if !self.nodes[j].is_sink && self.nodes[j].parent != NONE {
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
        } else {
            self.nodes[i].parent = NONE;
            for a in self.arcs(i as u32) {
                let j = head[a] as usize;
                let pj = self.nodes[j].parent;
                if !self.nodes[j].is_sink && pj != NONE {
                    if self.r_cap[sister[a] as usize] > 0.0 {
                        self.set_active(j as u32);
                    }
                    if pj != TERMINAL && pj != ORPHAN && head[pj as usize] as usize == i {
                        self.set_orphan(j);
                    }
                }
            }
        }
    }

    fn process_sink_orphan(&mut self, i: usize) {
        let topo: &'a Topology = self.topo;
        let head = &topo.head;
        let mut d_min = INF_D;
        let mut a_min = NONE;
        for a in self.arcs(i as u32) {
            if self.r_cap[a] > 0.0 {
                let j = head[a] as usize;
                if self.nodes[j].is_sink && self.nodes[j].parent != NONE {
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
        } else {
            self.nodes[i].parent = NONE;
            for a in self.arcs(i as u32) {
                let j = head[a] as usize;
                let pj = self.nodes[j].parent;
                if self.nodes[j].is_sink && pj != NONE {
                    if self.r_cap[a] > 0.0 {
                        self.set_active(j as u32);
                    }
                    if pj != TERMINAL && pj != ORPHAN && head[pj as usize] as usize == i {
                        self.set_orphan(j);
                    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a topology from an undirected edge list (both directions).
    fn topo(n: usize, edges: &[(usize, usize)]) -> Topology {
        let mut adj: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in edges {
            adj[a].push(b);
            adj[b].push(a);
        }
        let mut start = vec![0u32];
        let mut head = Vec::new();
        for l in &adj {
            head.extend(l.iter().map(|&x| x as u32));
            start.push(head.len() as u32);
        }
        let mut sister = vec![0u32; head.len()];
        for i in 0..n {
            for a in start[i] as usize..start[i + 1] as usize {
                let j = head[a] as usize;
                let b = (start[j] as usize..start[j + 1] as usize)
                    .find(|&b| head[b] as usize == i)
                    .unwrap();
                sister[a] = b as u32;
            }
        }
        Topology {
            start,
            head,
            sister,
        }
    }

    #[test]
    fn small_cut() {
        // s->0 (5), s->1 (2); 0-1 (1 both), 0->t 1, 1->t 6
        let t = topo(2, &[(0, 1)]);
        let mut mf = MaxFlow::new(&t, vec![1.0, 1.0]);
        mf.add_tweights(0, 5.0, 1.0);
        mf.add_tweights(1, 2.0, 6.0);
        let f = mf.run();
        // cut: 0 source, 1 sink: cost = 1 (0->t) + 2 (s->1) + 1 (0->1) = 4
        assert!((f - 4.0).abs() < 1e-6, "flow {f}");
        assert!(mf.is_source(0));
        assert!(!mf.is_source(1));
    }

    #[test]
    fn chain_flow() {
        let n = 50;
        let edges: Vec<_> = (0..n - 1).map(|i| (i, i + 1)).collect();
        let t = topo(n, &edges);
        let caps: Vec<f32> = (0..t.head.len()).map(|a| 1.0 + (a % 7) as f32).collect();
        let mut mf = MaxFlow::new(&t, caps);
        mf.add_tweights(0, 100.0, 0.0);
        mf.add_tweights(n - 1, 0.0, 100.0);
        let f = mf.run();
        assert!((f - 1.0).abs() < 1e-6 || f <= 8.0);
        assert!(mf.is_source(0));
        assert!(!mf.is_source(n - 1));
    }
}
