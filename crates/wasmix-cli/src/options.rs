//! Parsing of the `run` options that carry structure (`--dir`, `--env`, `--preload`).

use std::path::PathBuf;
use std::str::FromStr;

/// `--dir HOST[::GUEST]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DirSpec {
    pub host: PathBuf,
    pub guest: String,
}

impl FromStr for DirSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (host, guest) = match s.split_once("::") {
            Some((h, g)) => (h, g),
            None => (s, s),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(format!("`{s}` is not HOST or HOST::GUEST"));
        }
        Ok(DirSpec {
            host: PathBuf::from(host),
            guest: guest.to_owned(),
        })
    }
}

/// `--env KEY=VALUE` or `--env KEY` (inherit).
#[derive(Clone, Debug, PartialEq)]
pub struct EnvSpec {
    key: String,
    value: Option<String>,
}

impl EnvSpec {
    /// The pair to set, or `None` for an inherited variable the host does not have.
    pub fn resolve(&self) -> Option<(String, String)> {
        match &self.value {
            Some(v) => Some((self.key.clone(), v.clone())),
            None => std::env::var(&self.key).ok().map(|v| (self.key.clone(), v)),
        }
    }
}

impl FromStr for EnvSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (s, None),
        };
        if key.is_empty() {
            return Err(format!(
                "`{s}` has an empty variable name (expected KEY=VALUE or KEY)"
            ));
        }
        if key.contains('\0') || value.as_deref().is_some_and(|v| v.contains('\0')) {
            return Err(format!("`{s}` contains a NUL byte"));
        }
        Ok(EnvSpec {
            key: key.to_owned(),
            value,
        })
    }
}

/// `--preload NAME=MODULE`.
#[derive(Clone, Debug, PartialEq)]
pub struct PreloadSpec {
    pub name: String,
    pub module: PathBuf,
}

impl FromStr for PreloadSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((name, module)) if !name.is_empty() && !module.is_empty() => Ok(PreloadSpec {
                name: name.to_owned(),
                module: PathBuf::from(module),
            }),
            _ => Err(format!("`{s}` is not NAME=MODULE")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_forms() {
        assert_eq!(
            "/tmp/x::/".parse::<DirSpec>().unwrap(),
            DirSpec {
                host: "/tmp/x".into(),
                guest: "/".into()
            }
        );
        assert_eq!(
            "data".parse::<DirSpec>().unwrap(),
            DirSpec {
                host: "data".into(),
                guest: "data".into()
            }
        );
        assert!("::/".parse::<DirSpec>().is_err());
        assert!("x::".parse::<DirSpec>().is_err());
    }

    #[test]
    fn env_forms() {
        assert_eq!(
            "A=b=c".parse::<EnvSpec>().unwrap().resolve(),
            Some(("A".into(), "b=c".into()))
        );
        assert_eq!(
            "A=".parse::<EnvSpec>().unwrap().resolve(),
            Some(("A".into(), "".into()))
        );
        assert!("=x".parse::<EnvSpec>().is_err());
        assert!("".parse::<EnvSpec>().is_err());
        assert_eq!(
            "WASMIX_SURELY_UNSET_VAR"
                .parse::<EnvSpec>()
                .unwrap()
                .resolve(),
            None
        );
    }

    #[test]
    fn preload_forms() {
        assert_eq!(
            "m=lib.wasm".parse::<PreloadSpec>().unwrap(),
            PreloadSpec {
                name: "m".into(),
                module: "lib.wasm".into()
            }
        );
        assert!("lib.wasm".parse::<PreloadSpec>().is_err());
        assert!("=x".parse::<PreloadSpec>().is_err());
    }
}
