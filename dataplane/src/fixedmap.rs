//! A small open-addressing map from `u64` (or `u128`: IPv6 addresses) keys,
//! built once at boot and read on the packet path. Multiply-shift hashing,
//! linear probing, no SipHash.

/// Hashes a u64 with a strong multiply-xorshift mix (the murmur3 finaliser).
#[inline(always)]
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A key of a [`FixedMap`].
pub trait MapKey: Copy + Eq + Default {
    fn mix(self) -> u64;
}

impl MapKey for u64 {
    #[inline(always)]
    fn mix(self) -> u64 {
        mix64(self)
    }
}

impl MapKey for u128 {
    #[inline(always)]
    fn mix(self) -> u64 {
        mix64((self >> 64) as u64 ^ mix64(self as u64))
    }
}

/// An IPv6 address with 32 more bits (a port and a protocol).
impl MapKey for (u128, u32) {
    #[inline(always)]
    fn mix(self) -> u64 {
        mix64(self.0.mix() ^ u64::from(self.1))
    }
}

/// Read-mostly map; sized at build time to at most half full.
#[derive(Clone, Debug)]
pub struct FixedMap<V: Copy, K: MapKey = u64> {
    keys: Vec<K>,
    values: Vec<Option<V>>,
    mask: usize,
    len: usize,
}

impl<V: Copy, K: MapKey> FixedMap<V, K> {
    /// A map able to hold `capacity` keys.
    pub fn with_capacity(capacity: usize) -> FixedMap<V, K> {
        let slots = (capacity.max(4) * 2).next_power_of_two();
        FixedMap {
            keys: vec![K::default(); slots],
            values: vec![None; slots],
            mask: slots - 1,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts or replaces; returns false when the map is full.
    pub fn insert(&mut self, key: K, value: V) -> bool {
        let mut i = key.mix() as usize & self.mask;
        for _ in 0..=self.mask {
            match self.values[i] {
                None => {
                    if self.len * 2 >= self.keys.len() {
                        return false;
                    }
                    self.keys[i] = key;
                    self.values[i] = Some(value);
                    self.len += 1;
                    return true;
                }
                Some(_) if self.keys[i] == key => {
                    self.values[i] = Some(value);
                    return true;
                }
                Some(_) => i = (i + 1) & self.mask,
            }
        }
        false
    }

    #[inline]
    pub fn get(&self, key: K) -> Option<V> {
        let mut i = key.mix() as usize & self.mask;
        loop {
            let v = self.values[i]?;
            if self.keys[i] == key {
                return Some(v);
            }
            i = (i + 1) & self.mask;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (K, V)> + '_ {
        self.keys
            .iter()
            .zip(self.values.iter())
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_get_replace() {
        let mut m = FixedMap::with_capacity(100);
        for k in 0..100u64 {
            assert!(m.insert(k * 7919, k));
        }
        for k in 0..100u64 {
            assert_eq!(m.get(k * 7919), Some(k));
        }
        assert_eq!(m.get(1), None);
        assert!(m.insert(0, 42));
        assert_eq!(m.get(0), Some(42));
        assert_eq!(m.len(), 100);
        assert_eq!(m.iter().count(), 100);
    }

    #[test]
    fn refuses_when_full() {
        let mut m = FixedMap::with_capacity(2);
        let mut ok = 0;
        for k in 0..100u64 {
            if m.insert(k, ()) {
                ok += 1;
            }
        }
        assert!((2..100).contains(&ok));
        assert_eq!(m.len(), ok);
    }
}
