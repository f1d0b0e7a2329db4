//! One resolution level of the pyramid and its graph-cut solve.
//!
//! A solve: pin the pixels under the clicks, compute the geodesic prior from the clicks
//! and the border, then alternate colour models and a graph cut a few times, keeping
//! only the foreground that is connected to a green click after each cut.

use super::band_graph::BandGraph;
use super::features::{self, Grid, Quant};
use super::{MAX_SIDE, geodesic, gmm, maxflow};

/// Pairwise weight: GrabCut's 50 for 8-connectivity, which was set for photos
/// of about `LAMBDA_SIDE` px. Unaries sum over the area (~ resolution^2) and
/// the pairwise term over the boundary (~ resolution), so a level whose long
/// side is `s` px uses `LAMBDA * s / LAMBDA_SIDE` to keep the same balance
/// (28 at the 360 px working level, 14 at the 180 px coarse level).
const LAMBDA: f32 = 50.0;
const LAMBDA_SIDE: f32 = 640.0;
/// Weight of the geodesic prior in the unary term.
const GEO_W: f32 = 1.0;
/// Number of GMM components per class.
const GMM_K: usize = 5;
/// Variance floor of the GMM covariances (Lab units squared), so a flat colour region
/// does not make a degenerate component.
const GMM_VAR_FLOOR: f64 = 4.0;
/// Log-likelihood of a class that has no colour model (no training mass), and the floor
/// of every log-likelihood, so one unlikely colour cannot outweigh everything else.
const NO_MODEL_LOG_PDF: f32 = -12.0;
const MIN_LOG_PDF: f32 = -30.0;
/// Radius of the hard constraint around a click, in pixels of the working level
/// (`MAX_SIDE` long side); other levels scale it.
const CLICK_R: f32 = 1.5;
/// Spatial term of the geodesic metric (relative to the mean colour step).
const GEO_EPS: f32 = 0.3;
/// Click-local geodesic prior: amplitude and decay (geodesic units). Near a
/// click the geodesic evidence is reliable, far away colour should decide.
const LOC_A: f32 = 10.0;
const LOC_S: f32 = 5.0;
/// Extra GMM training mass for the geodesic neighbourhood of each click, so
/// a click on a colour the current mask misses gets its own component.
const CLICK_W: f32 = 5.0;
/// A terminal cost no cut pays: fixes a pixel's side.
const INF: f32 = 1e7;
/// The previous answer as a prior: the cost of flipping a pixel far (geodesically) from
/// the new click, and the geodesic distance over which that cost builds up: `HOLD_REL`
/// (`HOLD_REL_RED` for a red click) times the square root of the selection's area, kept
/// within `HOLD_MIN..HOLD_MAX`. Near the click the cut is free to change things; far
/// from it the old selection stays. A green click asks for a missed part, which may
/// reach far (a tail, an arm); a red click asks to take away what is wrong around it,
/// and a far-reaching red click is what wipes out a good selection.
const HOLD_W: f32 = 2.0;
const HOLD_REL: f32 = 1.0;
const HOLD_REL_RED: f32 = 0.5;
const HOLD_MIN: f32 = 10.0;
const HOLD_MAX: f32 = 100.0;

/// One resolution level of the pyramid with everything `segment` needs.
pub(super) struct Level {
    pub w: usize,
    pub h: usize,
    pub(super) grid: Grid,
    /// Contrast-sensitive pairwise weight per arc (without lambda).
    pub(super) pair: Vec<f32>,
    /// Geodesic step costs.
    metric: geodesic::Metric,
    quant: Quant,
    /// Geodesic distance from the image border (background evidence).
    border_dist: Vec<f32>,
}

/// What restricts a solve beyond the clicks.
#[derive(Clone, Copy, Default)]
pub(super) struct Constraints<'a> {
    pub band: Option<Band<'a>>,
    pub hold: Option<&'a Hold>,
    /// Solve inside this rectangle only, its outer ring background (GrabCut's box).
    pub window: Option<Window>,
    /// With a `window`: start from everything inside it selected and fit the background
    /// colours to everything outside it too (GrabCut's box initialisation).
    pub box_init: bool,
}

/// A rectangle of a level's grid, ends exclusive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Window {
    pub x0: usize,
    pub y0: usize,
    pub x1: usize,
    pub y1: usize,
}

impl Window {
    /// The square of half-side `r` around (`cx`, `cy`), clipped to a `w` x `h` grid.
    pub fn around(cx: usize, cy: usize, r: usize, w: usize, h: usize) -> Window {
        Window {
            x0: cx.saturating_sub(r),
            y0: cy.saturating_sub(r),
            x1: (cx + r + 1).min(w),
            y1: (cy + r + 1).min(h),
        }
    }

    pub fn contains(&self, x: usize, y: usize) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }

    /// On the window's outermost rows or columns.
    pub fn on_ring(&self, x: usize, y: usize) -> bool {
        self.contains(x, y)
            && (x == self.x0 || y == self.y0 || x + 1 == self.x1 || y + 1 == self.y1)
    }

    fn bounds(&self) -> (usize, usize, usize, usize) {
        (self.x0, self.y0, self.x1, self.y1)
    }
}

/// Labels a solve starts from where only a band is free: pixels outside `free` keep
/// their label.
#[derive(Clone, Copy)]
pub(super) struct Band<'a> {
    pub labels: &'a [u8],
    pub free: &'a [bool],
}

/// The previous answer at this level, held against change away from the new click:
/// ending on the other side of `labels[p]` costs `cost[p]`.
pub(super) struct Hold {
    pub labels: Vec<u8>,
    pub cost: Vec<f32>,
}

/// The pixels under the clicks, each pinned to its side (green wins where discs overlap).
struct Pins {
    green: Vec<usize>,
    red: Vec<usize>,
    is_green: Vec<bool>,
    is_red: Vec<bool>,
}

/// Per-pixel geodesic evidence from the clicks and the border.
struct GeodesicPrior {
    /// In [0, 1]: 0 at green clicks, 1 at red clicks and the border (the geodesic
    /// distance to green relative to the sum of both distances).
    toward_background: Vec<f32>,
    /// `exp(-distance / LOC_S)` to the nearest green (red) pixel: 1 on the click, fading
    /// with geodesic distance; 0 everywhere without red clicks.
    near_green: Vec<f32>,
    near_red: Vec<f32>,
}

/// Per colour bin: the cost of labelling it foreground and background (negative
/// log-likelihoods under the two colour models).
struct ColourCosts {
    fg: Vec<f32>,
    bg: Vec<f32>,
}

/// A max-flow whose terminal capacities are re-set per iteration as deltas, so each
/// iteration reuses the flow already found.
struct IncrementalCut<'a> {
    flow: maxflow::MaxFlow<'a>,
    /// The (foreground, background) costs set last, per pixel.
    costs: Vec<(f32, f32)>,
}

impl IncrementalCut<'_> {
    /// Sets pixel `p`'s costs of ending foreground (source side) and background.
    fn set_costs(&mut self, p: usize, fg_cost: f32, bg_cost: f32) {
        let (fg_before, bg_before) = self.costs[p];
        // to_source is paid when p ends as background.
        self.flow
            .add_tweights(p, bg_cost - bg_before, fg_cost - fg_before);
        self.costs[p] = (fg_cost, bg_cost);
    }
}

impl Level {
    pub fn new(w: usize, h: usize, rgb: &[f32]) -> Level {
        let lab: Vec<[f32; 3]> = rgb
            .chunks_exact(3)
            .map(|c| features::rgb_to_lab(c[0], c[1], c[2]))
            .collect();
        let grid = Grid::new(w, h, &lab);
        let arcs = grid.diff.len();
        let mean_d2 = grid.diff.iter().map(|d| (d * d) as f64).sum::<f64>() / arcs.max(1) as f64;
        let mean_d = grid.diff.iter().map(|&d| d as f64).sum::<f64>() / arcs.max(1) as f64;
        let beta = (1.0 / (2.0 * mean_d2.max(1e-6))) as f32;
        let mut pair = Vec::with_capacity(arcs);
        let mut geo_cost = Vec::with_capacity(arcs);
        let inv_mean_d = 1.0 / (mean_d.max(1e-3) as f32);
        for p in 0..w * h {
            for d in 0..8 {
                let a = grid.arc_of[p * 8 + d];
                if a == features::NO_ARC {
                    continue;
                }
                let len = if d % 2 == 1 {
                    std::f32::consts::SQRT_2
                } else {
                    1.0
                };
                let colour_step = grid.diff[a as usize];
                pair.push((-beta * colour_step * colour_step).exp() / len);
                geo_cost.push(colour_step * inv_mean_d + GEO_EPS * len);
            }
        }
        let quant = Quant::new(&lab);
        let border: Vec<usize> = (0..w * h)
            .filter(|&p| {
                let (x, y) = (p % w, p / w);
                x == 0 || y == 0 || x + 1 == w || y + 1 == h
            })
            .collect();
        let metric = geodesic::Metric::new(&grid, &geo_cost);
        let border_dist = metric.distances(&border, 2);
        Level {
            w,
            h,
            grid,
            pair,
            metric,
            quant,
            border_dist,
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.grid.heap_bytes()
            + self.pair.capacity() * 4
            + self.metric.heap_bytes()
            + self.quant.heap_bytes()
            + self.border_dist.capacity() * 4
    }

    /// Pixels of this level within `radius` (level pixels) of each dot; dots are in
    /// full-resolution coordinates (`full_w` x `full_h`), clamped into the image.
    pub fn pixels_near(
        &self,
        dots: &[[f32; 2]],
        full_w: f32,
        full_h: f32,
        radius: f32,
    ) -> Vec<usize> {
        let sx = self.w as f32 / full_w.max(1.0);
        let sy = self.h as f32 / full_h.max(1.0);
        let mut out = Vec::new();
        for d in dots {
            let x = if d[0].is_finite() {
                d[0].clamp(0.0, full_w - 0.5)
            } else {
                0.0
            };
            let y = if d[1].is_finite() {
                d[1].clamp(0.0, full_h - 0.5)
            } else {
                0.0
            };
            let (cx, cy) = (x * sx, y * sy);
            let r = radius.ceil() as i32;
            let (ix, iy) = (cx.floor() as i32, cy.floor() as i32);
            for dy in -r..=r {
                for dx in -r..=r {
                    let (nx, ny) = (ix + dx, iy + dy);
                    if nx < 0 || ny < 0 || nx >= self.w as i32 || ny >= self.h as i32 {
                        continue;
                    }
                    let (px, py) = (nx as f32 + 0.5 - cx, ny as f32 + 0.5 - cy);
                    if dx == 0 && dy == 0 || px * px + py * py <= radius * radius {
                        out.push(ny as usize * self.w + nx as usize);
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// How firmly `labels` (this level's grid) hold against a new click at `click`
    /// (full-resolution coordinates; green when `include`): free where the click is,
    /// dearer with geodesic distance from it, so a correction changes the selection
    /// around the click.
    pub fn hold(&self, labels: Vec<u8>, click: [f32; 2], include: bool, full: (f32, f32)) -> Hold {
        let radius = (CLICK_R * self.w.max(self.h) as f32 / MAX_SIDE as f32).max(0.5);
        let seeds = self.pixels_near(&[click], full.0, full.1, radius);
        let dist = self.metric.distances(&seeds, 2);
        // The hold builds up over the selection's own scale: a correction of a small
        // object stays near it, one of a large object may reach across it.
        let area = labels.iter().filter(|&&l| l == 1).count() as f32;
        let rel = if include { HOLD_REL } else { HOLD_REL_RED };
        let hs = (rel * area.sqrt()).clamp(HOLD_MIN, HOLD_MAX);
        let cost = dist
            .iter()
            .map(|&d| HOLD_W * (1.0 - (-d / hs).exp()))
            .collect();
        Hold { labels, cost }
    }

    /// The pixels a solve inside `win` may change: a window is a band whose outside (ring
    /// included) is pinned to background, so `label` is cleared there; with a `band` as
    /// well, only the band's free pixels inside the window may change.
    fn window_free(&self, win: Window, band: Option<Band>, label: &mut [u8]) -> Vec<bool> {
        let free: Vec<bool> = (0..self.w * self.h)
            .map(|p| {
                let (x, y) = (p % self.w, p / self.w);
                win.contains(x, y) && !win.on_ring(x, y)
            })
            .collect();
        for (l, f) in label.iter_mut().zip(&free) {
            *l &= *f as u8;
        }
        match band {
            Some(b) => free.iter().zip(b.free).map(|(&a, &b)| a && b).collect(),
            None => free,
        }
    }

    /// Graph-cut labelling (1 foreground, 0 background) at this level after `iters`
    /// rounds of colour models and cut. With a `band`, only its free pixels may change;
    /// with a `hold`, the previous answer is the starting point and a prior.
    pub fn solve(
        &self,
        green: &[[f32; 2]],
        red: &[[f32; 2]],
        full: (f32, f32),
        constraints: Constraints,
        iters: usize,
    ) -> Vec<u8> {
        let n = self.w * self.h;
        let Constraints {
            band,
            hold,
            window,
            box_init,
        } = constraints;
        let pins = self.pins(green, red, full, window);
        let prior = self.geodesic_prior(&pins, window);
        let mut label = Self::starting_labels(band, hold, box_init, &prior);
        pins.apply(&mut label);
        let window_band = window.map(|win| self.window_free(win, band, &mut label));
        let fixed = window.map(|_| label.clone());
        let band = match (&window_band, &fixed) {
            (Some(free), Some(fixed)) => Some(Band {
                labels: fixed,
                free,
            }),
            _ => band,
        };
        let lambda = LAMBDA * self.w.max(self.h) as f32 / LAMBDA_SIDE;
        let graph = band.map(|b| BandGraph::new(&self.grid, b.free, b.labels, &self.pair));
        let (topo, capacities, pixels): (_, Vec<f32>, Vec<usize>) = match &graph {
            Some(g) => (
                &g.topo,
                g.grid_arc
                    .iter()
                    .map(|&a| self.pair[a as usize] * lambda)
                    .collect(),
                g.pixels.clone(),
            ),
            None => (
                &self.grid.topo,
                self.pair.iter().map(|&p| p * lambda).collect(),
                (0..n).collect(),
            ),
        };
        let mut cut = IncrementalCut {
            flow: maxflow::MaxFlow::new(topo, capacities),
            costs: vec![(0.0, 0.0); pixels.len()],
        };
        for iteration in 0..iters {
            let colour = self.colour_costs(&label, &prior, window.filter(|_| !box_init));
            if iteration > 0 {
                cut.flow.restart();
            }
            for (node, &p) in pixels.iter().enumerate() {
                let (mut fg_cost, mut bg_cost) = self.pixel_costs(p, &colour, &prior, &pins);
                if let Some(hold) = hold {
                    if hold.labels[p] == 1 {
                        bg_cost += hold.cost[p];
                    } else {
                        fg_cost += hold.cost[p];
                    }
                }
                if let Some(g) = &graph {
                    bg_cost += g.pinned_fg[node] * lambda;
                    fg_cost += g.pinned_bg[node] * lambda;
                }
                cut.set_costs(node, fg_cost, bg_cost);
            }
            cut.flow.run();
            for (node, &p) in pixels.iter().enumerate() {
                label[p] = cut.flow.is_source(node) as u8;
            }
            keep_connected(&mut label, self.w, self.h, &pins.green);
        }
        label
    }

    /// The labels a solve starts from: the band's or the held answer where there is one,
    /// else everything (a box initialisation) or the geodesic split.
    fn starting_labels(
        band: Option<Band>,
        hold: Option<&Hold>,
        box_init: bool,
        prior: &GeodesicPrior,
    ) -> Vec<u8> {
        match (band, hold) {
            (Some(band), _) => band.labels.to_vec(),
            (None, Some(hold)) => hold.labels.clone(),
            (None, None) if box_init => vec![1; prior.toward_background.len()],
            (None, None) => prior
                .toward_background
                .iter()
                .map(|&v| (v < 0.5) as u8)
                .collect(),
        }
    }

    fn pins(
        &self,
        green: &[[f32; 2]],
        red: &[[f32; 2]],
        full: (f32, f32),
        window: Option<Window>,
    ) -> Pins {
        let n = self.w * self.h;
        let radius = (CLICK_R * self.w.max(self.h) as f32 / MAX_SIDE as f32).max(0.5);
        let inside = |p: &usize| window.is_none_or(|win| win.contains(p % self.w, p / self.w));
        let green: Vec<usize> = self
            .pixels_near(green, full.0, full.1, radius)
            .into_iter()
            .filter(inside)
            .collect();
        let mut is_green = vec![false; n];
        for &p in &green {
            is_green[p] = true;
        }
        let red: Vec<usize> = self
            .pixels_near(red, full.0, full.1, radius)
            .into_iter()
            .filter(|&p| !is_green[p] && inside(&p))
            .collect();
        let mut is_red = vec![false; n];
        for &p in &red {
            is_red[p] = true;
        }
        Pins {
            green,
            red,
            is_green,
            is_red,
        }
    }

    fn geodesic_prior(&self, pins: &Pins, window: Option<Window>) -> GeodesicPrior {
        let bounds = window.map_or((0, 0, self.w, self.h), |win| win.bounds());
        // The two sweeps are independent: one per core.
        let (green_dist, red_dist) = rayon::join(
            || self.metric.distances_within(&pins.green, 2, bounds),
            || (!pins.red.is_empty()).then(|| self.metric.distances_within(&pins.red, 2, bounds)),
        );
        let near_green = green_dist.iter().map(|&d| (-d / LOC_S).exp()).collect();
        // Background evidence: the border (a window's ring), and the red clicks.
        let mut background_dist = match window {
            None => self.border_dist.clone(),
            Some(win) => {
                let ring: Vec<usize> = (win.y0..win.y1)
                    .flat_map(|y| (win.x0..win.x1).map(move |x| (x, y)))
                    .filter(|&(x, y)| win.on_ring(x, y))
                    .map(|(x, y)| y * self.w + x)
                    .collect();
                self.metric.distances_within(&ring, 2, bounds)
            }
        };
        let mut near_red = vec![0f32; self.w * self.h];
        if let Some(red_dist) = red_dist {
            for ((bg, red), near) in background_dist
                .iter_mut()
                .zip(red_dist)
                .zip(near_red.iter_mut())
            {
                *bg = bg.min(red);
                *near = (-red / LOC_S).exp();
            }
        }
        let toward_background = green_dist
            .iter()
            .zip(&background_dist)
            .map(|(&g, &b)| if g + b <= 0.0 { 0.5 } else { g / (g + b) })
            .collect();
        GeodesicPrior {
            toward_background,
            near_green,
            near_red,
        }
    }

    /// Fits foreground and background colour models to the current labels (plus the
    /// clicks' neighbourhoods) and prices every colour bin under both.
    fn colour_costs(
        &self,
        label: &[u8],
        prior: &GeodesicPrior,
        window: Option<Window>,
    ) -> ColourCosts {
        let bins = self.quant.mean.len();
        let mut fg_mass = vec![0f32; bins];
        let mut bg_mass = vec![0f32; bins];
        for p in 0..label.len() {
            if window.is_some_and(|win| !win.contains(p % self.w, p / self.w)) {
                continue;
            }
            let b = self.quant.bin_of[p] as usize;
            if label[p] == 1 {
                fg_mass[b] += 1.0;
            } else {
                bg_mass[b] += 1.0;
            }
            fg_mass[b] += CLICK_W * prior.near_green[p];
            bg_mass[b] += CLICK_W * prior.near_red[p];
        }
        let fg_model = gmm::Gmm::fit(&self.quant.mean, &fg_mass, GMM_K, GMM_VAR_FLOOR);
        let bg_model = gmm::Gmm::fit(&self.quant.mean, &bg_mass, GMM_K, GMM_VAR_FLOOR);
        let mut costs = ColourCosts {
            fg: vec![0f32; bins],
            bg: vec![0f32; bins],
        };
        for b in 0..bins {
            if self.quant.count[b] == 0 {
                continue;
            }
            let colour = &self.quant.mean[b];
            costs.fg[b] = neg_log_likelihood(fg_model.as_ref(), colour);
            costs.bg[b] = neg_log_likelihood(bg_model.as_ref(), colour);
        }
        costs
    }

    /// Pixel `p`'s costs of ending foreground and background: colour (relative to the
    /// cheaper class), geodesic prior, and the hard constraints of the clicks.
    fn pixel_costs(
        &self,
        p: usize,
        colour: &ColourCosts,
        prior: &GeodesicPrior,
        pins: &Pins,
    ) -> (f32, f32) {
        let bin = self.quant.bin_of[p] as usize;
        let (mut fg_cost, mut bg_cost) = (colour.fg[bin], colour.bg[bin]);
        let cheaper = fg_cost.min(bg_cost);
        fg_cost -= cheaper;
        bg_cost -= cheaper;
        fg_cost += GEO_W * prior.toward_background[p] + LOC_A * prior.near_red[p];
        bg_cost += GEO_W * (1.0 - prior.toward_background[p]) + LOC_A * prior.near_green[p];
        if pins.is_green[p] {
            bg_cost = INF;
            fg_cost = 0.0;
        }
        if pins.is_red[p] {
            fg_cost = INF;
            bg_cost = 0.0;
        }
        (fg_cost, bg_cost)
    }
}

impl Pins {
    fn apply(&self, label: &mut [u8]) {
        for p in 0..label.len() {
            if self.is_green[p] {
                label[p] = 1;
            }
            if self.is_red[p] {
                label[p] = 0;
            }
        }
    }
}

fn neg_log_likelihood(model: Option<&gmm::Gmm>, colour: &[f32; 3]) -> f32 {
    -model
        .map_or(NO_MODEL_LOG_PDF, |g| g.log_pdf(colour))
        .max(MIN_LOG_PDF)
}

/// Clears foreground pixels not 8-connected to any of `seeds`.
pub(super) fn keep_connected(label: &mut [u8], w: usize, h: usize, seeds: &[usize]) {
    let inside: Vec<bool> = label.iter().map(|&l| l == 1).collect();
    let seen = flood(&inside, w, h, seeds);
    for (l, s) in label.iter_mut().zip(seen) {
        if !s {
            *l = 0;
        }
    }
}

/// The pixels of `inside` 8-connected to any of `seeds` (seeds outside `inside` start
/// nothing).
pub(super) fn flood(inside: &[bool], w: usize, h: usize, seeds: &[usize]) -> Vec<bool> {
    let mut seen = vec![false; w * h];
    let mut stack: Vec<usize> = Vec::new();
    for &s in seeds {
        if inside[s] && !seen[s] {
            seen[s] = true;
            stack.push(s);
        }
    }
    while let Some(p) = stack.pop() {
        let (x, y) = ((p % w) as i32, (p / w) as i32);
        for &(dx, dy) in features::DIRS.iter() {
            let (nx, ny) = (x + dx, y + dy);
            if nx < 0 || ny < 0 || nx >= w as i32 || ny >= h as i32 {
                continue;
            }
            let q = ny as usize * w + nx as usize;
            if inside[q] && !seen[q] {
                seen[q] = true;
                stack.push(q);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_green_click_loosens_the_old_selection_further_out_than_a_red_one() {
        // A flat grey picture with a selected square: geodesic distance is plain
        // distance, so only the click's colour differs between the two holds.
        let (w, h) = (120, 90);
        let level = Level::new(w, h, &vec![0.5; w * h * 3]);
        let labels: Vec<u8> = (0..w * h)
            .map(|p| ((20..80).contains(&(p % w)) && (15..75).contains(&(p / w))) as u8)
            .collect();
        let full = (w as f32, h as f32);
        let green = level.hold(labels.clone(), [50.0, 45.0], true, full);
        let red = level.hold(labels, [50.0, 45.0], false, full);
        let far = 45 * w + 78;
        assert!(green.cost[far] > 0.0);
        assert!(
            green.cost[far] < 0.75 * red.cost[far],
            "green {} red {}",
            green.cost[far],
            red.cost[far]
        );
        let at_click = 45 * w + 50;
        assert!(green.cost[at_click] < 0.1 && red.cost[at_click] < 0.1);
    }
}
