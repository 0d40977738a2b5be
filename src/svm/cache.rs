//! LRU cache of kernel rows (libsvm's `Cache`): row `i` holds the first `len` values of
//! `Q[i, ·]` in the solver's current (permuted) order; rows grow on demand and the least
//! recently used rows are freed when the byte budget is exceeded.

/// Sentinel index of the LRU list.
const NIL: usize = usize::MAX;

/// The kernel-row cache of one binary problem.
pub(crate) struct RowCache {
    rows: Vec<Vec<f32>>,
    prev: Vec<usize>,
    next: Vec<usize>,
    /// Least recently used row (list head) and most recently used (tail).
    head: usize,
    tail: usize,
    /// Remaining budget, in values.
    free: usize,
    /// The row prepared last: never evicted by the next `prepare` (the solver holds two
    /// rows at once).
    last: usize,
}

impl RowCache {
    /// A cache for `l` rows within `bytes` bytes (at least two full rows, like libsvm).
    pub(crate) fn new(l: usize, bytes: usize) -> Self {
        let budget = (bytes / std::mem::size_of::<f32>()).max(2 * l);
        RowCache {
            rows: vec![Vec::new(); l],
            prev: vec![NIL; l],
            next: vec![NIL; l],
            head: NIL,
            tail: NIL,
            free: budget,
            last: NIL,
        }
    }

    fn unlink(&mut self, i: usize) {
        let (p, n) = (self.prev[i], self.next[i]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n] = p;
        }
        self.prev[i] = NIL;
        self.next[i] = NIL;
    }

    fn push_tail(&mut self, i: usize) {
        self.prev[i] = self.tail;
        self.next[i] = NIL;
        if self.tail == NIL {
            self.head = i;
        } else {
            self.next[self.tail] = i;
        }
        self.tail = i;
    }

    fn is_linked(&self, i: usize) -> bool {
        self.head == i || self.prev[i] != NIL
    }

    fn evict(&mut self, i: usize) {
        self.unlink(i);
        self.free += self.rows[i].len();
        self.rows[i] = Vec::new();
    }

    /// Make row `i` the most recently used and long enough for `len` values; returns
    /// the first position whose value the caller must compute (`len` when none).
    pub(crate) fn prepare(&mut self, i: usize, len: usize) -> usize {
        let have = self.rows[i].len();
        if self.is_linked(i) {
            self.unlink(i);
        }
        if have < len {
            let more = len - have;
            let mut cur = self.head;
            while self.free < more && cur != NIL {
                let nxt = self.next[cur];
                if cur != self.last && cur != i {
                    self.evict(cur);
                }
                cur = nxt;
            }
            self.free = self.free.saturating_sub(more);
            let row = &mut self.rows[i];
            row.reserve_exact(more);
            row.resize(len, 0.0);
        }
        self.push_tail(i);
        self.last = i;
        have.min(len)
    }

    /// Row `i` as computed so far.
    pub(crate) fn row(&self, i: usize) -> &[f32] {
        &self.rows[i]
    }

    /// Row `i`, writable (to fill what [`RowCache::prepare`] asked for).
    pub(crate) fn row_mut(&mut self, i: usize) -> &mut [f32] {
        &mut self.rows[i]
    }

    /// Swap positions `i` and `j` (the solver swapped two samples).
    pub(crate) fn swap_index(&mut self, i: usize, j: usize) {
        if i == j {
            return;
        }
        let li = self.is_linked(i);
        let lj = self.is_linked(j);
        if li {
            self.unlink(i);
        }
        if lj {
            self.unlink(j);
        }
        self.rows.swap(i, j);
        if lj {
            self.push_tail(i);
        }
        if li {
            self.push_tail(j);
        }
        if self.last == i {
            self.last = j;
        } else if self.last == j {
            self.last = i;
        }
        let (lo, hi) = if i < j { (i, j) } else { (j, i) };
        let mut cur = self.head;
        while cur != NIL {
            let nxt = self.next[cur];
            let len = self.rows[cur].len();
            if len > lo {
                if len > hi {
                    self.rows[cur].swap(lo, hi);
                } else {
                    self.evict(cur);
                    if self.last == cur {
                        self.last = NIL;
                    }
                }
            }
            cur = nxt;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_budget() {
        // Budget of 8 values for 4 rows of length 4 -> two full rows fit.
        let mut c = RowCache::new(4, 8 * 4);
        assert_eq!(c.prepare(0, 4), 0);
        c.row_mut(0).copy_from_slice(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(c.prepare(1, 4), 0);
        assert_eq!(c.prepare(0, 4), 4); // hit
        assert_eq!(c.prepare(2, 4), 0); // evicts row 1 (LRU), not row 0
        assert_eq!(c.row(1).len(), 0);
        assert_eq!(c.row(0), &[1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn rows_grow_and_swap() {
        let mut c = RowCache::new(3, 1 << 20);
        assert_eq!(c.prepare(0, 2), 0);
        c.row_mut(0).copy_from_slice(&[10.0, 11.0]);
        assert_eq!(c.prepare(0, 3), 2);
        c.row_mut(0)[2] = 12.0;
        c.swap_index(1, 2);
        assert_eq!(c.row(0), &[10.0, 12.0, 11.0]);
        c.swap_index(0, 2);
        assert_eq!(c.row(2), &[11.0, 12.0, 10.0]);
        assert_eq!(c.row(0).len(), 0);
    }
}
