//! Weighted Gaussian mixture colour models (full covariance, as in GrabCut).
//!
//! Fitted on colour-bin means weighted by per-bin sample mass, so fitting and
//! evaluation cost depends on the number of occupied bins, not on pixels.

/// One full-covariance Gaussian component.
#[derive(Clone, Debug)]
struct Comp {
    w: f64,
    mu: [f64; 3],
    inv: [[f64; 3]; 3],
    log_norm: f64,
}

#[derive(Clone, Debug)]
pub struct Gmm {
    comps: Vec<Comp>,
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

fn inv3(m: &[[f64; 3]; 3], det: f64) -> [[f64; 3]; 3] {
    let id = 1.0 / det;
    [
        [
            (m[1][1] * m[2][2] - m[1][2] * m[2][1]) * id,
            (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * id,
            (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * id,
        ],
        [
            (m[1][2] * m[2][0] - m[1][0] * m[2][2]) * id,
            (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * id,
            (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * id,
        ],
        [
            (m[1][0] * m[2][1] - m[1][1] * m[2][0]) * id,
            (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * id,
            (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * id,
        ],
    ]
}

fn d2(a: &[f32; 3], b: &[f64; 3]) -> f64 {
    (0..3).map(|k| (a[k] as f64 - b[k]).powi(2)).sum()
}

/// Weighted points, with the indices of those of positive weight.
struct Samples<'a> {
    points: &'a [[f32; 3]],
    weights: &'a [f32],
    used: Vec<usize>,
}

impl Samples<'_> {
    fn point(&self, i: usize) -> [f64; 3] {
        let p = &self.points[i];
        [p[0] as f64, p[1] as f64, p[2] as f64]
    }

    /// Deterministic weighted farthest-point initialisation: the heaviest point first,
    /// then repeatedly the point farthest from all centres so far (weighted by
    /// sqrt(weight)), until there are `k`.
    fn farthest_point_centres(&self, k: usize) -> Vec<[f64; 3]> {
        let (x, wt) = (self.points, self.weights);
        let first = *self
            .used
            .iter()
            .max_by(|&&a, &&b| wt[a].partial_cmp(&wt[b]).unwrap())
            .unwrap();
        let mut centres: Vec<[f64; 3]> = vec![self.point(first)];
        let mut nearest_d2: Vec<f64> = self.used.iter().map(|&i| d2(&x[i], &centres[0])).collect();
        while centres.len() < k {
            let (farthest, _) = self
                .used
                .iter()
                .enumerate()
                .map(|(j, &i)| (j, nearest_d2[j] * (wt[i] as f64).sqrt()))
                .fold((0, -1.0), |acc, v| if v.1 > acc.1 { v } else { acc });
            let c = self.point(self.used[farthest]);
            for (j, &i) in self.used.iter().enumerate() {
                nearest_d2[j] = nearest_d2[j].min(d2(&x[i], &c));
            }
            centres.push(c);
        }
        centres
    }

    /// Six rounds of weighted k-means from `centres`; returns each used point's centre.
    fn kmeans(&self, centres: &mut [[f64; 3]]) -> Vec<usize> {
        let (x, wt) = (self.points, self.weights);
        let mut assign = vec![0usize; self.used.len()];
        for _ in 0..6 {
            for (j, &i) in self.used.iter().enumerate() {
                let mut best = (0, f64::MAX);
                for (c, ce) in centres.iter().enumerate() {
                    let d = d2(&x[i], ce);
                    if d < best.1 {
                        best = (c, d);
                    }
                }
                assign[j] = best.0;
            }
            // Weighted sums of the members' coordinates, and their weight.
            let mut sums = vec![[0f64; 4]; centres.len()];
            for (j, &i) in self.used.iter().enumerate() {
                let w = wt[i] as f64;
                let a = &mut sums[assign[j]];
                for t in 0..3 {
                    a[t] += w * x[i][t] as f64;
                }
                a[3] += w;
            }
            for (centre, s) in centres.iter_mut().zip(&sums) {
                if s[3] > 0.0 {
                    *centre = [s[0] / s[3], s[1] / s[3], s[2] / s[3]];
                }
            }
        }
        assign
    }

    /// The Gaussian of the points assigned to `cluster`, or None if it has no weight.
    fn gaussian(
        &self,
        assign: &[usize],
        cluster: usize,
        centre: &[f64; 3],
        total: f64,
        var_floor: f64,
    ) -> Option<Comp> {
        let mut sw = 0f64;
        let mut cov = [[0f64; 3]; 3];
        for (j, &i) in self.used.iter().enumerate() {
            if assign[j] != cluster {
                continue;
            }
            let w = self.weights[i] as f64;
            sw += w;
            let p = self.point(i);
            let d = [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]];
            for a in 0..3 {
                for b in 0..3 {
                    cov[a][b] += w * d[a] * d[b];
                }
            }
        }
        if sw <= 0.0 {
            return None;
        }
        for row in cov.iter_mut() {
            for v in row.iter_mut() {
                *v /= sw;
            }
        }
        for (a, row) in cov.iter_mut().enumerate() {
            row[a] += var_floor;
        }
        let det = det3(&cov).max(1e-12);
        Some(Comp {
            w: sw / total,
            mu: *centre,
            inv: inv3(&cov, det),
            log_norm: -0.5 * (det.ln() + 3.0 * (2.0 * std::f64::consts::PI).ln()),
        })
    }
}

impl Gmm {
    /// Fit `k` components to points `x` with weights `wt` (zero weights ignored).
    /// `var_floor` regularises covariances (Lab units squared).
    pub fn fit(x: &[[f32; 3]], wt: &[f32], k: usize, var_floor: f64) -> Option<Gmm> {
        let samples = Samples {
            points: x,
            weights: wt,
            used: (0..x.len()).filter(|&i| wt[i] > 0.0).collect(),
        };
        let total: f64 = samples.used.iter().map(|&i| wt[i] as f64).sum();
        if samples.used.is_empty() || total <= 0.0 {
            return None;
        }
        let k = k.min(samples.used.len()).max(1);
        let mut centres = samples.farthest_point_centres(k);
        let assign = samples.kmeans(&mut centres);
        let comps = centres
            .iter()
            .enumerate()
            .filter_map(|(c, centre)| samples.gaussian(&assign, c, centre, total, var_floor))
            .collect();
        Some(Gmm { comps })
    }

    /// Log-density of colour `c`.
    pub fn log_pdf(&self, c: &[f32; 3]) -> f32 {
        let mut s = 0f64;
        for comp in &self.comps {
            let d = [
                c[0] as f64 - comp.mu[0],
                c[1] as f64 - comp.mu[1],
                c[2] as f64 - comp.mu[2],
            ];
            let mut q = 0.0;
            for a in 0..3 {
                for b in 0..3 {
                    q += d[a] * comp.inv[a][b] * d[b];
                }
            }
            s += comp.w * (comp.log_norm - 0.5 * q).exp();
        }
        (s.max(1e-30)).ln() as f32
    }
}
