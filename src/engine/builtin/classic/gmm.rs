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

impl Gmm {
    /// Fit `k` components to points `x` with weights `wt` (zero weights ignored).
    /// `var_floor` regularises covariances (Lab units squared).
    pub fn fit(x: &[[f32; 3]], wt: &[f32], k: usize, var_floor: f64) -> Option<Gmm> {
        let idx: Vec<usize> = (0..x.len()).filter(|&i| wt[i] > 0.0).collect();
        let total: f64 = idx.iter().map(|&i| wt[i] as f64).sum();
        if idx.is_empty() || total <= 0.0 {
            return None;
        }
        let k = k.min(idx.len()).max(1);
        // Deterministic weighted farthest-point initialisation.
        let first = *idx
            .iter()
            .max_by(|&&a, &&b| wt[a].partial_cmp(&wt[b]).unwrap())
            .unwrap();
        let mut centres: Vec<[f64; 3]> =
            vec![[x[first][0] as f64, x[first][1] as f64, x[first][2] as f64]];
        let mut mind: Vec<f64> = idx.iter().map(|&i| d2(&x[i], &centres[0])).collect();
        while centres.len() < k {
            let (bi, _) = idx
                .iter()
                .enumerate()
                .map(|(j, &i)| (j, mind[j] * (wt[i] as f64).sqrt()))
                .fold((0, -1.0), |acc, v| if v.1 > acc.1 { v } else { acc });
            let i = idx[bi];
            let c = [x[i][0] as f64, x[i][1] as f64, x[i][2] as f64];
            for (j, &ii) in idx.iter().enumerate() {
                mind[j] = mind[j].min(d2(&x[ii], &c));
            }
            centres.push(c);
        }
        // k-means
        let mut assign = vec![0usize; idx.len()];
        for _ in 0..6 {
            for (j, &i) in idx.iter().enumerate() {
                let mut best = (0, f64::MAX);
                for (c, ce) in centres.iter().enumerate() {
                    let d = d2(&x[i], ce);
                    if d < best.1 {
                        best = (c, d);
                    }
                }
                assign[j] = best.0;
            }
            let mut s = vec![[0f64; 4]; k];
            for (j, &i) in idx.iter().enumerate() {
                let w = wt[i] as f64;
                let a = &mut s[assign[j]];
                for t in 0..3 {
                    a[t] += w * x[i][t] as f64;
                }
                a[3] += w;
            }
            for c in 0..k {
                if s[c][3] > 0.0 {
                    centres[c] = [s[c][0] / s[c][3], s[c][1] / s[c][3], s[c][2] / s[c][3]];
                }
            }
        }
        // Gaussians from the hard assignment.
        let mut comps = Vec::with_capacity(k);
        for (c, centre) in centres.iter().enumerate() {
            let mut sw = 0f64;
            let mut cov = [[0f64; 3]; 3];
            for (j, &i) in idx.iter().enumerate() {
                if assign[j] != c {
                    continue;
                }
                let w = wt[i] as f64;
                sw += w;
                let d = [
                    x[i][0] as f64 - centre[0],
                    x[i][1] as f64 - centre[1],
                    x[i][2] as f64 - centre[2],
                ];
                for a in 0..3 {
                    for b in 0..3 {
                        cov[a][b] += w * d[a] * d[b];
                    }
                }
            }
            if sw <= 0.0 {
                continue;
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
            comps.push(Comp {
                w: sw / total,
                mu: *centre,
                inv: inv3(&cov, det),
                log_norm: -0.5 * (det.ln() + 3.0 * (2.0 * std::f64::consts::PI).ln()),
            });
        }
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
