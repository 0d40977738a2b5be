//! The grid sampler of the Grid Search Network.
//!
//! A training step holds a batch of images in *groups*: each group is `views` images of
//! one id (a product; the same image twice when an id has a single picture — the
//! augmentations make the views differ). Every image of the batch is a query; its grid
//! has `rows × cols` cells, `positives` of them other images of the query's id and the
//! rest negatives of other ids, chosen at random, from the query's class ("hard"), by
//! similarity under the current embeddings ("mined"), or semi-hard under them
//! ("semihard": the most similar ones still less similar than the grid's positives, as in
//! the semi-hard triplet mining of Schroff et al. 2015). Cell positions are shuffled. The
//! grids index into the batch, so each image is embedded once per step.

use crate::rng::Rng;

/// How the negative cells of a grid are chosen (spec names: `random`, `hard`, `mined`,
/// `semihard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Negatives {
    /// Uniformly among the batch images of other ids.
    Random,
    /// Images of the query's class (but another id) first, then random ones.
    Hard,
    /// The most similar images of other ids under the current embeddings.
    Mined,
    /// Under the current embeddings: the most similar images of other ids that are less
    /// similar to the query than its least similar positive cell; when there are too few,
    /// the remaining ones from the least similar up.
    SemiHard,
}

impl Negatives {
    /// The names of every negative-selection rule (the Python miners' spec names).
    pub const NAMES: [&'static str; 4] = ["random", "hard", "mined", "semihard"];

    /// Parse `"random" | "hard" | "mined" | "semihard"`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "random" => Some(Negatives::Random),
            "hard" => Some(Negatives::Hard),
            "mined" => Some(Negatives::Mined),
            "semihard" => Some(Negatives::SemiHard),
            _ => None,
        }
    }
}

/// Layout of a grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridSpec {
    /// Rows of cells.
    pub rows: usize,
    /// Columns of cells.
    pub cols: usize,
    /// Cells holding images of the query's id (`1 ≤ positives < rows·cols`).
    pub positives: usize,
}

impl GridSpec {
    /// Number of cells.
    pub fn cells(&self) -> usize {
        self.rows * self.cols
    }
}

/// Choose the images of one batch: `groups` ids taken in turn from `order` (a cursor
/// into a shuffled list of ids, reshuffled when exhausted), `views` images of each
/// (drawn with replacement from the id's images when it has fewer).
///
/// `members[k]` lists the dataset indices of id `k`. Returns dataset indices and the id
/// index (`k`) of every slot.
pub fn plan_batch(
    rng: &mut Rng,
    members: &[Vec<usize>],
    order: &mut Vec<usize>,
    cursor: &mut usize,
    groups: usize,
    views: usize,
) -> (Vec<usize>, Vec<i64>) {
    let mut idx = Vec::with_capacity(groups * views);
    let mut lab = Vec::with_capacity(groups * views);
    if members.is_empty() {
        return (idx, lab);
    }
    for _ in 0..groups {
        if *cursor >= order.len() {
            *order = (0..members.len()).collect();
            rng.shuffle(order);
            *cursor = 0;
        }
        let k = order[*cursor];
        *cursor += 1;
        let m = &members[k];
        if m.is_empty() {
            continue;
        }
        let mut pick: Vec<usize> = m.clone();
        if m.len() >= views {
            // partial Fisher–Yates: the first `views` entries become a random sample
            for i in 0..views {
                let j = i + rng.below(m.len() - i);
                pick.swap(i, j);
            }
            pick.truncate(views);
        } else {
            pick = (0..views)
                .map(|i| {
                    if i < m.len() {
                        m[i]
                    } else {
                        m[rng.below(m.len())]
                    }
                })
                .collect();
        }
        for p in pick {
            idx.push(p);
            lab.push(k as i64);
        }
    }
    (idx, lab)
}

/// Grids for every query of a batch: `(cells index into the batch, targets)`, both of
/// length `batch · cells`, row-major per query (cell `r·cols + c`).
///
/// `labels` are the id of each batch slot, `classes` (optional) their class, `sim`
/// (optional, row-major `batch × batch`) the current similarities for mining. A query
/// with fewer same-id images than `positives` repeats them; with too few other-id
/// images, negatives repeat.
pub fn build_grids(
    rng: &mut Rng,
    labels: &[i64],
    classes: Option<&[i64]>,
    sim: Option<&[f32]>,
    spec: GridSpec,
    negatives: Negatives,
) -> (Vec<i64>, Vec<f32>) {
    let b = labels.len();
    let cells = spec.cells();
    let npos = spec.positives.min(cells);
    let nneg = cells - npos;
    let mut index = Vec::with_capacity(b * cells);
    let mut target = Vec::with_capacity(b * cells);
    let mut cell: Vec<(usize, bool)> = Vec::with_capacity(cells);
    for q in 0..b {
        cell.clear();
        let mut same: Vec<usize> = (0..b)
            .filter(|&j| j != q && labels[j] == labels[q])
            .collect();
        let mut other: Vec<usize> = (0..b).filter(|&j| labels[j] != labels[q]).collect();
        if same.is_empty() {
            same.push(q);
        }
        rng.shuffle(&mut same);
        for i in 0..npos {
            cell.push((same[i % same.len()], true));
        }
        let row = |j: usize| sim.and_then(|s| s.get(q * b + j).copied()).unwrap_or(0.0);
        if other.is_empty() {
            other.push(q);
        }
        let mode = match (negatives, classes, sim) {
            (Negatives::Hard, Some(_), _) => Negatives::Hard,
            (Negatives::Hard, None, Some(_)) | (Negatives::Mined, _, Some(_)) => Negatives::Mined,
            (Negatives::SemiHard, _, Some(_)) => Negatives::SemiHard,
            _ => Negatives::Random,
        };
        match mode {
            Negatives::Random => rng.shuffle(&mut other),
            Negatives::Hard => {
                rng.shuffle(&mut other);
                if let Some(cl) = classes {
                    // stable: same-class candidates first, in shuffled order
                    other.sort_by_key(|&j| cl.get(j) != cl.get(q));
                }
            }
            Negatives::Mined => {
                rng.shuffle(&mut other);
                other.sort_by(|&i, &j| row(j).total_cmp(&row(i)));
            }
            Negatives::SemiHard => {
                rng.shuffle(&mut other);
                // the least similar positive cell sets the bar
                let bar = cell
                    .iter()
                    .map(|&(p, _)| row(p))
                    .fold(f32::INFINITY, f32::min);
                // semi-hard (below the bar) first, most similar first; then the rest,
                // least similar first
                other.sort_by(|&i, &j| {
                    let (si, sj) = (row(i), row(j));
                    match (si < bar, sj < bar) {
                        (true, true) => sj.total_cmp(&si),
                        (false, false) => si.total_cmp(&sj),
                        (true, false) => std::cmp::Ordering::Less,
                        (false, true) => std::cmp::Ordering::Greater,
                    }
                });
            }
        }
        for i in 0..nneg {
            cell.push((other[i % other.len()], false));
        }
        rng.shuffle(&mut cell);
        for &(j, pos) in &cell {
            index.push(j as i64);
            target.push(if pos { 1.0 } else { 0.0 });
        }
    }
    (index, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_have_the_right_cells() {
        let mut rng = Rng::new(3);
        let members: Vec<Vec<usize>> = (0..20).map(|k| vec![2 * k, 2 * k + 1]).collect();
        let (mut order, mut cursor) = (vec![], 0);
        let (idx, lab) = plan_batch(&mut rng, &members, &mut order, &mut cursor, 8, 3);
        assert_eq!(idx.len(), 24);
        for (i, l) in idx.iter().zip(&lab) {
            assert_eq!(*i / 2, *l as usize);
        }
        let classes: Vec<i64> = lab.iter().map(|l| l % 2).collect();
        let spec = GridSpec {
            rows: 3,
            cols: 3,
            positives: 2,
        };
        for neg in [Negatives::Random, Negatives::Hard] {
            let (g, t) = build_grids(&mut rng, &lab, Some(&classes), None, spec, neg);
            assert_eq!(g.len(), 24 * 9);
            for q in 0..24 {
                let cells = &g[q * 9..q * 9 + 9];
                let ts = &t[q * 9..q * 9 + 9];
                assert_eq!(ts.iter().sum::<f32>(), 2.0);
                for (c, y) in cells.iter().zip(ts) {
                    let same = lab[*c as usize] == lab[q];
                    assert_eq!(same, *y == 1.0);
                    assert_ne!(*c as usize, q);
                    if neg == Negatives::Hard && *y == 0.0 {
                        assert_eq!(classes[*c as usize], classes[q]);
                    }
                }
            }
        }
    }

    #[test]
    fn mined_negatives_are_the_most_similar() {
        let mut rng = Rng::new(1);
        let lab: Vec<i64> = vec![0, 0, 1, 1, 2, 2, 3, 3];
        let mut sim = vec![0.0f32; 64];
        for i in 0..8 {
            for j in 0..8 {
                sim[i * 8 + j] = (i * 8 + j) as f32 / 64.0;
            }
        }
        let spec = GridSpec {
            rows: 1,
            cols: 3,
            positives: 1,
        };
        let (g, t) = build_grids(&mut rng, &lab, None, Some(&sim), spec, Negatives::Mined);
        let negs: Vec<i64> = (0..3).filter(|&c| t[c] == 0.0).map(|c| g[c]).collect();
        let mut negs = negs;
        negs.sort();
        assert_eq!(negs, vec![6, 7]);
    }

    #[test]
    fn semihard_negatives_sit_just_below_the_positive() {
        let mut rng = Rng::new(5);
        // query 0 (id 0) with its positive 1 at similarity 0.5; other ids at 0.9, 0.7
        // (harder than the positive), 0.45, 0.4 (semi-hard), 0.1, 0.0
        let lab: Vec<i64> = vec![0, 0, 1, 2, 3, 4, 5, 6];
        let q0 = [1.0f32, 0.5, 0.9, 0.7, 0.45, 0.4, 0.1, 0.0];
        let mut sim = vec![0.0f32; 64];
        sim[..8].copy_from_slice(&q0);
        let negs = |cells: usize, rng: &mut Rng| {
            let spec = GridSpec {
                rows: 1,
                cols: cells,
                positives: 1,
            };
            let (g, t) = build_grids(rng, &lab, None, Some(&sim), spec, Negatives::SemiHard);
            let mut n: Vec<i64> = (0..cells).filter(|&c| t[c] == 0.0).map(|c| g[c]).collect();
            n.sort();
            n
        };
        assert_eq!(negs(3, &mut rng), vec![4, 5]);
        // all four below the positive: the two semi-hard ones and the two easiest
        assert_eq!(negs(5, &mut rng), vec![4, 5, 6, 7]);
        // too few below the positive: then the harder ones, the least similar first
        assert_eq!(negs(6, &mut rng), vec![3, 4, 5, 6, 7]);
        // without similarities: random negatives, never a positive
        let spec = GridSpec {
            rows: 1,
            cols: 4,
            positives: 1,
        };
        let (g, t) = build_grids(&mut rng, &lab, None, None, spec, Negatives::SemiHard);
        for (c, y) in g.iter().zip(&t).take(4) {
            assert_eq!(lab[*c as usize] == 0, *y == 1.0);
        }
    }
}
