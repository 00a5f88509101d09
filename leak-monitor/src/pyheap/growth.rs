//! Growth across censuses (pure): the containers whose length rises steadily (the same
//! object, census after census) and the types whose instance count does. A container is
//! followed only while the latest census still sees it, with its last few lengths, so the
//! history stays small however long a target is watched.

use super::census::{Census, TypeCount};
use super::roots::{Named, Path};
use crate::resource::PerSecond;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// Lengths kept per container, and counts per type.
const KEPT: usize = 12;
/// The smallest rise that counts as growth (items).
const MIN_RISE: u64 = 16;
/// The smallest instance-count rise of a type that counts.
const MIN_TYPE_RISE: u64 = 100;
/// Censuses in a row a followed container may be missing from before it is forgotten: a census
/// is a sample (a walk cut short by a list that changed under it, a thread's frames read while
/// they moved), not proof that the container is gone.
const MAX_MISSED: u8 = 3;

/// A container's identity: the same address and the same type (an address reused by another
/// object of another type starts a new series).
type Key = (u64, u64);

#[derive(Clone, Debug)]
struct Series {
    type_name: String,
    path: Option<Arc<Path>>,
    points: VecDeque<(f64, u64)>,
    /// Censuses in a row that did not see it.
    missed: u8,
}

/// A container that keeps growing.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GrowingHolder {
    pub address: u64,
    pub type_name: String,
    pub path: Option<Arc<Path>>,
    pub len_first: u64,
    pub len_last: u64,
    /// Seconds between the first and last census of the series.
    pub seconds: f64,
    /// Entries per second.
    pub growth_per_second: PerSecond,
    pub censuses: usize,
}

/// A type whose instance count keeps rising.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TypeGrowth {
    pub type_name: String,
    pub count_first: u64,
    pub count_last: u64,
    pub bytes_first: u64,
    pub bytes_last: u64,
}

/// The censuses of one target, condensed.
#[derive(Default)]
pub struct HeapHistory {
    containers: HashMap<Key, Series>,
    types: HashMap<String, VecDeque<(f64, TypeCount)>>,
    censuses: usize,
}

impl HeapHistory {
    pub fn censuses(&self) -> usize {
        self.censuses
    }

    /// Adds a census taken at `at` seconds, with the containers named from the roots.
    pub fn push(&mut self, at: f64, census: &Census, named: &HashMap<u64, Named>) {
        self.censuses += 1;
        let mut now: HashMap<Key, (String, u64, Option<Arc<Path>>)> = HashMap::new();
        for c in &census.containers {
            let name = census
                .type_names
                .get(&c.type_address)
                .cloned()
                .unwrap_or_default();
            let path = named.get(&c.address).map(|n| Arc::clone(&n.path));
            now.insert((c.address, c.type_address), (name, c.len, path));
        }
        for (address, n) in named {
            let key = (*address, n.type_address);
            now.entry(key).or_insert_with(|| {
                let name = census
                    .type_names
                    .get(&n.type_address)
                    .cloned()
                    .unwrap_or_else(|| format!("{:?}", n.kind).to_lowercase());
                (name, n.len, Some(Arc::clone(&n.path)))
            });
        }
        self.containers.retain(|key, series| {
            if now.contains_key(key) {
                series.missed = 0;
                true
            } else {
                series.missed += 1;
                series.missed <= MAX_MISSED
            }
        });
        for (key, (type_name, len, path)) in now {
            let series = self.containers.entry(key).or_insert_with(|| Series {
                type_name,
                path: None,
                points: VecDeque::new(),
                missed: 0,
            });
            if path.is_some() {
                series.path = path;
            }
            if series.points.len() == KEPT {
                series.points.pop_front();
            }
            series.points.push_back((at, len));
        }
        // A walk cut short undercounts every type: only whole censuses count types.
        if census.partial || census.objects == 0 {
            return;
        }
        for (name, count) in &census.types {
            let series = self.types.entry(name.clone()).or_default();
            if series.len() == KEPT {
                series.pop_front();
            }
            series.push_back((at, count.clone()));
        }
        // Types gone from this census are forgotten.
        self.types.retain(|name, series| {
            census.types.contains_key(name) || series.back().is_some_and(|(t, _)| *t == at)
        });
    }

    /// The containers growing steadily, fastest first.
    pub fn growing(&self) -> Vec<GrowingHolder> {
        let mut out: Vec<GrowingHolder> = self
            .containers
            .iter()
            .filter_map(|(&(address, _), s)| {
                let lens: Vec<u64> = s.points.iter().map(|(_, n)| *n).collect();
                if !rises_steadily(&lens, MIN_RISE) {
                    return None;
                }
                let (t0, first) = *s.points.front()?;
                let (t1, last) = *s.points.back()?;
                let seconds = t1 - t0;
                (seconds > 0.0).then(|| GrowingHolder {
                    address,
                    type_name: s.type_name.clone(),
                    path: s.path.clone(),
                    len_first: first,
                    len_last: last,
                    seconds,
                    growth_per_second: PerSecond((last - first) as f64 / seconds),
                    censuses: lens.len(),
                })
            })
            .collect();
        out.sort_by(|a, b| b.growth_per_second.0.total_cmp(&a.growth_per_second.0));
        out
    }

    /// The types whose instance count rises steadily, most bytes gained first.
    pub fn type_growth(&self) -> Vec<TypeGrowth> {
        let mut out: Vec<TypeGrowth> = self
            .types
            .iter()
            .filter_map(|(name, series)| {
                let counts: Vec<u64> = series.iter().map(|(_, c)| c.count).collect();
                if !rises_steadily(&counts, MIN_TYPE_RISE) {
                    return None;
                }
                let (_, first) = series.front()?;
                let (_, last) = series.back()?;
                Some(TypeGrowth {
                    type_name: name.clone(),
                    count_first: first.count,
                    count_last: last.count,
                    bytes_first: first.bytes,
                    bytes_last: last.bytes,
                })
            })
            .collect();
        out.sort_by_key(|t| std::cmp::Reverse(t.bytes_last.saturating_sub(t.bytes_first)));
        out
    }
}

/// At least three values that rise by `min_rise` or more overall, rise in at least two steps,
/// fall in at most one step in five, and are still above where they were two steps ago.
pub fn rises_steadily(values: &[u64], min_rise: u64) -> bool {
    let n = values.len();
    if n < 3 {
        return false;
    }
    let (first, last) = (values[0], values[n - 1]);
    let steps = n - 1;
    let rises = values.windows(2).filter(|w| w[1] > w[0]).count();
    let falls = values.windows(2).filter(|w| w[1] < w[0]).count();
    last >= first + min_rise && rises >= 2 && falls * 5 <= steps && last > values[n - 3]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pyheap::census::Container;
    use crate::pyheap::objects::Kind;
    use crate::pyheap::roots::Step;

    fn census(containers: &[(u64, u64)], types: &[(&str, u64)]) -> Census {
        let mut c = Census {
            objects: 10_000,
            ..Census::default()
        };
        c.type_names.insert(7, "list".into());
        c.containers = containers
            .iter()
            .map(|&(address, len)| Container {
                address,
                type_address: 7,
                len,
            })
            .collect();
        c.types = types
            .iter()
            .map(|&(name, count)| {
                (
                    name.to_owned(),
                    TypeCount {
                        count,
                        bytes: count * 100,
                    },
                )
            })
            .collect();
        c
    }

    #[test]
    fn steady_rise_is_growth_and_plateau_or_sawtooth_is_not() {
        assert!(rises_steadily(&[10, 40, 70, 100], 16));
        assert!(rises_steadily(&[10, 10, 40, 40, 70], 16));
        // A cache that filled and stays full.
        assert!(!rises_steadily(&[10, 500, 1000, 1000, 1000], 16));
        // A list that is cleared now and then.
        assert!(!rises_steadily(&[10, 400, 20, 300, 10, 350], 16));
        assert!(!rises_steadily(&[10, 40], 16));
        assert!(!rises_steadily(&[10, 12, 14, 16], 16));
    }

    #[test]
    fn follows_the_same_container_and_names_it() {
        let mut history = HeapHistory::default();
        let path = Arc::new(Path {
            steps: vec![Step::Module("app".into()), Step::Attr("LOG".into())],
            files: vec!["/srv/app.py".into()],
        });
        let mut named = HashMap::new();
        named.insert(
            0x1000,
            Named {
                path: Arc::clone(&path),
                kind: Kind::List,
                type_address: 7,
                len: 0,
            },
        );
        for (i, len) in [100u64, 400, 700, 1000].into_iter().enumerate() {
            let scratch = 0x9000 + i as u64 * 64; // a new scratch list every census
            named.get_mut(&0x1000).unwrap().len = len;
            if i == 2 {
                // A census that missed the holder (cut short): its series goes on.
                let mut cut = census(&[], &[]);
                cut.partial = true;
                history.push(i as f64 * 5.0 - 1.0, &cut, &HashMap::new());
            }
            let c = census(
                &[(0x1000, len), (scratch, 5000)],
                &[("Session", 1000 + 500 * i as u64), ("dict", 300)],
            );
            history.push(i as f64 * 5.0, &c, &named);
        }
        let growing = history.growing();
        assert_eq!(growing.len(), 1, "{growing:?}");
        assert_eq!(growing[0].address, 0x1000);
        assert_eq!(growing[0].path.as_ref().unwrap().display(), "app.LOG");
        assert_eq!(growing[0].growth_per_second, PerSecond(60.0));
        let types = history.type_growth();
        assert_eq!(types.len(), 1);
        assert_eq!(types[0].type_name, "Session");
        assert_eq!((types[0].count_first, types[0].count_last), (1000, 2500));
    }
}
