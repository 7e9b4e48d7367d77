//! Operation SPECs: `rank=R,after=K[,to=HOST]` and `after=K,dir=DIR`.
//!
//! A SPEC names a rank and the MPI call (counted by the library, 1-based:
//! `after=K` fires right after the K-th call) at which that rank starts a
//! migration or a regroup by itself. Keys may come in any order, whitespace
//! around items, keys and values is ignored. Several SPECs travel in one
//! environment variable separated by `;` (see [`parse_spec_list`]).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// The largest rank a SPEC accepts (MPI ranks are C `int`s).
pub const MAX_RANK: u32 = i32::MAX as u32;

/// What a SPEC asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Move the rank into a fresh process (on the same or another host).
    Migrate,
    /// Run the synchronization and group rebuild with the same processes.
    Regroup,
}

impl OpKind {
    /// Both kinds, in the order the library reads their variables.
    pub const ALL: [OpKind; 2] = [OpKind::Migrate, OpKind::Regroup];

    /// `"migrate"` or `"regroup"` (as in the event log and the CLI flags).
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Migrate => "migrate",
            OpKind::Regroup => "regroup",
        }
    }

    /// The environment variable carrying SPECs of this kind.
    pub fn env_var(self) -> &'static str {
        match self {
            OpKind::Migrate => crate::env::FERRY_MIGRATE,
            OpKind::Regroup => crate::env::FERRY_REGROUP,
        }
    }
}

impl fmt::Display for OpKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OpKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "migrate" => Ok(OpKind::Migrate),
            "regroup" => Ok(OpKind::Regroup),
            _ => Err(format!(
                "unknown operation {s:?} (expected migrate or regroup)"
            )),
        }
    }
}

/// A parsed `rank=R,after=K[,to=HOST]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpSpec {
    /// The rank (in MPI_COMM_WORLD) that starts the operation.
    pub rank: u32,
    /// It starts right after its `after`-th MPI call.
    pub after: u64,
    /// Target host of a migration; `None`: the rank's own host.
    pub to: Option<String>,
}

/// A [`OpSpec`] together with its kind, e.g. from the environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operation {
    pub kind: OpKind,
    pub spec: OpSpec,
}

/// A parsed `after=K,dir=DIR` (checkpoint of the whole job).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CheckpointSpec {
    /// Every rank checkpoints right after its `after`-th MPI call.
    pub after: u64,
    /// Directory the checkpoint is written to.
    pub dir: String,
}

/// Why a SPEC was refused. `Display` gives the whole message: what is wrong,
/// the offending SPEC and the expected form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The SPEC as given (untrimmed).
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
    /// The expected form, e.g. `rank=R,after=K[,to=HOST]`.
    pub expected: &'static str,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid SPEC {:?}: {} (expected {})",
            self.spec, self.reason, self.expected
        )
    }
}

impl std::error::Error for SpecError {}

const OP_FORM: &str = "rank=R,after=K[,to=HOST]";
const CKPT_FORM: &str = "after=K,dir=DIR";

/// Splits `a=b,c=d` into trimmed `(key, value)` pairs, refusing empty
/// items, items without `=`, empty keys and repeated keys. `err` builds
/// the error for the SPEC being parsed.
fn items<'a>(
    spec: &'a str,
    err: &dyn Fn(String) -> SpecError,
) -> Result<Vec<(&'a str, &'a str)>, SpecError> {
    if spec.trim().is_empty() {
        return Err(err("it is empty".into()));
    }
    let mut out = Vec::new();
    for (i, raw) in spec.split(',').enumerate() {
        let item = raw.trim();
        if item.is_empty() {
            return Err(err(format!("item {} is empty (stray ',')", i + 1)));
        }
        let Some((k, v)) = item.split_once('=') else {
            return Err(err(format!("item {item:?} is not of the form key=value")));
        };
        let (k, v) = (k.trim(), v.trim());
        if k.is_empty() {
            return Err(err(format!("item {item:?} has no key before '='")));
        }
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(err(format!("key {k:?} is given more than once")));
        }
        out.push((k, v));
    }
    Ok(out)
}

/// Parses a non-negative decimal integer not larger than `max`.
fn number(key: &str, value: &str, max: u64) -> Result<u64, String> {
    if value.is_empty() {
        return Err(format!("{key}= has no value"));
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key}={value} is not a non-negative integer"));
    }
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{key}={value} is too large (at most {max})")),
    }
}

/// Checks a host name or dotted IPv4 address; returns a reason if invalid.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host name is empty".into());
    }
    if host.len() > 253 {
        return Err(format!("host name {host:?} is longer than 253 characters"));
    }
    let labels: Vec<&str> = host.split('.').collect();
    if labels
        .iter()
        .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
    {
        // Looks numeric: must be a real IPv4 address.
        return match host.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("{host:?} is not a valid IPv4 address")),
        };
    }
    for label in labels {
        if label.is_empty() {
            return Err(format!("host name {host:?} has an empty label"));
        }
        if label.len() > 63 {
            return Err(format!(
                "host name {host:?} has a label longer than 63 characters"
            ));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!(
                "host name {host:?} contains {c:?} (allowed: letters, digits, '-', '_', '.')"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!(
                "host name {host:?} has a label starting or ending with '-'"
            ));
        }
    }
    Ok(())
}

/// Parses one `rank=R,after=K[,to=HOST]`.
pub fn parse_spec(spec: &str) -> Result<OpSpec, SpecError> {
    let err = |reason: String| SpecError {
        spec: spec.to_string(),
        reason,
        expected: OP_FORM,
    };
    let mut rank = None;
    let mut after = None;
    let mut to = None;
    for (k, v) in items(spec, &err)? {
        match k {
            "rank" => rank = Some(number(k, v, MAX_RANK as u64).map_err(err)? as u32),
            "after" => after = Some(number(k, v, u64::MAX).map_err(err)?),
            "to" => {
                check_host(v).map_err(|r| err(format!("to={v}: {r}")))?;
                to = Some(v.to_string());
            }
            _ => return Err(err(format!("unknown key {k:?} (keys are rank, after, to)"))),
        }
    }
    let rank = rank.ok_or_else(|| err("rank= is missing".into()))?;
    let after = after.ok_or_else(|| err("after= is missing".into()))?;
    Ok(OpSpec { rank, after, to })
}

/// Parses a `;`-separated list of SPECs (empty items are ignored).
pub fn parse_spec_list(list: &str) -> Result<Vec<OpSpec>, SpecError> {
    list.split(';')
        .filter(|s| !s.trim().is_empty())
        .map(parse_spec)
        .collect()
}

/// Parses one `after=K,dir=DIR`. DIR may not contain `,`.
pub fn parse_checkpoint_spec(spec: &str) -> Result<CheckpointSpec, SpecError> {
    let err = |reason: String| SpecError {
        spec: spec.to_string(),
        reason,
        expected: CKPT_FORM,
    };
    let mut after = None;
    let mut dir = None;
    for (k, v) in items(spec, &err)? {
        match k {
            "after" => after = Some(number(k, v, u64::MAX).map_err(err)?),
            "dir" => {
                if v.is_empty() {
                    return Err(err("dir= has no value".into()));
                }
                dir = Some(v.to_string());
            }
            _ => return Err(err(format!("unknown key {k:?} (keys are after, dir)"))),
        }
    }
    let after = after.ok_or_else(|| err("after= is missing".into()))?;
    let dir = dir.ok_or_else(|| err("dir= is missing".into()))?;
    Ok(CheckpointSpec { after, dir })
}

/// Joins SPECs into the `;`-separated form of `FERRY_MIGRATE`/`FERRY_REGROUP`.
pub fn format_spec_list(specs: &[OpSpec]) -> String {
    specs
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(";")
}

impl fmt::Display for OpSpec {
    /// The canonical form, which [`parse_spec`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rank={},after={}", self.rank, self.after)?;
        if let Some(to) = &self.to {
            write!(f, ",to={to}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CheckpointSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "after={},dir={}", self.after, self.dir)
    }
}

impl FromStr for OpSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        parse_spec(s)
    }
}

impl FromStr for CheckpointSpec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, SpecError> {
        parse_checkpoint_spec(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(spec: &str) -> String {
        parse_spec(spec).unwrap_err().to_string()
    }

    #[test]
    fn parses_minimal_and_full() {
        assert_eq!(
            parse_spec("rank=1,after=100").unwrap(),
            OpSpec {
                rank: 1,
                after: 100,
                to: None
            }
        );
        assert_eq!(
            parse_spec("rank=0,after=0,to=node-2.cluster").unwrap(),
            OpSpec {
                rank: 0,
                after: 0,
                to: Some("node-2.cluster".into())
            }
        );
        assert_eq!(
            parse_spec("rank=3,after=7,to=10.0.0.5")
                .unwrap()
                .to
                .as_deref(),
            Some("10.0.0.5")
        );
    }

    #[test]
    fn keys_in_any_order_and_whitespace() {
        let want = OpSpec {
            rank: 2,
            after: 5,
            to: Some("h".into()),
        };
        assert_eq!(parse_spec("to=h,after=5,rank=2").unwrap(), want);
        assert_eq!(parse_spec("  rank=2 , after=5 ,\tto=h ").unwrap(), want);
        assert_eq!(parse_spec("rank = 2,after= 5,to =h").unwrap(), want);
    }

    #[test]
    fn display_round_trips() {
        for s in ["rank=1,after=2", "rank=4,after=99,to=localhost"] {
            assert_eq!(parse_spec(s).unwrap().to_string(), s);
        }
        let spec: OpSpec = "after=3, rank=9".parse().unwrap();
        assert_eq!(spec.to_string(), "rank=9,after=3");
    }

    #[test]
    fn missing_keys() {
        assert_eq!(
            msg("rank=1"),
            "invalid SPEC \"rank=1\": after= is missing (expected rank=R,after=K[,to=HOST])"
        );
        assert_eq!(
            msg("after=1,to=x"),
            "invalid SPEC \"after=1,to=x\": rank= is missing (expected rank=R,after=K[,to=HOST])"
        );
        assert_eq!(
            msg(""),
            "invalid SPEC \"\": it is empty (expected rank=R,after=K[,to=HOST])"
        );
        assert_eq!(
            msg("   "),
            "invalid SPEC \"   \": it is empty (expected rank=R,after=K[,to=HOST])"
        );
    }

    #[test]
    fn unknown_and_duplicate_keys() {
        assert_eq!(
            msg("rank=1,after=2,host=x"),
            "invalid SPEC \"rank=1,after=2,host=x\": unknown key \"host\" (keys are rank, after, to) (expected rank=R,after=K[,to=HOST])"
        );
        assert_eq!(
            msg("rank=1,after=2,rank=3"),
            "invalid SPEC \"rank=1,after=2,rank=3\": key \"rank\" is given more than once (expected rank=R,after=K[,to=HOST])"
        );
        assert!(msg("Rank=1,after=2").contains("unknown key \"Rank\""));
    }

    #[test]
    fn bad_numbers() {
        assert!(msg("rank=-1,after=2").contains(": rank=-1 is not a non-negative integer"));
        assert!(msg("rank=+1,after=2").contains("rank=+1 is not a non-negative integer"));
        assert!(msg("rank=1,after=x").contains("after=x is not a non-negative integer"));
        assert!(msg("rank=1,after=1.5").contains("after=1.5 is not a non-negative integer"));
        assert!(msg("rank=1,after=").contains("after= has no value"));
        assert!(msg("rank=2147483648,after=1")
            .contains("rank=2147483648 is too large (at most 2147483647)"));
        assert!(msg("rank=1,after=99999999999999999999999").contains("is too large"));
        assert_eq!(
            parse_spec("rank=2147483647,after=18446744073709551615")
                .unwrap()
                .rank,
            MAX_RANK
        );
    }

    #[test]
    fn malformed_items() {
        assert!(msg("rank=1,,after=2").contains("item 2 is empty (stray ',')"));
        assert!(msg("rank=1,after=2,").contains("item 3 is empty"));
        assert!(msg("rank=1,after").contains("item \"after\" is not of the form key=value"));
        assert!(msg("rank=1,=2").contains("item \"=2\" has no key before '='"));
        assert!(msg("rank=1;after=2").contains("rank=1;after=2 is not a non-negative integer"));
    }

    #[test]
    fn bad_hosts() {
        assert!(msg("rank=1,after=2,to=").contains("to=: the host name is empty"));
        assert!(msg("rank=1,after=2,to=a b").contains("contains ' '"));
        assert!(msg("rank=1,after=2,to=-a").contains("starting or ending with '-'"));
        assert!(msg("rank=1,after=2,to=a..b").contains("has an empty label"));
        assert!(msg("rank=1,after=2,to=300.1.1.1")
            .contains("\"300.1.1.1\" is not a valid IPv4 address"));
        assert!(msg("rank=1,after=2,to=1.2.3").contains("not a valid IPv4 address"));
        assert!(msg("rank=1,after=2,to=h/x").contains("contains '/'"));
        assert!(check_host("node_07").is_ok());
        assert!(check_host("127.0.0.1").is_ok());
        assert!(check_host("n1.example.org").is_ok());
        assert!(check_host(&"a".repeat(64))
            .unwrap_err()
            .contains("longer than 63"));
    }

    #[test]
    fn lists() {
        assert_eq!(parse_spec_list("").unwrap(), vec![]);
        assert_eq!(parse_spec_list(" ; ;").unwrap(), vec![]);
        let l = parse_spec_list("rank=1,after=2; rank=0,after=9,to=h;").unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[1],
            OpSpec {
                rank: 0,
                after: 9,
                to: Some("h".into())
            }
        );
        assert_eq!(format_spec_list(&l), "rank=1,after=2;rank=0,after=9,to=h");
        let e = parse_spec_list("rank=1,after=2;rank=x,after=1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid SPEC \"rank=x,after=1\": rank=x is not a non-negative integer (expected rank=R,after=K[,to=HOST])"
        );
    }

    #[test]
    fn op_kind() {
        assert_eq!(OpKind::Migrate.env_var(), "FERRY_MIGRATE");
        assert_eq!(OpKind::Regroup.env_var(), "FERRY_REGROUP");
        assert_eq!("regroup".parse::<OpKind>().unwrap(), OpKind::Regroup);
        assert_eq!(OpKind::Migrate.to_string(), "migrate");
        assert!("move".parse::<OpKind>().is_err());
    }

    #[test]
    fn checkpoint_specs() {
        assert_eq!(
            parse_checkpoint_spec("after=10,dir=/tmp/ck").unwrap(),
            CheckpointSpec {
                after: 10,
                dir: "/tmp/ck".into()
            }
        );
        assert_eq!(
            parse_checkpoint_spec(" dir = ck , after = 3 ").unwrap(),
            CheckpointSpec {
                after: 3,
                dir: "ck".into()
            }
        );
        assert_eq!(
            parse_checkpoint_spec("after=10").unwrap_err().to_string(),
            "invalid SPEC \"after=10\": dir= is missing (expected after=K,dir=DIR)"
        );
        assert!(parse_checkpoint_spec("dir=x")
            .unwrap_err()
            .to_string()
            .contains("after= is missing"));
        assert!(parse_checkpoint_spec("after=1,dir=")
            .unwrap_err()
            .to_string()
            .contains("dir= has no value"));
        assert!(parse_checkpoint_spec("after=1,dir=a,rank=2")
            .unwrap_err()
            .to_string()
            .contains("unknown key \"rank\" (keys are after, dir)"));
        let c = parse_checkpoint_spec("after=1,dir=d").unwrap();
        assert_eq!(c.to_string().parse::<CheckpointSpec>().unwrap(), c);
    }
}
