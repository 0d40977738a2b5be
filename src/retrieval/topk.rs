//! Streaming top-k selection with a deterministic order: higher score first, then the
//! lower gallery index.

use std::cmp::Ordering;

/// One retrieved gallery item: its score and its index in the gallery.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// Similarity (cosine, inner product) or squared distance (L2) to the query.
    pub score: f32,
    /// Row of the gallery.
    pub index: u32,
}

/// The ranking order on internal ("larger is better") scores: score descending, then
/// gallery index ascending. A total order (scores are never NaN here).
#[inline]
pub(crate) fn rank_order(a: &Neighbor, b: &Neighbor) -> Ordering {
    b.score
        .total_cmp(&a.score)
        .then_with(|| a.index.cmp(&b.index))
}

/// Keeps the `k` best of a stream of candidates whose indices arrive in increasing
/// order. Candidates are appended to a buffer while they beat the current threshold;
/// when the buffer is full it is cut back to the best `k` (a selection, O(cap)), and
/// the threshold becomes the k-th best score. Amortised O(1) per candidate for any k.
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    cap: usize,
    buf: Vec<Neighbor>,
    /// A candidate must score strictly above this to enter.
    pub threshold: f32,
}

impl TopK {
    /// An empty selector of the `k >= 1` best.
    pub fn new(k: usize) -> Self {
        let cap = (2 * k).max(k + 64);
        TopK {
            k,
            cap,
            buf: Vec::new(),
            threshold: f32::NEG_INFINITY,
        }
    }

    /// Offer a candidate. Its index must be larger than every index offered before
    /// (ties on the threshold then lose, as the lower index wins).
    #[inline]
    pub fn push(&mut self, score: f32, index: u32) {
        if score > self.threshold {
            self.push_unchecked(score, index);
        }
    }

    /// Append a candidate known to beat the threshold.
    #[inline]
    pub fn push_unchecked(&mut self, score: f32, index: u32) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(self.cap);
        }
        // `+ 0.0` turns -0.0 into +0.0 so that the total order treats them as equal.
        self.buf.push(Neighbor {
            score: score + 0.0,
            index,
        });
        if self.buf.len() >= self.cap {
            self.compact();
        }
    }

    /// Offer every value of `row` whose gallery index is `first + position`.
    #[inline]
    pub fn scan(&mut self, row: &[f32], first: u32) {
        const L: usize = 32;
        let mut chunks = row.chunks_exact(L);
        let mut base = first;
        for chunk in &mut chunks {
            let t = self.threshold;
            // Branch-free bit mask of the candidates of the whole chunk (vectorises); most
            // chunks have none. Only the set bits are visited.
            let mut mask = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &v)| acc | (u32::from(v > t) << i));
            while mask != 0 {
                let i = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                // The threshold may have risen since the mask was computed: push re-checks.
                self.push(chunk[i], base + i as u32);
            }
            base += L as u32;
        }
        for (i, &v) in chunks.remainder().iter().enumerate() {
            self.push(v, base + i as u32);
        }
    }

    fn compact(&mut self) {
        let k = self.k;
        if self.buf.len() > k {
            self.buf.select_nth_unstable_by(k - 1, rank_order);
            self.buf.truncate(k);
        }
        if self.buf.len() == k {
            // After the selection, position k-1 holds the k-th best.
            self.threshold = self.buf[k - 1].score;
        }
    }

    /// The best `min(k, offered)` candidates, best first.
    pub fn finish(&mut self) -> Vec<Neighbor> {
        self.compact();
        let mut out = std::mem::take(&mut self.buf);
        out.sort_unstable_by(rank_order);
        out.truncate(self.k);
        self.threshold = f32::NEG_INFINITY;
        out
    }
}

/// Merge ranked lists (each best first) into the best `k`, best first.
pub(crate) fn merge(lists: &[Vec<Neighbor>], k: usize) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = lists.iter().flatten().copied().collect();
    all.sort_unstable_by(rank_order);
    all.truncate(k);
    all
}

/// Upper bound on the memory of the top-k selectors of one task.
pub(crate) const SELECTOR_BYTES: usize = 64 << 20;

/// Bytes of the top-k selector of a list of `k` items.
pub(crate) fn selector_bytes(k: usize) -> usize {
    (2 * k).max(k + 64) * std::mem::size_of::<Neighbor>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(values: &[f32], k: usize) -> Vec<(f32, u32)> {
        let mut v: Vec<(f32, u32)> = values
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, i as u32))
            .collect();
        v.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
        v.truncate(k);
        v
    }

    #[test]
    fn matches_sort_with_ties() {
        // Many ties (values in 0..7) and a length that is not a multiple of the chunk.
        let values: Vec<f32> = (0..1003u32).map(|i| ((i * 7919) % 7) as f32).collect();
        for k in [1, 5, 64, 65, 200, 1003] {
            let mut t = TopK::new(k);
            t.scan(&values, 0);
            let got: Vec<(f32, u32)> = t.finish().iter().map(|n| (n.score, n.index)).collect();
            assert_eq!(got, brute(&values, k), "k={k}");
        }
    }

    #[test]
    fn scan_in_pieces_and_merge() {
        let values: Vec<f32> = (0..500u32).map(|i| ((i * 31) % 13) as f32 - 6.0).collect();
        let mut t = TopK::new(17);
        for (c, piece) in values.chunks(70).enumerate() {
            t.scan(piece, (c * 70) as u32);
        }
        let whole: Vec<(f32, u32)> = t.finish().iter().map(|n| (n.score, n.index)).collect();
        assert_eq!(whole, brute(&values, 17));
        // Shards scanned separately, then merged.
        let mut lists = vec![];
        for (c, piece) in values.chunks(120).enumerate() {
            let mut t = TopK::new(17);
            t.scan(piece, (c * 120) as u32);
            lists.push(t.finish());
        }
        let merged: Vec<(f32, u32)> = merge(&lists, 17)
            .iter()
            .map(|n| (n.score, n.index))
            .collect();
        assert_eq!(merged, whole);
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        let mut t = TopK::new(2);
        t.scan(&[-0.0, 0.0, -1.0], 0);
        let got: Vec<u32> = t.finish().iter().map(|n| n.index).collect();
        assert_eq!(got, vec![0, 1]);
    }
}
