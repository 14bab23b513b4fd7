//! CART regression trees and random forests on quantile-binned features (≤ 32 bins per column,
//! missing values in their own bin that always goes left). Hand-written because they are small;
//! the gradient-boosted trees come from `forust-ml`.

use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{mae, TabularModel};
use crate::error::Result;
use crate::features::Table;

const MAX_BINS: usize = 32;

/// Per-column bin edges fitted on training rows; bin 0 = missing, bin b ≥ 1 ⇔ v ≤ edges[b−1].
#[derive(Debug, Clone)]
pub struct Binner {
    pub edges: Vec<Vec<f64>>,
}

impl Binner {
    pub fn fit(x: &Table) -> Binner {
        let mut edges = Vec::with_capacity(x.cols);
        let mut v = Vec::with_capacity(x.rows);
        for c in 0..x.cols {
            v.clear();
            v.extend(
                (0..x.rows)
                    .map(|r| x.data[r * x.cols + c])
                    .filter(|a| a.is_finite()),
            );
            v.sort_by(|a, b| a.total_cmp(b));
            v.dedup();
            let mut e: Vec<f64> = if v.len() <= MAX_BINS {
                v.clone()
            } else {
                (1..MAX_BINS).map(|i| v[i * v.len() / MAX_BINS]).collect()
            };
            e.dedup();
            edges.push(e);
        }
        Binner { edges }
    }

    fn bin(&self, c: usize, v: f64) -> u8 {
        if !v.is_finite() {
            return 0;
        }
        let e = &self.edges[c];
        // first edge >= v; values above the last edge go to len+1
        (1 + e.partition_point(|&a| a < v)) as u8
    }

    /// Column-major bins of `x`.
    pub fn transform(&self, x: &Table) -> Vec<u8> {
        let mut out = vec![0u8; x.rows * x.cols];
        for c in 0..x.cols {
            for r in 0..x.rows {
                out[c * x.rows + r] = self.bin(c, x.data[r * x.cols + c]);
            }
        }
        out
    }

    fn n_bins(&self, c: usize) -> usize {
        self.edges[c].len() + 2
    }
}

#[derive(Debug, Clone)]
enum Node {
    Leaf(f64),
    /// Left when the value is missing or ≤ `thr`.
    Split {
        col: usize,
        thr: f64,
        left: usize,
        right: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TreeParams {
    pub max_depth: usize,
    pub min_leaf: usize,
    /// Columns tried per node (0 = all).
    pub max_features: usize,
}

#[derive(Debug, Clone)]
pub struct Tree {
    nodes: Vec<Node>,
}

struct Builder<'a> {
    bins: &'a [u8],
    n_rows: usize,
    binner: &'a Binner,
    y: &'a [f64],
    params: TreeParams,
    rng: ChaCha8Rng,
    nodes: Vec<Node>,
    cols: usize,
}

impl Builder<'_> {
    fn build(&mut self, idx: &mut [usize], depth: usize) -> usize {
        let n = idx.len();
        let sum: f64 = idx.iter().map(|&i| self.y[i]).sum();
        let mean = sum / n as f64;
        let me = self.nodes.len();
        self.nodes.push(Node::Leaf(mean));
        if depth >= self.params.max_depth || n < 2 * self.params.min_leaf.max(1) {
            return me;
        }
        let k = if self.params.max_features == 0 {
            self.cols
        } else {
            self.params.max_features.min(self.cols)
        };
        let cols: Vec<usize> = if k == self.cols {
            (0..self.cols).collect()
        } else {
            sample(&mut self.rng, self.cols, k).into_vec()
        };
        let base = sum * sum / n as f64;
        let mut best: Option<(f64, usize, usize)> = None; // gain, col, bin
        let mut cnt = [0usize; MAX_BINS + 2];
        let mut sm = [0f64; MAX_BINS + 2];
        for &c in &cols {
            let nb = self.binner.n_bins(c);
            cnt[..nb].fill(0);
            sm[..nb].fill(0.0);
            let colbins = &self.bins[c * self.n_rows..(c + 1) * self.n_rows];
            for &i in idx.iter() {
                let b = colbins[i] as usize;
                cnt[b] += 1;
                sm[b] += self.y[i];
            }
            let (mut nl, mut sl) = (0usize, 0.0);
            for b in 0..nb - 1 {
                nl += cnt[b];
                sl += sm[b];
                if b == 0 || cnt[b] == 0 {
                    // splitting at the missing bin alone is allowed too, but needs b >= 1 for a threshold
                    if b == 0 {
                        continue;
                    }
                }
                let nr = n - nl;
                if nl < self.params.min_leaf.max(1) || nr < self.params.min_leaf.max(1) {
                    continue;
                }
                let sr = sum - sl;
                let gain = sl * sl / nl as f64 + sr * sr / nr as f64 - base;
                if gain > 1e-12 && best.is_none_or(|(g, _, _)| gain > g) {
                    best = Some((gain, c, b));
                }
            }
        }
        let Some((_, col, b)) = best else { return me };
        let colbins = &self.bins[col * self.n_rows..(col + 1) * self.n_rows];
        // partition idx: left = bin <= b
        let mut l = 0;
        for j in 0..n {
            if (colbins[idx[j]] as usize) <= b {
                idx.swap(l, j);
                l += 1;
            }
        }
        let thr = self.binner.edges[col][b - 1];
        let (li, ri) = idx.split_at_mut(l);
        let left = self.build(li, depth + 1);
        let right = self.build(ri, depth + 1);
        self.nodes[me] = Node::Split {
            col,
            thr,
            left,
            right,
        };
        me
    }
}

impl Tree {
    /// Fits on the rows `idx` (may repeat, for bootstrap samples) of pre-binned data.
    #[allow(clippy::too_many_arguments)]
    fn fit(
        binner: &Binner,
        bins: &[u8],
        n_rows: usize,
        cols: usize,
        y: &[f64],
        idx: &mut [usize],
        params: TreeParams,
        seed: u64,
    ) -> Tree {
        let mut b = Builder {
            bins,
            n_rows,
            binner,
            y,
            params,
            rng: ChaCha8Rng::seed_from_u64(seed),
            nodes: Vec::new(),
            cols,
        };
        b.build(idx, 0);
        Tree { nodes: b.nodes }
    }

    fn predict_row(&self, row: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            match &self.nodes[i] {
                Node::Leaf(v) => return *v,
                Node::Split {
                    col,
                    thr,
                    left,
                    right,
                } => {
                    let v = row[*col];
                    i = if !v.is_finite() || v <= *thr {
                        *left
                    } else {
                        *right
                    };
                }
            }
        }
    }
}

/// A single tree or a bagged forest.
pub struct Forest {
    trees: Vec<Tree>,
    pub params: TreeParams,
    pub kind: &'static str,
}

impl TabularModel for Forest {
    fn predict(&self, x: &Table) -> Vec<f64> {
        (0..x.rows)
            .map(|r| {
                let row = x.row(r);
                self.trees.iter().map(|t| t.predict_row(row)).sum::<f64>() / self.trees.len() as f64
            })
            .collect()
    }
    fn describe(&self) -> String {
        format!(
            "{} trees={} max_depth={} min_leaf={} max_features={}",
            self.kind,
            self.trees.len(),
            self.params.max_depth,
            self.params.min_leaf,
            self.params.max_features
        )
    }
    fn refit(&self, x: &Table, y: &[f64], seed: u64) -> Result<Box<dyn TabularModel>> {
        Ok(Box::new(fit_forest(
            x,
            y,
            self.params,
            self.trees.len(),
            seed,
        )))
    }
}

/// Fits `n_trees` trees (bootstrap samples when `n_trees > 1`).
pub fn fit_forest(x: &Table, y: &[f64], params: TreeParams, n_trees: usize, seed: u64) -> Forest {
    let binner = Binner::fit(x);
    let bins = binner.transform(x);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut trees = Vec::with_capacity(n_trees);
    for t in 0..n_trees {
        let mut idx: Vec<usize> = if n_trees == 1 {
            (0..x.rows).collect()
        } else {
            (0..x.rows).map(|_| rng.random_range(0..x.rows)).collect()
        };
        trees.push(Tree::fit(
            &binner,
            &bins,
            x.rows,
            x.cols,
            y,
            &mut idx,
            params,
            seed.wrapping_add(t as u64 * 31 + 1),
        ));
    }
    Forest {
        trees,
        params,
        kind: if n_trees == 1 { "tree" } else { "forest" },
    }
}

fn search(
    x: &Table,
    y: &[f64],
    xv: &Table,
    yv: &[f64],
    grid: &[(TreeParams, usize)],
    seed: u64,
) -> Forest {
    let mut best: Option<(f64, Forest)> = None;
    for &(p, n) in grid {
        let f = fit_forest(x, y, p, n, seed);
        let s = if yv.is_empty() {
            0.0
        } else {
            mae(&f.predict(xv), yv)
        };
        if best.as_ref().is_none_or(|(b, _)| s < *b) {
            best = Some((s, f));
        }
        if yv.is_empty() {
            break;
        }
    }
    best.map(|b| b.1)
        .unwrap_or_else(|| fit_forest(x, y, grid[0].0, grid[0].1, seed))
}

/// Decision tree: max depth ∈ {3, 5, 8, 12}, min leaf ∈ {2, 5, 20}, chosen on validation.
pub fn fit_tree_search(x: &Table, y: &[f64], xv: &Table, yv: &[f64], seed: u64) -> Forest {
    let mut grid = Vec::new();
    for d in [8, 3, 5, 12] {
        for l in [5, 2, 20] {
            grid.push((
                TreeParams {
                    max_depth: d,
                    min_leaf: l,
                    max_features: 0,
                },
                1,
            ));
        }
    }
    search(x, y, xv, yv, &grid, seed)
}

/// Random forest, 100 trees, depth ≤ 16: max features ∈ {√F, F/3}, min leaf ∈ {1, 5}.
pub fn fit_forest_search(x: &Table, y: &[f64], xv: &Table, yv: &[f64], seed: u64) -> Forest {
    let sqrt = ((x.cols as f64).sqrt().ceil() as usize).max(1);
    let third = (x.cols / 3).max(1);
    let mut grid = Vec::new();
    for mf in [third, sqrt] {
        for l in [1, 5] {
            grid.push((
                TreeParams {
                    max_depth: 16,
                    min_leaf: l,
                    max_features: mf,
                },
                100,
            ));
        }
    }
    search(x, y, xv, yv, &grid, seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_learns_a_step_and_forest_a_smooth_function() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 400;
        let mut data = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let a: f64 = rng.random_range(0.0..1.0);
            let b: f64 = rng.random_range(0.0..1.0);
            let c = if rng.random_bool(0.1) {
                f64::NAN
            } else {
                rng.random_range(0.0..1.0)
            };
            data.extend_from_slice(&[a, b, c]);
            y.push(if a > 0.5 { 0.9 } else { 0.3 } + 0.1 * b);
        }
        let x = Table {
            rows: n,
            cols: 3,
            data,
        };
        let t = fit_forest(
            &x,
            &y,
            TreeParams {
                max_depth: 4,
                min_leaf: 2,
                max_features: 0,
            },
            1,
            1,
        );
        let m = mae(&t.predict(&x), &y);
        assert!(m < 0.02, "tree train MAE {m}");
        let f = fit_forest(
            &x,
            &y,
            TreeParams {
                max_depth: 8,
                min_leaf: 2,
                max_features: 2,
            },
            30,
            1,
        );
        let m = mae(&f.predict(&x), &y);
        assert!(m < 0.03, "forest train MAE {m}");
        let base = mae(&vec![0.65; n], &y);
        assert!(m < base / 5.0);
    }
}
