//! The graph of a banded solve: only the free pixels become nodes.
//!
//! A fine solve may change a narrow band around the coarse answer, a tenth to a third of
//! the picture. Running max-flow over the whole grid with the rest pinned still makes the
//! search trees walk every pinned pixel; a graph of the free pixels alone, with each arc
//! to a pinned neighbour folded into the free pixel's terminal costs, gives the same cut
//! at a fraction of the work.

use super::features::{Grid, NO_ARC};
use super::maxflow::Topology;

/// Node id of pixels that are not in the graph.
const PINNED: u32 = u32::MAX;

pub(super) struct BandGraph {
    /// The pixel of each node.
    pub pixels: Vec<usize>,
    pub topo: Topology,
    /// The grid arc each graph arc stands for (same indexing as `topo.head`).
    pub grid_arc: Vec<u32>,
    /// Per node: the pairwise weights (grid-arc weights, unscaled) to pinned
    /// foreground neighbours, paid when the node ends background, and to pinned
    /// background neighbours, paid when it ends foreground.
    pub pinned_fg: Vec<f32>,
    pub pinned_bg: Vec<f32>,
}

impl BandGraph {
    /// The graph of the pixels where `free` is set; `labels` are the pinned pixels' sides
    /// and `pair` the grid's pairwise weight per arc.
    pub fn new(grid: &Grid, free: &[bool], labels: &[u8], pair: &[f32]) -> BandGraph {
        let pixels: Vec<usize> = (0..free.len()).filter(|&p| free[p]).collect();
        let mut node_of = vec![PINNED; free.len()];
        for (k, &p) in pixels.iter().enumerate() {
            node_of[p] = k as u32;
        }
        let mut start = Vec::with_capacity(pixels.len() + 1);
        let mut head = Vec::with_capacity(pixels.len() * 8);
        let mut grid_arc = Vec::with_capacity(pixels.len() * 8);
        let mut pinned_fg = vec![0f32; pixels.len()];
        let mut pinned_bg = vec![0f32; pixels.len()];
        // Graph arc of each grid arc, to pair sisters up afterwards.
        let mut arc_of_grid_arc = vec![PINNED; grid.topo.head.len()];
        start.push(0u32);
        for (k, &p) in pixels.iter().enumerate() {
            for d in 0..8 {
                let a = grid.arc_of[p * 8 + d];
                if a == NO_ARC {
                    continue;
                }
                let q = grid.topo.head[a as usize] as usize;
                if node_of[q] == PINNED {
                    if labels[q] == 1 {
                        pinned_fg[k] += pair[a as usize];
                    } else {
                        pinned_bg[k] += pair[a as usize];
                    }
                    continue;
                }
                arc_of_grid_arc[a as usize] = head.len() as u32;
                head.push(node_of[q]);
                grid_arc.push(a);
            }
            start.push(head.len() as u32);
        }
        let sister = grid_arc
            .iter()
            .map(|&a| arc_of_grid_arc[grid.topo.sister[a as usize] as usize])
            .collect();
        BandGraph {
            pixels,
            topo: Topology {
                start,
                head,
                sister,
            },
            grid_arc,
            pinned_fg,
            pinned_bg,
        }
    }
}
