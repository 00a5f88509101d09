//! Line table decoding checked against real CPython 3.11 code objects (`linetables.txt`, made
//! by `make_fixture.py` from `co_positions()`) and real 3.10 ones (`linetables310.txt`, from
//! `co_lines()`), plus corrupt tables.

use super::*;

const FIXTURE: &str = include_str!("linetables.txt");

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_code_unit_of_real_code_objects_gets_the_line_co_positions_gives() {
    let mut checked = 0;
    let mut codes = 0;
    for row in FIXTURE.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = row.split(' ').collect();
        let [name, first, table, lines] = fields[..] else {
            panic!("bad fixture row {row}");
        };
        let first: u32 = first.parse().unwrap();
        let table = hex(table);
        for (unit, expected) in lines.split(',').enumerate() {
            let expected = (expected != "-").then(|| expected.parse::<u32>().unwrap());
            let got = line_for(LineTableFormat::Locations, &table, first, unit as u32);
            assert_eq!(got, expected, "{name} code unit {unit}");
            checked += 1;
        }
        // Past the end: no line.
        let units = lines.split(',').count() as u32;
        assert_eq!(
            line_for(LineTableFormat::Locations, &table, first, units),
            None
        );
        codes += 1;
    }
    assert!(
        codes >= 8 && checked > 300,
        "{codes} code objects, {checked} units"
    );
}

#[test]
fn the_fixture_covers_long_and_no_location_forms() {
    let mut forms = [false; 16];
    for row in FIXTURE.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = row.split(' ').collect();
        let table = hex(fields[2]);
        // Walk entry starts only.
        let mut rest = &table[..];
        while let Some((&b, tail)) = rest.split_first() {
            if b & 0x80 != 0 {
                forms[usize::from((b >> 3) & 15)] = true;
            }
            rest = tail;
        }
    }
    // (Form 13, line without columns, is what compile() makes from column-less ASTs; it is
    // exercised in code.rs.)
    for code in [0, 10, 11, 14] {
        assert!(forms[code], "form {code} never appears in the fixture");
    }
}

#[test]
fn corrupt_tables_give_none_not_panics() {
    let real = hex(FIXTURE
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .split(' ')
        .nth(2)
        .unwrap());
    for cut in 0..real.len() {
        for offset in 0..40 {
            let _ = line_for(LineTableFormat::Locations, &real[..cut], 1, offset);
        }
    }
    for byte in 0..=255u8 {
        let table = [byte, 0xff, 0xff, 0x7f, 0x00];
        let _ = line_for(LineTableFormat::Locations, &table, 1, 3);
        let _ = line_for(LineTableFormat::Pairs310, &table, 1, 3);
    }
    // A table that does not start at an entry start.
    assert_eq!(
        line_for(LineTableFormat::Locations, &[0x01, 0x02], 5, 0),
        None
    );
    // An endless varint.
    assert_eq!(
        line_for(LineTableFormat::Locations, &[0xf0, 0xff, 0xff, 0xff], 5, 0),
        None
    );
}

#[test]
fn python_310_pairs() {
    // firstlineno 10: bytes 0..6 (units 0..3) line 11, bytes 6..10 (units 3..5) no line,
    // bytes 10..14 (units 5..7) line 13 (10 + 1 + 2).
    let table = [6u8, 1, 4, 0x80, 4, 2];
    let line = |unit| line_for(LineTableFormat::Pairs310, &table, 10, unit);
    assert_eq!(line(0), Some(11));
    assert_eq!(line(2), Some(11));
    assert_eq!(line(3), None);
    assert_eq!(line(5), Some(13));
    assert_eq!(line(7), None);
    // Negative deltas: byte 2 (unit 1) is on line 1 + 5 - 3.
    let back = [2u8, 5, 2, (-3i8) as u8];
    assert_eq!(line_for(LineTableFormat::Pairs310, &back, 1, 1), Some(3));
    // An instruction not started yet (f_lasti -1 as the kernel sends it): no line.
    assert_eq!(line(u32::MAX), None);
}

const FIXTURE_310: &str = include_str!("linetables310.txt");

/// Real 3.10.13 code objects (`make_fixture.py` under 3.10): every code unit gets the line
/// `co_lines()` gives it, including a line jump past 127 and a backward jump.
#[test]
fn every_code_unit_of_real_310_code_objects_gets_the_line_co_lines_gives() {
    let mut checked = 0;
    let mut codes = 0;
    for row in FIXTURE_310.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = row.split(' ').collect();
        let [name, first, table, lines] = fields[..] else {
            panic!("bad fixture row {row}");
        };
        let first: u32 = first.parse().unwrap();
        let table = hex(table);
        for (unit, expected) in lines.split(',').enumerate() {
            let expected = (expected != "-").then(|| expected.parse::<u32>().unwrap());
            let got = line_for(LineTableFormat::Pairs310, &table, first, unit as u32);
            assert_eq!(got, expected, "{name} code unit {unit}");
            checked += 1;
        }
        codes += 1;
    }
    assert!(FIXTURE_310.starts_with("# 3.10."));
    assert!(
        codes >= 8 && checked > 150,
        "{codes} code objects, {checked} units"
    );
}
