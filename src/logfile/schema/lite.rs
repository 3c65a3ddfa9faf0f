//! The lite parse: typed serde visitors that keep an `epoch` or `bn` record's figures and skip its arrays without
//! building them (the hot path of a long log).
use std::borrow::Cow;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::Metric;

/// Any JSON value, keeping only what a scalar field needs: `null` is NaN (a number that was not finite), a
/// string or container is "not a number" (`Other`), skipped without allocating.
#[derive(Clone, Copy, Debug, Default)]
pub(super) enum Scalar {
    #[default]
    Other,
    Null,
    Bool(bool),
    U(u64),
    F(f64),
}

impl Scalar {
    pub(super) fn f64(self) -> Option<f64> {
        match self {
            Scalar::Null => Some(f64::NAN),
            Scalar::U(u) => Some(u as f64),
            Scalar::F(f) => Some(f),
            _ => None,
        }
    }
    pub(super) fn u64(self) -> Option<u64> {
        match self {
            Scalar::U(u) => Some(u),
            _ => None,
        }
    }
    pub(super) fn bool(self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Bool(b))
            }
            fn visit_u64<E: de::Error>(self, u: u64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::U(u))
            }
            fn visit_i64<E: de::Error>(self, i: i64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::F(i as f64))
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> std::result::Result<Scalar, E> {
                Ok(Scalar::F(f))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Scalar, E> {
                Ok(Scalar::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<Scalar, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<Scalar, A::Error> {
                while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// `{loss, acc}` or anything else (then no metric, as a full parse has it).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct LiteMetric(pub(super) Option<Metric>);

impl<'de> Deserialize<'de> for LiteMetric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LiteMetric;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a {loss, acc} object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> std::result::Result<LiteMetric, A::Error> {
                let mut m = Metric::default();
                while let Some(k) = a.next_key::<Cow<'de, str>>()? {
                    match k.as_ref() {
                        "loss" => m.loss = a.next_value::<Scalar>()?.f64(),
                        "acc" => m.acc = a.next_value::<Scalar>()?.f64(),
                        _ => {
                            a.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(LiteMetric(Some(m)))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<LiteMetric, E> {
                Ok(LiteMetric(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> std::result::Result<LiteMetric, A::Error> {
                while a.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LiteMetric(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The fields of `epoch` and `bn` records a lite parse keeps; everything else is skipped.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Lite<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Option<Cow<'a, str>>,
    pub(super) epoch: Scalar,
    pub(super) step: Scalar,
    pub(super) t: Scalar,
    pub(super) momentum: Scalar,
    pub(super) cumulative: Scalar,
    pub(super) init_weight: Scalar,
    pub(super) train: LiteMetric,
    pub(super) eval_running: LiteMetric,
    pub(super) eval_batch: LiteMetric,
    pub(super) eval_ema: LiteMetric,
    pub(super) step_ms: Scalar,
    pub(super) predictions_running: Option<IgnoredAny>,
    pub(super) predictions_batch: Option<IgnoredAny>,
}
