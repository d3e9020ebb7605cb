//! How a verb names its box, the same way everywhere: a positional NAME
//! where the box is what the verb acts on (`create dev`, `ssh dev`,
//! `stop dev`), `--box NAME` where the positional is something else
//! (`logs api --box dev`, `seed main --box dev`). `--name`, the older
//! spelling, is a hidden alias of both so existing scripts keep working.
//! `port-forward NAME PORT...` and `code NAME [PATH]` require the NAME:
//! with a default, their other words would be taken for it.

use clap::Args;

use crate::manifest::name::BoxName;

#[derive(Debug, Clone, Args)]
pub struct BoxArg {
    /// Box name: a DNS label (a-z, 0-9, '-'), unique per owner [default: dev].
    #[arg(value_name = "NAME")]
    name: Option<BoxName>,
    #[arg(long = "name", value_name = "NAME", hide = true, conflicts_with = "name")]
    name_flag: Option<BoxName>,
}

impl BoxArg {
    pub fn get(&self) -> BoxName {
        self.name.clone().or_else(|| self.name_flag.clone()).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Args)]
pub struct BoxFlag {
    /// Box name [default: dev].
    #[arg(long = "box", alias = "name", value_name = "NAME", default_value_t = BoxName::default(), hide_default_value = true)]
    name: BoxName,
}

impl BoxFlag {
    pub fn get(&self) -> BoxName {
        self.name.clone()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Verb {
        #[command(flatten)]
        target: BoxArg,
    }

    #[derive(Parser)]
    struct Other {
        program: String,
        #[command(flatten)]
        target: BoxFlag,
    }

    #[test]
    fn a_box_is_named_one_way_with_the_old_flag_hidden() {
        let name = |args: &[&str]| Verb::try_parse_from(args).map(|v| v.target.get().to_string());
        assert_eq!(name(&["v"]).unwrap(), "dev");
        assert_eq!(name(&["v", "api"]).unwrap(), "api");
        assert_eq!(name(&["v", "--name", "api"]).unwrap(), "api");
        assert!(name(&["v", "a", "--name", "b"]).is_err(), "two names for one box");
        let other = |args: &[&str]| Other::try_parse_from(args).map(|v| v.target.get().to_string());
        assert_eq!(other(&["o", "api"]).unwrap(), "dev");
        assert_eq!(other(&["o", "api", "--box", "x"]).unwrap(), "x");
        assert_eq!(other(&["o", "api", "--name", "x"]).unwrap(), "x");
    }
}
