//! Durations on the command line (`keep --for`, `--health-timeout`,
//! `preview up --ttl`), with an error that says what is allowed instead of
//! humantime's parser position ("expected number at 0").

use std::time::Duration;

pub fn parse(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err(format!("{s:?} is zero; give a length such as 30m, 2h or 1h30m")),
        Ok(d) => Ok(d),
        Err(_) => Err(format!("{s:?} is not a duration; write a number with a unit: 90s, 30m, 2h, 1h30m or 3d")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_or_what_is_allowed() {
        assert_eq!(super::parse("1h30m").unwrap().as_secs(), 5400);
        for bad in ["forever", "30", "0s", ""] {
            let e = super::parse(bad).unwrap_err();
            assert!(e.contains("30m") && e.contains(&format!("{bad:?}")), "{e}");
        }
    }
}
