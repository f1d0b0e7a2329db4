//! The built-in engine's hand-written Boykov–Kolmogorov max-flow, checked against an
//! independent oracle (pathfinding's Edmonds–Karp) on random small graphs: the flow
//! value must match, and the cut it reports must be a minimum cut (its capacity equals
//! the flow). Integer capacities keep every sum exact in f32. The random cases come from
//! a fixed seed, so a run is deterministic.

use std::collections::BTreeMap;

use aicut::engine::builtin::classic::maxflow::{MaxFlow, Topology};
use pathfinding::directed::edmonds_karp::edmonds_karp_sparse;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseResult, TestRng, TestRunner};

/// A max-flow problem in the solver's terms: undirected edges with a capacity each way,
/// and per node a capacity from the source and one to the sink.
#[derive(Clone, Debug)]
struct Problem {
    nodes: usize,
    /// (u, v, capacity u -> v, capacity v -> u); parallel edges allowed.
    edges: Vec<(usize, usize, i64, i64)>,
    /// Per node: (capacity from the source, capacity to the sink).
    terminals: Vec<(i64, i64)>,
}

impl Problem {
    /// The CSR topology (arcs grouped by tail, each with its sister) and arc capacities.
    fn graph(&self) -> (Topology, Vec<f32>) {
        // Per node: (edge, whether the arc runs u -> v).
        let mut out_arcs: Vec<Vec<(usize, bool)>> = vec![Vec::new(); self.nodes];
        for (e, &(u, v, _, _)) in self.edges.iter().enumerate() {
            out_arcs[u].push((e, true));
            out_arcs[v].push((e, false));
        }
        let mut start = vec![0u32];
        let (mut head, mut capacity) = (Vec::new(), Vec::new());
        let mut arc_of = vec![[0u32; 2]; self.edges.len()];
        for arcs in &out_arcs {
            for &(e, forward) in arcs {
                let (u, v, to_v, to_u) = self.edges[e];
                arc_of[e][forward as usize] = head.len() as u32;
                head.push(if forward { v } else { u } as u32);
                capacity.push(if forward { to_v } else { to_u } as f32);
            }
            start.push(head.len() as u32);
        }
        let mut sister = vec![0u32; head.len()];
        for [backward, forward] in arc_of {
            sister[forward as usize] = backward;
            sister[backward as usize] = forward;
        }
        let topology = Topology {
            start,
            head,
            sister,
        };
        (topology, capacity)
    }

    /// The maximum flow by Edmonds–Karp, with the terminals as two extra nodes.
    fn oracle_max_flow(&self) -> i64 {
        let (source, sink) = (self.nodes, self.nodes + 1);
        let mut capacities: BTreeMap<(usize, usize), i64> = BTreeMap::new();
        for &(u, v, to_v, to_u) in &self.edges {
            *capacities.entry((u, v)).or_default() += to_v;
            *capacities.entry((v, u)).or_default() += to_u;
        }
        for (i, &(from_source, to_sink)) in self.terminals.iter().enumerate() {
            *capacities.entry((source, i)).or_default() += from_source;
            *capacities.entry((i, sink)).or_default() += to_sink;
        }
        let vertices: Vec<usize> = (0..self.nodes + 2).collect();
        let edges = capacities.into_iter().filter(|&(_, c)| c > 0);
        let (_, total, _) = edmonds_karp_sparse(&vertices, &source, &sink, edges);
        total
    }

    /// Capacity of the cut that puts `source_side` with the source.
    fn cut_capacity(&self, source_side: &[bool]) -> i64 {
        let mut total = 0;
        for &(u, v, to_v, to_u) in &self.edges {
            if source_side[u] && !source_side[v] {
                total += to_v;
            }
            if source_side[v] && !source_side[u] {
                total += to_u;
            }
        }
        for (i, &(from_source, to_sink)) in self.terminals.iter().enumerate() {
            total += if source_side[i] { to_sink } else { from_source };
        }
        total
    }
}

fn add_terminals(flow: &mut MaxFlow, terminals: &[(i64, i64)]) {
    for (i, &(from_source, to_sink)) in terminals.iter().enumerate() {
        flow.add_tweights(i, from_source as f32, to_sink as f32);
    }
}

/// `value` (what `run` returned) is the oracle's maximum flow, and the cut `flow` reports
/// has that capacity, so it is a minimum cut.
fn check_max_flow_and_min_cut(problem: &Problem, flow: &MaxFlow, value: f64) -> TestCaseResult {
    let expected = problem.oracle_max_flow();
    prop_assert_eq!(value, expected as f64, "flow value");
    let source_side: Vec<bool> = (0..problem.nodes).map(|i| flow.is_source(i)).collect();
    let cut = problem.cut_capacity(&source_side);
    prop_assert_eq!(cut, expected, "capacity of the reported cut");
    Ok(())
}

/// Zero often, so saturated and missing arcs and terminal-free nodes all occur.
fn capacity() -> impl Strategy<Value = i64> {
    prop_oneof![1 => Just(0i64), 3 => 1i64..=20]
}

fn terminals(nodes: usize) -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((capacity(), capacity()), nodes)
}

/// Up to 10 nodes with up to 3 random edges per node (parallel edges included).
fn arbitrary_graph() -> impl Strategy<Value = Problem> {
    (1usize..=10).prop_flat_map(|nodes| {
        let edge = (0..nodes, 1..nodes.max(2), capacity(), capacity())
            .prop_map(move |(u, step, to_v, to_u)| (u, (u + step) % nodes, to_v, to_u));
        (prop::collection::vec(edge, 0..=3 * nodes), terminals(nodes)).prop_map(
            move |(edges, terminals)| Problem {
                nodes,
                edges: edges.into_iter().filter(|e| e.0 != e.1).collect(),
                terminals,
            },
        )
    })
}

/// Grids up to 5x5, 4- or 8-connected like the engine's pixel graph.
fn grid_graph() -> impl Strategy<Value = Problem> {
    (1usize..=5, 1usize..=5, any::<bool>()).prop_flat_map(|(w, h, diagonals)| {
        let mut pairs = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let p = y * w + x;
                if x + 1 < w {
                    pairs.push((p, p + 1));
                }
                if y + 1 < h {
                    pairs.push((p, p + w));
                    if diagonals && x + 1 < w {
                        pairs.push((p, p + w + 1));
                    }
                    if diagonals && x > 0 {
                        pairs.push((p, p + w - 1));
                    }
                }
            }
        }
        let caps = prop::collection::vec((capacity(), capacity()), pairs.len());
        (caps, terminals(w * h)).prop_map(move |(caps, terminals)| Problem {
            nodes: w * h,
            edges: pairs
                .iter()
                .zip(caps)
                .map(|(&(u, v), (to_v, to_u))| (u, v, to_v, to_u))
                .collect(),
            terminals,
        })
    })
}

fn any_graph() -> impl Strategy<Value = Problem> {
    prop_oneof![arbitrary_graph(), grid_graph()]
}

/// Runs `check` on `cases` random problems from a fixed seed, without regression files.
fn check_cases<S: Strategy>(strategy: S, cases: u32, check: impl Fn(S::Value) -> TestCaseResult)
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[9; 32]);
    let mut runner = TestRunner::new_with_rng(config, rng);
    if let Err(e) = runner.run(&strategy, check) {
        panic!("{e}");
    }
}

#[test]
fn max_flow_equals_edmonds_karp_and_its_cut_is_minimum() {
    check_cases(any_graph(), 600, |problem| {
        let (topology, capacity) = problem.graph();
        let mut flow = MaxFlow::new(&topology, capacity);
        add_terminals(&mut flow, &problem.terminals);
        let value = flow.run();
        check_max_flow_and_min_cut(&problem, &flow, value)
    });
}

/// The engine's GrabCut iterations change terminal capacities by deltas and `restart`;
/// the result must be the max flow and a minimum cut of the changed problem.
#[test]
fn after_a_restart_with_new_terminal_capacities_the_flow_and_cut_are_those_of_the_new_problem() {
    let problems = any_graph().prop_flat_map(|p| {
        let n = p.nodes;
        (Just(p), terminals(n))
    });
    check_cases(problems, 400, |(first, new_terminals)| {
        let (topology, capacity) = first.graph();
        let mut flow = MaxFlow::new(&topology, capacity);
        add_terminals(&mut flow, &first.terminals);
        flow.run();
        flow.restart();
        for (i, (&(s0, t0), &(s1, t1))) in first.terminals.iter().zip(&new_terminals).enumerate() {
            flow.add_tweights(i, (s1 - s0) as f32, (t1 - t0) as f32);
        }
        let value = flow.run();
        let second = Problem {
            terminals: new_terminals,
            ..first
        };
        check_max_flow_and_min_cut(&second, &flow, value)
    });
}

#[test]
fn a_two_node_example_cuts_where_hand_computation_says() {
    // s->0 (5), s->1 (2); 0-1 (1 both ways), 0->t (1), 1->t (6).
    let problem = Problem {
        nodes: 2,
        edges: vec![(0, 1, 1, 1)],
        terminals: vec![(5, 1), (2, 6)],
    };
    let (topology, capacity) = problem.graph();
    let mut flow = MaxFlow::new(&topology, capacity);
    add_terminals(&mut flow, &problem.terminals);
    // Cut: 0 with the source, 1 with the sink: 1 (0->t) + 2 (s->1) + 1 (0->1) = 4.
    assert_eq!(flow.run(), 4.0);
    assert!(flow.is_source(0));
    assert!(!flow.is_source(1));
}

#[test]
fn a_chain_carries_what_its_narrowest_forward_link_allows() {
    let n = 50;
    let problem = Problem {
        nodes: n,
        edges: (0..n - 1)
            .map(|i| {
                (
                    i,
                    i + 1,
                    if i == 31 { 2 } else { 3 + (i as i64 * 5) % 7 },
                    1,
                )
            })
            .collect(),
        terminals: (0..n)
            .map(|i| match i {
                0 => (100, 0),
                i if i == n - 1 => (0, 100),
                _ => (0, 0),
            })
            .collect(),
    };
    let (topology, capacity) = problem.graph();
    let mut flow = MaxFlow::new(&topology, capacity);
    add_terminals(&mut flow, &problem.terminals);
    let narrowest = problem.edges.iter().map(|e| e.2).min().unwrap();
    assert_eq!(flow.run(), narrowest as f64);
    assert!(flow.is_source(0));
    assert!(!flow.is_source(n - 1));
}
