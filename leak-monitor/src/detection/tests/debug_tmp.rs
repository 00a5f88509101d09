use super::*;
use crate::detection::series::{Bin, Point};
use crate::detection::verdict::assess;

fn show(values: &[f64], unit: crate::resource::Unit) {
    let bins: Vec<Bin> = values.iter().enumerate().map(|(i, &v)| Bin::of(Point { t: i as f64, value: v })).collect();
    let a = assess(&bins, &DetectorConfig::for_unit(unit), None).unwrap();
    println!("{:?}\n{:?}\nsince {:?}", a.trend, a.evidence, a.since);
}

#[test]
fn debug_freed() {
    let mut rng = Rng::new(14);
    let v: Vec<f64> = (0..=25).map(|t| {
        let t = t as f64;
        let held = if t < 25.0 { t.min(20.0) * MB } else { 0.0 };
        pages(40.0 * MB + held + rng.pm(200.0 * KB))
    }).collect();
    show(&v, crate::resource::Unit::Bytes);
}

#[test]
fn debug_churn() {
    for seed in [1u64, 4, 5, 6, 7, 8] {
        let mut rng = Rng::new(seed);
        let v: Vec<f64> = (0..=120).map(|t| pages(80.0 * MB + 300.0 * KB * t as f64 + rng.pm(30.0 * MB))).collect();
        show(&v, crate::resource::Unit::Bytes);
    }
}
