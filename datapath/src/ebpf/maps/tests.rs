//! Map semantics, without programs: array and hash updates, flags, errors,
//! capacity, deletes and slot reuse, and concurrent use.

use std::sync::Arc;

use super::*;

fn array(value_size: u32, max_entries: u32) -> Map {
    Map::new(
        0,
        MapDef {
            kind: MapKind::Array,
            key_size: 4,
            value_size,
            max_entries,
        },
    )
    .unwrap()
}

fn hash(key_size: u32, value_size: u32, max_entries: u32) -> Map {
    Map::new(
        0,
        MapDef {
            kind: MapKind::Hash,
            key_size,
            value_size,
            max_entries,
        },
    )
    .unwrap()
}

fn k(i: u32) -> [u8; 4] {
    i.to_le_bytes()
}

#[test]
fn declarations_are_checked() {
    let def = |kind, key_size, value_size, max_entries| MapDef {
        kind,
        key_size,
        value_size,
        max_entries,
    };
    let err = |d| Map::new(2, d).unwrap_err();
    assert_eq!(
        err(def(MapKind::Hash, 0, 8, 1)),
        MapDefError::KeySize {
            index: 2,
            key_size: 0
        }
    );
    assert_eq!(
        err(def(MapKind::Hash, 513, 8, 1)),
        MapDefError::KeySize {
            index: 2,
            key_size: 513
        }
    );
    assert_eq!(
        err(def(MapKind::Array, 8, 8, 1)),
        MapDefError::ArrayKey {
            index: 2,
            key_size: 8
        }
    );
    assert_eq!(
        err(def(MapKind::Array, 4, 0, 1)),
        MapDefError::ValueSize {
            index: 2,
            value_size: 0
        }
    );
    assert_eq!(
        err(def(MapKind::Array, 4, 8, 0)),
        MapDefError::NoEntries { index: 2 }
    );
    assert_eq!(
        err(def(MapKind::Array, 4, 1 << 16, 1 << 15)),
        MapDefError::TooBig {
            index: 2,
            bytes: 1 << 31
        }
    );
    let many = Maps::new((0..=MAX_MAPS).map(|_| def(MapKind::Array, 4, 8, 1)));
    assert_eq!(
        many.unwrap_err(),
        MapDefError::TooMany {
            count: MAX_MAPS + 1
        }
    );
}

#[test]
fn arrays_hold_every_index() {
    let m = array(12, 3);
    assert_eq!(m.get(&k(0)), Some(vec![0; 12]));
    assert_eq!(m.get(&k(3)), None);
    assert_eq!(m.get(&[0, 0]), None);
    m.update(&k(2), &[7; 12], BPF_ANY).unwrap();
    m.update(&k(1), &[5; 12], BPF_EXIST).unwrap();
    assert_eq!(
        m.update(&k(1), &[5; 12], BPF_NOEXIST),
        Err(MapOpError::Exists)
    );
    assert_eq!(m.update(&k(3), &[5; 12], BPF_ANY), Err(MapOpError::Full));
    assert_eq!(m.update(&k(1), &[5; 11], BPF_ANY), Err(MapOpError::Invalid));
    assert_eq!(m.update(&k(1), &[5; 12], 3), Err(MapOpError::Invalid));
    assert_eq!(m.delete(&k(1)), Err(MapOpError::Invalid));
    assert_eq!(
        m.entries(),
        vec![
            (k(0).to_vec(), vec![0; 12]),
            (k(1).to_vec(), vec![5; 12]),
            (k(2).to_vec(), vec![7; 12]),
        ]
    );
    // Values are 16 bytes apart, 8-aligned.
    let a0 = m.lookup(&k(0)).unwrap();
    assert_eq!(m.lookup(&k(2)), Some(a0 + 32));
    assert_eq!(a0 % 8, 0);
    m.clear();
    assert_eq!(m.get(&k(2)), Some(vec![0; 12]));
}

#[test]
fn hashes_insert_replace_delete_and_fill_up() {
    let m = hash(3, 5, 2);
    let (a, b, c) = ([1u8, 2, 3], [4u8, 5, 6], [7u8, 8, 9]);
    assert_eq!(m.lookup(&a), None);
    assert_eq!(m.update(&a, &[1; 5], BPF_EXIST), Err(MapOpError::NotFound));
    m.update(&a, &[1; 5], BPF_NOEXIST).unwrap();
    assert_eq!(m.update(&a, &[2; 5], BPF_NOEXIST), Err(MapOpError::Exists));
    m.update(&a, &[2; 5], BPF_EXIST).unwrap();
    m.update(&b, &[3; 5], BPF_ANY).unwrap();
    assert_eq!(m.update(&c, &[4; 5], BPF_ANY), Err(MapOpError::Full));
    assert_eq!(m.get(&a), Some(vec![2; 5]));
    let slot_a = m.lookup(&a).unwrap();
    assert_eq!(m.delete(&c), Err(MapOpError::NotFound));
    assert_eq!(m.delete(&[1, 2]), Err(MapOpError::NotFound));
    m.delete(&a).unwrap();
    assert_eq!(m.lookup(&a), None);
    // The freed slot is reused for the next key.
    m.update(&c, &[4; 5], BPF_ANY).unwrap();
    assert_eq!(m.lookup(&c), Some(slot_a));
    assert_eq!(
        m.entries(),
        vec![(b.to_vec(), vec![3; 5]), (c.to_vec(), vec![4; 5])]
    );
    m.clear();
    assert_eq!(m.entries(), vec![]);
    m.update(&a, &[9; 5], BPF_ANY).unwrap();
    assert_eq!(m.get(&a), Some(vec![9; 5]));
}

#[test]
fn maps_find_addresses_in_their_values() {
    let maps = Maps::new([
        MapDef {
            kind: MapKind::Array,
            key_size: 4,
            value_size: 8,
            max_entries: 2,
        },
        MapDef {
            kind: MapKind::Hash,
            key_size: 8,
            value_size: 4,
            max_entries: 4,
        },
    ])
    .unwrap();
    assert_eq!(maps.len(), 2);
    let m1 = maps.get(1).unwrap();
    m1.update(&[1; 8], &[1, 2, 3, 4], BPF_ANY).unwrap();
    let addr = m1.lookup(&[1; 8]).unwrap();
    let (m, off) = maps.find(addr + 1, 3).unwrap();
    assert_eq!((m.def().kind, off), (MapKind::Hash, 1));
    // The end of a map's storage is not in it.
    let end = m1.slab().base() + m1.slab().len() as u64;
    assert!(maps
        .find(end - 2, 4)
        .is_none_or(|(m, _)| !std::ptr::eq(m, m1)));
    let a = maps.get(0).unwrap().lookup(&k(1)).unwrap();
    assert_eq!(maps.find(a, 8).map(|(_, o)| o), Some(8));
    assert_eq!(maps.snapshot()[1], vec![(vec![1; 8], vec![1, 2, 3, 4])]);
    maps.clear();
    assert_eq!(maps.snapshot()[1], vec![]);
}

#[test]
fn concurrent_inserts_and_deletes_keep_the_map_consistent() {
    // Room for what stays, plus one key in flight per thread.
    let m = Arc::new(hash(8, 8, 4004));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                for i in 0..2000u64 {
                    let key = (t << 32 | i).to_le_bytes();
                    m.update(&key, &i.to_le_bytes(), BPF_NOEXIST).unwrap();
                    if i % 2 == 1 {
                        m.delete(&key).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let entries = m.entries();
    assert_eq!(entries.len(), 4000);
    for (key, value) in entries {
        let key = u64::from_le_bytes(key.try_into().unwrap());
        assert_eq!(key & 1, 0);
        assert_eq!(value, (key & 0xffff_ffff).to_le_bytes());
    }
    for i in 0..4u8 {
        m.update(&[0xff, i, 0, 0, 0, 0, 0, 0], &[0; 8], BPF_ANY)
            .unwrap();
    }
    assert_eq!(
        m.update(&[0xff; 8], &[0; 8], BPF_ANY),
        Err(MapOpError::Full)
    );
}
