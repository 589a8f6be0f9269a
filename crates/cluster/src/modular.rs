//! The modular key → partition resolver (cluster spec §4.3, protocol spec
//! Appendix A).
//!
//! The table `T[i][j]` has one row per cluster size `i` (`1 ≤ i ≤ P−1`, with
//! `P = partition-size`) and one column per virtual slot `j` (`0 ≤ j < V`,
//! with `V = partition-modular-virtual`). Rows up to the hint
//! (`partition-modular-hint`) are plain `j mod i`; every later row is derived
//! from the previous one by handing every `i`-th slot of each old partition
//! over to the new partition `i−1`.
//!
//! # Memory
//!
//! The original builds the whole table (`P × V` 32-bit cells, 16 MiB with the
//! defaults) in every process. Here rows are built lazily, only up to the
//! largest partition count requested so far, and cached:
//!
//! * rows `i ≤ hint` are not stored at all (a cell is computed as `j mod i`);
//! * rows `hint < i ≤ 65536` store `u16` cells (every value is `< i`);
//! * rows `i > 65536` (only possible with a huge `partition-size`) store `u32`
//!   cells.
//!
//! A typical cluster (a handful of partitions) therefore needs a few tens of
//! KiB; even the full default table takes 8 MiB. Once a row exists, a lookup
//! costs one uncontended read-lock acquisition and an index.

use std::sync::{PoisonError, RwLock};

use crate::error::ClusterError;
use crate::hash::HashAlgorithm;

/// Default `partition-size` (table height = max partition count + 1).
pub const DEFAULT_PARTITION_SIZE: u32 = 1024;
/// Default `partition-modular-hint`.
pub const DEFAULT_MODULAR_HINT: u32 = 1;
/// Default `partition-modular-virtual` (number of virtual slots).
pub const DEFAULT_MODULAR_VIRTUAL: u32 = 4096;

/// One row of the table (one cluster size).
enum Row {
    /// A plain modulo row (`i ≤ hint`): `T[i][j] = j mod i`; nothing stored.
    Modulo(u32),
    /// Cells of a row with at most 65536 partitions.
    Narrow(Box<[u16]>),
    /// Cells of a row with more than 65536 partitions.
    Wide(Box<[u32]>),
}

impl Row {
    /// The cell at virtual slot `j` (`j < V`).
    #[inline]
    fn get(&self, j: usize) -> u32 {
        match self {
            // j < V ≤ u32::MAX, so the cast is lossless.
            Row::Modulo(i) => j as u32 % i,
            Row::Narrow(cells) => u32::from(cells[j]),
            Row::Wide(cells) => cells[j],
        }
    }
}

/// The modular resolver table, built lazily (see the [module docs](self)).
///
/// `Send + Sync`: share one instance (e.g. in an `Arc`) between threads.
pub struct ModularTable {
    hint: u32,
    virtual_nodes: u32,
    partition_size: u32,
    /// `rows[i - 1]` is row `i`; always a prefix `1 ..= rows.len()`.
    rows: RwLock<Vec<Row>>,
}

impl ModularTable {
    /// Creates a table for `partition-modular-hint = hint`,
    /// `partition-modular-virtual = virtual_nodes` and
    /// `partition-size = partition_size`. No row is built yet.
    ///
    /// Errors if `hint < 1`, `virtual_nodes < 1` or `partition_size < 2`.
    pub fn new(hint: u32, virtual_nodes: u32, partition_size: u32) -> Result<Self, ClusterError> {
        if hint < 1 {
            return Err(ClusterError::InvalidModularHint(hint));
        }
        if virtual_nodes < 1 {
            return Err(ClusterError::InvalidModularVirtual(virtual_nodes));
        }
        if partition_size < 2 {
            return Err(ClusterError::InvalidPartitionSize(partition_size));
        }
        Ok(ModularTable {
            hint,
            virtual_nodes,
            partition_size,
            rows: RwLock::new(Vec::new()),
        })
    }

    /// `partition-size`: the table height; usable partition counts are
    /// `1 ..= partition_size - 1`.
    pub fn partition_size(&self) -> u32 {
        self.partition_size
    }

    /// `partition-modular-hint`: rows up to this count are plain modulo.
    pub fn hint(&self) -> u32 {
        self.hint
    }

    /// `partition-modular-virtual`: the number of virtual slots `V`.
    pub fn virtual_nodes(&self) -> u32 {
        self.virtual_nodes
    }

    /// The largest usable partition count (`partition_size - 1`).
    pub fn max_partitions(&self) -> u32 {
        self.partition_size - 1
    }

    /// How many rows (`1 ..= n`) have been built so far.
    pub fn built_rows(&self) -> u32 {
        // At most partition_size - 1 rows are ever built, so this fits.
        self.read_rows().len() as u32
    }

    /// The virtual slot of a key hash: `hash mod V`.
    ///
    /// Hashes from [`HashAlgorithm::hash`] are non-negative except
    /// `i32::MIN`. The original takes a C remainder, which for `i32::MIN` is
    /// `-(2³¹ mod V)`: slot 0 for a power-of-two `V` (the default) and an
    /// out-of-bounds read otherwise. Here the magnitude is used for every
    /// hash (`|hash| mod V`, i.e. `2³¹ mod V` for `i32::MIN`), which agrees
    /// with the original wherever the original is defined.
    pub fn slot(&self, hash: i32) -> u32 {
        hash.unsigned_abs() % self.virtual_nodes
    }

    /// The partition of a key hash in a cluster of `count` partitions:
    /// `T[count][slot(hash)]`. Returns `None` unless
    /// `1 ≤ count ≤ partition_size − 1`.
    ///
    /// Builds (and caches) the missing rows up to `count` on first use.
    pub fn partition(&self, hash: i32, count: u32) -> Option<u32> {
        if count == 0 || count >= self.partition_size {
            return None;
        }
        let slot = self.slot(hash) as usize;
        let index = (count - 1) as usize;
        {
            let rows = self.read_rows();
            if let Some(row) = rows.get(index) {
                return Some(row.get(slot));
            }
        }
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        while rows.len() <= index {
            let row = self.build_row(rows.len() as u32 + 1, rows.last());
            rows.push(row);
        }
        rows.get(index).map(|row| row.get(slot))
    }

    /// Like [`partition`](Self::partition), but reports an out-of-range
    /// `count` as an error.
    pub fn partition_checked(&self, hash: i32, count: u32) -> Result<u32, ClusterError> {
        self.partition(hash, count)
            .ok_or(ClusterError::PartitionCountOutOfRange {
                count,
                max: self.max_partitions(),
            })
    }

    /// The partition of `key` (hashed with `alg`, up to its first NUL byte)
    /// in a cluster of `count` partitions; `None` if `count` is out of range.
    ///
    /// `alg` is not checked with
    /// [`HashAlgorithm::usable_for_partitioning`]; that is a configuration
    /// concern (see [`HashAlgorithm::parse_for_partitioning`]).
    pub fn partition_of_key(&self, alg: HashAlgorithm, key: &[u8], count: u32) -> Option<u32> {
        self.partition(alg.hash(key), count)
    }

    fn read_rows(&self) -> std::sync::RwLockReadGuard<'_, Vec<Row>> {
        // Rows are pushed only when complete, so a poisoned lock still
        // guards a consistent prefix of the table.
        self.rows.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Builds row `i` from row `i - 1` (`prev`, `None` only for `i = 1`).
    fn build_row(&self, i: u32, prev: Option<&Row>) -> Row {
        let prev = match prev {
            Some(prev) if i > self.hint => prev,
            // i ≤ hint (always the case for i = 1, as hint ≥ 1).
            _ => return Row::Modulo(i),
        };
        // Here i ≥ 2 and every value of row i-1 is < i-1.
        let new = i - 1;
        let mut counters = vec![0u32; new as usize];
        let cells = (0..self.virtual_nodes as usize).map(|j| {
            let k = prev.get(j);
            let c = &mut counters[k as usize];
            *c += 1;
            if *c % i == new {
                new
            } else {
                k
            }
        });
        if i <= 1 << 16 {
            // Every cell is < i ≤ 65536.
            Row::Narrow(cells.map(|v| v as u16).collect())
        } else {
            Row::Wide(cells.collect())
        }
    }
}

impl Default for ModularTable {
    /// The default table: hint 1, 4096 virtual slots, partition size 1024.
    fn default() -> Self {
        ModularTable {
            hint: DEFAULT_MODULAR_HINT,
            virtual_nodes: DEFAULT_MODULAR_VIRTUAL,
            partition_size: DEFAULT_PARTITION_SIZE,
            rows: RwLock::new(Vec::new()),
        }
    }
}

impl std::fmt::Debug for ModularTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModularTable")
            .field("hint", &self.hint)
            .field("virtual_nodes", &self.virtual_nodes)
            .field("partition_size", &self.partition_size)
            .field("built_rows", &self.built_rows())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u32 = 1_000_000_007;

    fn row(t: &ModularTable, n: u32) -> Vec<u32> {
        (0..t.virtual_nodes() as i32)
            .map(|j| t.partition(j, n).expect("count in range"))
            .collect()
    }

    fn counts(cells: &[u32], n: u32) -> Vec<usize> {
        (0..n)
            .map(|p| cells.iter().filter(|&&c| c == p).count())
            .collect()
    }

    #[test]
    fn send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ModularTable>();
    }

    #[test]
    fn validation() {
        assert_eq!(
            ModularTable::new(0, 4096, 1024).err(),
            Some(ClusterError::InvalidModularHint(0))
        );
        assert_eq!(
            ModularTable::new(1, 0, 1024).err(),
            Some(ClusterError::InvalidModularVirtual(0))
        );
        assert_eq!(
            ModularTable::new(1, 4096, 1).err(),
            Some(ClusterError::InvalidPartitionSize(1))
        );
        let t = ModularTable::new(3, 17, 2).expect("valid");
        assert_eq!(
            (t.hint(), t.virtual_nodes(), t.partition_size()),
            (3, 17, 2)
        );
        assert_eq!(t.max_partitions(), 1);
        let d = ModularTable::default();
        assert_eq!(
            (d.hint(), d.virtual_nodes(), d.partition_size()),
            (1, 4096, 1024)
        );
    }

    #[test]
    fn count_range() {
        let t = ModularTable::default();
        assert_eq!(t.partition(5, 0), None);
        assert_eq!(t.partition(5, 1024), None);
        assert_eq!(t.partition(5, u32::MAX), None);
        assert_eq!(t.partition(5, 1), Some(0));
        assert_eq!(
            t.partition_checked(5, 1024),
            Err(ClusterError::PartitionCountOutOfRange {
                count: 1024,
                max: 1023
            })
        );
        assert_eq!(t.partition_checked(4, 2), Ok(1));
        let small = ModularTable::new(1, 4096, 3).expect("valid");
        assert!(small.partition(0, 2).is_some());
        assert_eq!(small.partition(0, 3), None);
    }

    #[test]
    fn rows_are_built_lazily() {
        let t = ModularTable::default();
        assert_eq!(t.built_rows(), 0);
        assert_eq!(t.partition(0, 0), None);
        assert_eq!(t.built_rows(), 0);
        t.partition(0, 3);
        assert_eq!(t.built_rows(), 3);
        t.partition(0, 2);
        assert_eq!(t.built_rows(), 3);
        t.partition(0, 8);
        assert_eq!(t.built_rows(), 8);
    }

    #[test]
    fn row_2_and_row_3_prefixes() {
        let t = ModularTable::default();
        let r2 = row(&t, 2);
        for (j, &c) in r2.iter().enumerate() {
            assert_eq!(c, if j % 2 == 0 { 1 } else { 0 }, "slot {j}");
        }
        assert_eq!(row(&t, 3)[..12], [1, 0, 2, 2, 1, 0, 1, 0, 2, 2, 1, 0]);
        assert!(row(&t, 1).iter().all(|&c| c == 0));
    }

    #[test]
    fn slot_counts_per_partition() {
        let t = ModularTable::default();
        assert_eq!(counts(&row(&t, 3), 3), [1365, 1365, 1366]);
        assert_eq!(counts(&row(&t, 4), 4), [1024, 1024, 1025, 1023]);
        assert_eq!(counts(&row(&t, 6), 6), [683, 683, 684, 683, 683, 680]);
    }

    #[test]
    fn per_row_checks() {
        let t = ModularTable::default();
        let expected = [
            0u64, 4192256, 8389974, 12577795, 16782963, 20957211, 25126678, 29328772,
        ];
        for (n, &want) in (1..=8u32).zip(&expected) {
            let sum = row(&t, n)
                .iter()
                .enumerate()
                .fold(0u64, |s, (j, &c)| (s + j as u64 * c as u64) % P as u64);
            assert_eq!(sum, want, "row {n}");
        }
    }

    #[test]
    fn whole_default_table_fnv1a64() {
        let t = ModularTable::default();
        let mut h: u64 = 14695981039346656037;
        for n in 1..=1023 {
            for j in 0..4096 {
                let cell = t.partition(j, n).expect("count in range");
                h ^= u64::from(cell);
                h = h.wrapping_mul(1099511628211);
            }
        }
        assert_eq!(h, 14443250904572221504);
        assert_eq!(t.built_rows(), 1023);
    }

    /// (key, simple, crc32, jenkins) partitions for counts 1..=8.
    type KeyVector = (&'static [u8], [u32; 8], [u32; 8], [u32; 8]);

    /// Key vectors of cluster spec §4.3: partitions for counts 1..=8 with
    /// simple, crc32 and jenkins.
    const KEY_PARTITIONS: &[KeyVector] = &[
        (
            b"test_key1",
            [0, 0, 2, 2, 2, 5, 5, 5],
            [0, 0, 0, 0, 0, 5, 5, 7],
            [0, 1, 1, 1, 1, 1, 1, 1],
        ),
        (
            b"::test::key::1979",
            [0, 0, 0, 0, 0, 5, 5, 5],
            [0, 1, 2, 2, 4, 4, 6, 6],
            [0, 0, 0, 0, 0, 5, 5, 5],
        ),
        (
            b"::test::key::19790217",
            [0, 0, 2, 2, 2, 2, 2, 2],
            [0, 1, 1, 3, 4, 4, 4, 4],
            [0, 1, 1, 1, 4, 4, 4, 4],
        ),
        (
            b"foo",
            [0, 1, 1, 1, 1, 1, 6, 6],
            [0, 0, 0, 0, 0, 5, 5, 5],
            [0, 0, 0, 3, 3, 3, 3, 3],
        ),
        (
            b"bar",
            [0, 0, 2, 2, 2, 2, 2, 2],
            [0, 1, 2, 2, 2, 2, 2, 2],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            b"hello",
            [0, 1, 1, 1, 4, 4, 4, 4],
            [0, 1, 2, 2, 2, 5, 5, 7],
            [0, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            b"key0",
            [0, 0, 0, 0, 0, 0, 0, 7],
            [0, 1, 1, 1, 1, 5, 5, 5],
            [0, 0, 2, 2, 2, 2, 6, 6],
        ),
        (
            b"user:1000",
            [0, 1, 2, 2, 2, 2, 2, 2],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 1, 1, 1, 1],
        ),
        (
            b"a",
            [0, 0, 0, 0, 0, 0, 0, 7],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0, 1, 1, 1, 1, 1, 1, 1],
        ),
        (
            b"",
            [0, 1, 1, 1, 1, 1, 1, 1],
            [0, 1, 1, 1, 1, 1, 1, 1],
            [0, 1, 2, 3, 3, 5, 6, 6],
        ),
        (
            b"abcdefghijklm",
            [0, 0, 0, 3, 3, 3, 3, 3],
            [0, 1, 2, 2, 2, 5, 5, 5],
            [0, 0, 2, 2, 4, 4, 4, 7],
        ),
        (
            b"\xE3\x81\x82",
            [0, 1, 1, 3, 3, 3, 3, 3],
            [0, 0, 2, 2, 2, 2, 2, 2],
            [0, 1, 1, 1, 1, 1, 1, 1],
        ),
        (
            b"key-with-\xff-byte",
            [0, 0, 0, 0, 0, 5, 5, 5],
            [0, 1, 2, 2, 2, 2, 2, 2],
            [0, 1, 1, 1, 1, 1, 1, 7],
        ),
        (
            b"0123456789012345678901234567890",
            [0, 0, 2, 2, 2, 2, 6, 6],
            [0, 0, 0, 3, 3, 3, 3, 3],
            [0, 0, 2, 2, 2, 2, 2, 2],
        ),
    ];

    #[test]
    fn key_vector_partitions() {
        let t = ModularTable::default();
        for (key, simple, crc, jenkins) in KEY_PARTITIONS {
            let k = String::from_utf8_lossy(key);
            for (alg, want) in [
                (HashAlgorithm::Simple, simple),
                (HashAlgorithm::Crc32, crc),
                (HashAlgorithm::Jenkins, jenkins),
            ] {
                let got: Vec<u32> = (1..=8)
                    .map(|n| t.partition_of_key(alg, key, n).expect("count in range"))
                    .collect();
                assert_eq!(got, want, "{alg} {k:?}");
            }
        }
    }

    /// "Handy for scenarios" sets of cluster spec §4.3 (simple hash).
    #[test]
    fn scenario_sets() {
        let t = ModularTable::default();
        let part = |key: &str, n| {
            t.partition_of_key(HashAlgorithm::Simple, key.as_bytes(), n)
                .expect("count in range")
        };
        let p0 = ["bar", "baz", "key0", "key2", "key4", "test_key1", "a"];
        let p1 = ["foo", "hello", "key1", "key3", "key5", "user:1000"];
        for k in p0 {
            assert_eq!(part(k, 2), 0, "{k}");
        }
        for k in p1 {
            assert_eq!(part(k, 2), 1, "{k}");
        }
        let moved = ["bar", "key3", "key4", "test_key1", "user:1000"];
        for k in p0.iter().chain(&p1) {
            let want = if moved.contains(k) { 2 } else { part(k, 2) };
            assert_eq!(part(k, 3), want, "{k}");
        }
    }

    #[test]
    fn rows_above_hint_only_move_slots_to_the_newest_partition() {
        let t = ModularTable::new(1, 4096, 64).expect("valid");
        let mut prev = row(&t, 1);
        for n in 2..64 {
            let cur = row(&t, n);
            for (j, (&a, &b)) in prev.iter().zip(&cur).enumerate() {
                assert!(b == a || b == n - 1, "row {n} slot {j}: {a} -> {b}");
            }
            prev = cur;
        }
    }

    #[test]
    fn rows_up_to_hint_are_plain_modulo() {
        let t = ModularTable::new(4, 100, 16).expect("valid");
        for n in 1..=4 {
            let r = row(&t, n);
            for (j, &c) in r.iter().enumerate() {
                assert_eq!(c, j as u32 % n);
            }
        }
        // Row 5 derives from row 4 by the counter rule: slot counts for
        // partition k of row 4 are 25 each; every 5th goes to partition 4.
        assert_eq!(counts(&row(&t, 5), 5), [20, 20, 20, 20, 20]);
    }

    #[test]
    fn hash_modulo_virtual() {
        let t = ModularTable::default();
        assert_eq!(t.slot(4097), 1);
        assert_eq!(t.partition(4097, 3), t.partition(1, 3));
        assert_eq!(t.partition(i32::MAX, 5), t.partition(4095, 5));
    }

    #[test]
    fn i32_min_hash() {
        // Power-of-two V: slot 0, as in the original.
        let t = ModularTable::default();
        assert_eq!(t.slot(i32::MIN), 0);
        for n in 1..=8 {
            assert_eq!(t.partition(i32::MIN, n), t.partition(0, n));
        }
        // Other V: 2^31 mod V (2^31 mod 3 = 2, 2^31 mod 1000 = 648).
        let t3 = ModularTable::new(1, 3, 8).expect("valid");
        assert_eq!(t3.slot(i32::MIN), 2);
        assert_eq!(t3.partition(i32::MIN, 4), t3.partition(2, 4));
        let t1000 = ModularTable::new(1, 1000, 8).expect("valid");
        assert_eq!(t1000.slot(i32::MIN), 648);
    }

    #[test]
    fn wide_rows_above_65536() {
        // V = 4 keeps this cheap: rows above 65536 partitions use u32 cells.
        let t = ModularTable::new(1, 4, 70_000).expect("valid");
        let r = row(&t, 69_999);
        assert!(r.iter().all(|&c| c < 69_999));
        // With V = 4 and many partitions, slots stop moving once every old
        // partition owns one slot; the result must match a reference model.
        let mut model: Vec<u32> = vec![0; 4];
        for i in 2..=69_999u32 {
            let mut cnt = vec![0u32; i as usize];
            for cell in model.iter_mut() {
                let k = *cell;
                cnt[k as usize] += 1;
                if cnt[k as usize] % i == i - 1 {
                    *cell = i - 1;
                }
            }
        }
        assert_eq!(r, model);
    }

    #[test]
    fn concurrent_lookups() {
        let t = std::sync::Arc::new(ModularTable::default());
        let handles: Vec<_> = (0..4u32)
            .map(|w| {
                let t = t.clone();
                std::thread::spawn(move || {
                    (1..=32)
                        .map(|n| t.partition(921 + w as i32, n + w))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let fresh = ModularTable::default();
        for (w, h) in handles.into_iter().enumerate() {
            let got = h.join().expect("thread");
            let w = w as u32;
            let want: Vec<_> = (1..=32)
                .map(|n| fresh.partition(921 + w as i32, n + w))
                .collect();
            assert_eq!(got, want);
        }
        assert_eq!(t.built_rows(), 35);
    }
}
