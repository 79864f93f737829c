//! The dates task, generated reproducibly in code: dates written in many human formats
//! translated to ISO dates.

use recurrent::Generator;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Day of week, 0 = Monday (Sakamoto's method).
fn weekday(y: i32, m: u32, d: u32) -> usize {
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if m < 3 { y - 1 } else { y };
    let w = (y + y / 4 - y / 100 + y / 400 + T[m as usize - 1] + d as i32) % 7; // 0 = Sunday
    ((w + 6) % 7) as usize
}

fn ordinal(d: u32) -> String {
    let suf = match (d % 10, d % 100) {
        (1, x) if x != 11 => "st",
        (2, x) if x != 12 => "nd",
        (3, x) if x != 13 => "rd",
        _ => "th",
    };
    format!("{d}{suf}")
}

/// Number of source formats.
pub const FORMATS: usize = 11;

/// A date written in format `f` (see the module docs).
pub fn render(y: i32, m: u32, d: u32, f: usize) -> String {
    let mon = MONTHS[m as usize - 1];
    let short = &mon[..3];
    let wd = DAYS[weekday(y, m, d)];
    match f {
        0 => format!("{d} {mon} {y}"),
        1 => format!("{mon} {d}, {y}"),
        2 => format!("{m:02}/{d:02}/{y}"),
        3 => format!("{d:02}.{m:02}.{y}"),
        4 => format!("{}, {d} {short} {y}", &wd[..3]),
        5 => format!("{} of {mon} {y}", ordinal(d)),
        6 => format!("{} {d} {y}", short.to_uppercase()),
        7 => format!("{wd}, {mon} {d}, {y}"),
        8 => format!("{d}-{short}-{y}"),
        9 => format!("{y}{m:02}{d:02}"),
        _ => format!("{}, {} {}", ordinal(d), mon.to_lowercase(), y),
    }
}

/// `(source, target)` pairs: random dates 1950-2049 in random formats.
pub fn dates(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut g = Generator::new(seed);
    (0..n)
        .map(|_| {
            let y = 1950 + g.below(100) as i32;
            let m = 1 + g.below(12) as u32;
            let d = 1 + g.below(days_in_month(y, m) as u64) as u32;
            let f = g.below(FORMATS as u64) as usize;
            (render(y, m, d, f), format!("{y}-{m:02}-{d:02}"))
        })
        .collect()
}

/// One date rendered in every format, for the README.
pub fn formats_example() -> Vec<String> {
    (0..FORMATS).map(|f| render(2021, 3, 3, f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_and_formats() {
        assert_eq!(weekday(2021, 3, 3), 2); // a Wednesday
        assert_eq!(weekday(2000, 1, 1), 5); // a Saturday
        assert_eq!(days_in_month(2000, 2), 29);
        assert_eq!(days_in_month(1900, 2), 28);
        assert_eq!(render(2021, 3, 3, 4), "Wed, 3 Mar 2021");
        assert_eq!(render(2021, 3, 3, 5), "3rd of March 2021");
        assert_eq!(render(2011, 12, 11, 10), "11th, december 2011");
        let d = dates(100, 1);
        assert_eq!(d, dates(100, 1));
        assert!(d.iter().all(|(_, t)| t.len() == 10 && &t[4..5] == "-"));
    }
}
